"""Print the versions of the image's build and run tools as one JSON object (run at image build time)."""

from __future__ import annotations

import json
import re
import subprocess

VERSION = re.compile(r"\d+(?:\.\d+)+")
# "gst-launch-1.0 version 1.22.0": the version follows the word, not the first number.
NAMED_VERSION = re.compile(r"\bversion\s+(\d+(?:\.\d+)+)")

# tool name -> the command whose output names its version
TOOLS = {
    "gcc": ["gcc", "-dumpfullversion"],
    "aarch64-linux-gnu-gcc": ["aarch64-linux-gnu-gcc", "-dumpfullversion"],
    "arm-linux-gnueabihf-gcc": ["arm-linux-gnueabihf-gcc", "-dumpfullversion"],
    "cmake": ["cmake", "--version"],
    "make": ["make", "--version"],
    "python3": ["python3", "--version"],
    "gst-launch-1.0": ["gst-launch-1.0", "--version"],
    "glibc": ["getconf", "GNU_LIBC_VERSION"],
}

# Debian package versions: they identify the exact build, including Debian's patches.
PACKAGES = [
    "gcc-12", "gcc-12-aarch64-linux-gnu", "gcc-12-arm-linux-gnueabihf", "libc6", "cmake",
    "libgstreamer1.0-dev", "gstreamer1.0-plugins-base", "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-bad", "libglib2.0-dev", "libdbus-1-dev", "libdbus-glib-1-dev",
    "libcurl4-openssl-dev", "libtar-dev", "libgstreamer1.0-dev:arm64", "gstreamer1.0-plugins-bad:arm64",
    "libgstreamer1.0-dev:armhf", "gstreamer1.0-plugins-bad:armhf",
]


def first_version(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    text = out.stdout or out.stderr
    named = NAMED_VERSION.search(text)
    if named is not None:
        return named.group(1)
    m = VERSION.search(text)
    if m is None:
        raise SystemExit(f"no version in the output of {argv}: {text!r}")
    return m.group(0)


def deb_version(package: str) -> str:
    # A Multi-Arch package installed for two architectures prints one version per architecture.
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}\n", package],
                         capture_output=True, text=True, check=True)
    return " ".join(dict.fromkeys(out.stdout.split()))


def main() -> None:
    versions = {name: first_version(argv) for name, argv in TOOLS.items()}
    with open("/etc/debian_version", encoding="utf-8") as f:
        versions["debian"] = f.read().strip()
    versions.update({f"deb:{p}": deb_version(p) for p in PACKAGES})
    print(json.dumps(versions, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
