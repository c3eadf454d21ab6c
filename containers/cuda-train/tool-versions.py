"""Print the cuda-train image's versions as one JSON object (run at image build time).

Besides recording versions, it proves the environment works: torch and torchvision are imported, a
torchvision compiled operator is called (a torchvision built for another torch fails exactly there)
and MobileNetV2 runs one forward pass; timm and wandb are imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

DEB_PACKAGES = ["python3", "python3-venv", "libc6"]
TORCH_BUILD_FILE = "/opt/train-venv/torch-build"


def deb_version(package: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                         check=False)
    return out.stdout.strip()


def check_torch() -> dict[str, str]:
    """Versions only torch knows (its CUDA and cuDNN), after a real forward pass."""
    import torch
    import torchvision

    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    kept = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5)
    if kept.tolist() != [0]:
        raise SystemExit(f"torchvision.ops.nms gave {kept.tolist()}, expected [0]")
    model = torchvision.models.mobilenet_v2(width_mult=1.0, dropout=0.0).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 224, 224))
    if tuple(out.shape) != (1, 1000):
        raise SystemExit(f"mobilenet_v2 gave an output of shape {tuple(out.shape)}")
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "torch.cuda": torch.version.cuda or "none",
        "torch.cudnn": str(cudnn) if cudnn else "none",
    }


def main() -> None:
    versions: dict[str, str] = {"python3": sys.version.split()[0]}
    with open("/etc/debian_version", encoding="utf-8") as f:
        versions["debian"] = f.read().strip()
    with open(TORCH_BUILD_FILE, encoding="utf-8") as f:
        versions["torch-build"] = f.read().strip()
    versions.update({f"deb:{p}": deb_version(p) for p in DEB_PACKAGES})
    versions.update(check_torch())
    import einops  # noqa: F401
    import timm  # noqa: F401
    import wandb  # noqa: F401

    for dist in metadata.distributions():
        versions[f"py:{dist.metadata['Name'].lower()}"] = dist.version
    print(json.dumps(versions, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
