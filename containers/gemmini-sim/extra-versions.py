"""Add the gemmini-sim image's own tools to tvm-npu's tool-versions JSON (run at image build time)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

DEB_PACKAGES = ["gcc-riscv64-unknown-elf", "picolibc-riscv64-unknown-elf", "autoconf"]
PYTHON_PACKAGES = ["tensorflow-cpu", "flatbuffers", "typing_extensions"]


def deb_version(package: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def py_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        versions = json.load(f)
    versions.update({f"deb:{p}": deb_version(p) for p in DEB_PACKAGES})
    versions.update({f"py:{p}": py_version(p) for p in PYTHON_PACKAGES})
    json.dump(versions, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
