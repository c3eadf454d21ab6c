"""KPI 7's model files given locally (ANT_KPI_NPU_MODELS): found, checked, or named as missing.

The fork's testcases download these at run time; a machine without network gives them in one
folder. A file whose checksum is published is checked against it; the others are recorded by their
sha256 in the row's provenance."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from harness.errors import BadInput

# test_vta.py: MXNet Gluon's resnet18_v1 (MXNet's model store names the file by the first 8 hex
# digits of its sha1, and checks the whole sha1 itself), synset.txt and cat.png from its URLs.
VTA_PRETRAINED: Final = {
    "resnet18_v1-a0666292.params": ("sha1", "a0666292f0a30ff61f857b0b66efc0228eb6a54b"),
    "synset.txt": None,
    "cat.png": None,
}


@dataclass(frozen=True)
class ModelFile:
    path: Path
    sha256: str


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def vta_pretrained(folder: str) -> tuple[dict[str, ModelFile], list[str]]:
    """The pretrained files of test_vta.py in `folder`, and the names of those missing."""
    if not folder:
        return {}, list(VTA_PRETRAINED)
    root = Path(folder)
    if not root.is_dir():
        raise BadInput(
            f"ANT_KPI_NPU_MODELS={folder}: not a folder; give the folder that holds {', '.join(VTA_PRETRAINED)}"
        )
    found, missing = {}, []
    for name, pin in VTA_PRETRAINED.items():
        p = root / name
        if not p.is_file():
            missing.append(name)
            continue
        if pin is not None and _digest(p, pin[0]) != pin[1]:
            raise BadInput(
                f"ANT_KPI_NPU_MODELS: {p} is not MXNet's {name} ({pin[0]} differs from {pin[1]}); "
                "remove it or replace it with the model store's file"
            )
        found[name] = ModelFile(p, _digest(p, "sha256"))
    return found, missing
