"""Print the versions of the image's build tools as one JSON object (run at image build time)."""

from __future__ import annotations

import json
import re
import subprocess

VERSION = re.compile(r"\d+(?:\.\d+)+")

# tool name -> the command whose output names its version
TOOLS = {
    "gcc": ["gcc", "-dumpfullversion"],
    "g++": ["g++", "-dumpfullversion"],
    "arm-linux-gnueabihf-gcc": ["arm-linux-gnueabihf-gcc", "-dumpfullversion"],
    "arm-linux-gnueabihf-g++": ["arm-linux-gnueabihf-g++", "-dumpfullversion"],
    "aarch64-linux-gnu-gcc": ["aarch64-linux-gnu-gcc", "-dumpfullversion"],
    "aarch64-linux-gnu-g++": ["aarch64-linux-gnu-g++", "-dumpfullversion"],
    "cmake": ["cmake", "--version"],
    "make": ["make", "--version"],
    "python3": ["python3", "--version"],
    "git": ["git", "--version"],
    "qemu-arm-static": ["qemu-arm-static", "--version"],
    "qemu-aarch64-static": ["qemu-aarch64-static", "--version"],
    "glibc": ["getconf", "GNU_LIBC_VERSION"],
}

# Debian package versions: they identify the exact build, including Debian's patches.
PACKAGES = [
    "gcc-12", "gcc-12-arm-linux-gnueabihf", "gcc-12-aarch64-linux-gnu", "libc6",
    "libc6-dev-armhf-cross", "libc6-dev-arm64-cross", "cmake", "make", "python3",
    "qemu-user-static",
]


def first_version(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    text = out.stdout or out.stderr
    m = VERSION.search(text)
    if m is None:
        raise SystemExit(f"no version in the output of {argv}: {text!r}")
    return m.group(0)


def deb_version(package: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def main() -> None:
    versions = {name: first_version(argv) for name, argv in TOOLS.items()}
    with open("/etc/debian_version", encoding="utf-8") as f:
        versions["debian"] = f.read().strip()
    versions.update({f"deb:{p}": deb_version(p) for p in PACKAGES})
    print(json.dumps(versions, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
