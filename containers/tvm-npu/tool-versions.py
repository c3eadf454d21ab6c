"""Print the versions of the tvm-npu image's tools as one JSON object (run at image build time).

A tool the build left out (the FVP without its licence accepted, Spike without the Gemmini
toolchain) is recorded with an empty version, which is how the harness knows to block its testcase.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import metadata

VERSION = re.compile(r"\d+(?:\.\d+)+")

# tool name -> the command whose output names its version
TOOLS = {
    "gcc": ["gcc", "-dumpfullversion"],
    "cmake": ["cmake", "--version"],
    "llvm-config-14": ["llvm-config-14", "--version"],
    "python3": ["python3", "--version"],
    "arm-none-eabi-gcc": ["arm-none-eabi-gcc", "-dumpfullversion"],
    "fvp_corstone_sse_300": ["FVP_Corstone_SSE-300_Ethos-U55", "--version"],
    "riscv64-unknown-elf-gcc": ["riscv64-unknown-elf-gcc", "-dumpfullversion"],
    "spike": ["spike", "--help"],
}

PYTHON_PACKAGES = ["numpy", "scipy", "mxnet", "tflite", "ethos-u-vela", "flatbuffers", "Pillow"]
DEB_PACKAGES = ["gcc-12", "llvm-14-dev", "cmake", "python3", "gcc-arm-none-eabi"]


def first_version(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return ""
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    m = VERSION.search(out.stdout + out.stderr)
    # spike prints no version of its own; "present" is what the harness needs to know.
    return m.group(0) if m else "present"


def deb_version(package: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                         check=False)
    return out.stdout.strip()


def py_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return ""


def main() -> None:
    versions = {name: first_version(argv) for name, argv in TOOLS.items()}
    with open("/etc/debian_version", encoding="utf-8") as f:
        versions["debian"] = f.read().strip()
    versions.update({f"deb:{p}": deb_version(p) for p in DEB_PACKAGES})
    versions.update({f"py:{p}": py_version(p) for p in PYTHON_PACKAGES})
    print(json.dumps(versions, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
