"""Data sets for the training KPIs (3, 5, 8): a tiny synthetic ImageFolder for smoke runs.

The real data set (ImageNet) is never downloaded: it is named by ANT_KPI_IMAGENET (a local folder)
or ANT_KPI_ENGINE_DATA (a path on a remote engine's machine).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np

IMAGENET_ENV: Final = "ANT_KPI_IMAGENET"
SYNTH_CLASSES: Final = 2
SYNTH_PER_CLASS: Final = 8
SYNTH_SIZE: Final = 224


def _write_ppm(path: Path, pixels: np.ndarray) -> None:
    h, w, _ = pixels.shape
    path.write_bytes(f"P6\n{w} {h}\n255\n".encode("ascii") + pixels.astype(np.uint8).tobytes())


def synthetic_imagefolder(
    root: Path,
    *,
    classes: int = SYNTH_CLASSES,
    per_class: int = SYNTH_PER_CLASS,
    size: int = SYNTH_SIZE,
    seed: int = 0,
    jpeg: bool | None = None,
) -> dict[str, Any]:
    """Random RGB images in the ImageFolder layout root/{train,val}/c<k>/<i>.<ext>; JPEG needs Pillow."""
    if jpeg is None:
        try:
            import PIL.Image  # noqa: F401
        except ImportError:
            jpeg = False
        else:
            jpeg = True
    rng = np.random.default_rng(seed)
    # torchvision's ImageFolder (through Pillow) reads PPM as well as JPEG, so numpy alone suffices.
    ext = "jpg" if jpeg else "ppm"
    n = 0
    for split in ("train", "val"):
        for c in range(classes):
            d = root / split / f"c{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                p = d / f"{i}.{ext}"
                if jpeg:
                    from PIL import Image

                    Image.fromarray(pixels).save(p, "JPEG", quality=90)
                else:
                    _write_ppm(p, pixels)
                n += 1
    return {
        "path": str(root),
        "train": str(root / "train"),
        "val": str(root / "val"),
        "images": n,
        "format": "jpeg" if jpeg else "ppm",
    }
