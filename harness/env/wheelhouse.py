"""The host fills an image's wheelhouse: exactly the pinned wheels, for the image's interpreter.

Inside a build container pip often cannot use the package index (a TLS-inspecting proxy whose CA
the host trusts and the image does not; an air-gapped lab), while the host's pip can: it has the
host's index, proxy and CA configuration. So the harness downloads the pinned set on the host with
`pip download`, for the image's Python (Debian bookworm: CPython 3.11) and platform (every
manylinux tag up to the image's glibc, 2.36), caches it under a key made of the requirement files'
contents and those tags, and the image then installs offline from it (WHEELHOUSE_ONLY=yes).
`ant-kpi images wheelhouse NAME -o DIR` fills one ahead of time, e.g. on a connected machine for an
air-gapped lab, which then passes the folder as ANT_KPI_WHEELHOUSE.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from harness.env.image_context import SOURCE_ARCHIVES, SOURCE_REQUIREMENTS, pinned_requirements
from harness.errors import BadInput, Blocked
from harness.options import EnvSettings
from harness.parsers.pip import classify_pip_error

PYTHON_VERSION: Final = "3.11"  # Debian bookworm's python3 in every image that has a wheelhouse
GLIBC_MINOR: Final = 36  # bookworm's glibc 2.36: manylinux_2_17 ... manylinux_2_36 wheels install there
COMPLETE: Final = "wheelhouse.json"  # written last: a folder without it is an interrupted fill

# Per image: the requirement files its Dockerfile installs from the wheelhouse, in order, and
# whether pip resolves their dependencies (False: `--no-deps`, as the Dockerfile installs them).
# `{torch}` is the image's TORCH_BUILD (cuda or cpu).
WHEEL_SETS: Final[dict[str, tuple[tuple[str, bool], ...]]] = {
    "cuda-train": (
        ("requirements.txt", True),
        ("requirements-torch-{torch}.txt", True),
        ("requirements-no-deps.txt", False),
    ),
    "tvm-npu": (("requirements.txt", True), (SOURCE_REQUIREMENTS, False)),
    "gemmini-sim": (("requirements.txt", True),),
}


# Requirement files taken as source archives, not wheels: packages with no wheel for the image's
# Python, which the Dockerfile builds from source (--no-build-isolation --no-deps). The host's pip
# only downloads them; the image's compiler builds them for the image's own Python and platform.
SOURCE_FILES: Final = frozenset({SOURCE_REQUIREMENTS})


def has_torch(image: str) -> bool:
    """Whether `image`'s wheel set has a PyTorch build to choose (TORCH_BUILD)."""
    return any("{torch}" in name for name, _ in WHEEL_SETS.get(image, ()))


def platform_tags(arch: str = "x86_64", glibc_minor: int = GLIBC_MINOR) -> list[str]:
    """Every manylinux platform tag a glibc 2.<glibc_minor> system installs (newest first).

    All of them are needed: pinned wheels exist only for some (nvidia-cuda-cupti only as
    manylinux_2_25, nvidia-nccl-cu13 only as manylinux_2_18)."""
    tags = [f"manylinux_2_{m}_{arch}" for m in range(glibc_minor, 16, -1)]
    legacy = {"x86_64": ["manylinux2014", "manylinux2010", "manylinux1"], "aarch64": ["manylinux2014"]}
    return tags + [f"{t}_{arch}" for t in legacy.get(arch, [])]


@dataclass(frozen=True, kw_only=True)
class WheelSet:
    image: str
    context: Path
    files: tuple[tuple[str, bool], ...]  # (requirements file name, resolve dependencies)
    arch: str = "x86_64"

    def key(self) -> str:
        """The cache key: the requirement files' contents, the interpreter and the platform tags."""
        h = hashlib.sha256()
        for name, deps in self.files:
            h.update(f"{name}:{deps}\n".encode())
            h.update((self.context / name).read_bytes())
        h.update(f"cp{PYTHON_VERSION}:{' '.join(platform_tags(self.arch))}".encode())
        return h.hexdigest()


def wheel_set(image: str, context: Path, *, torch_build: str = "cuda", arch: str = "x86_64") -> WheelSet:
    """The wheel set of `image`; BadInput for an image that installs no Python wheels."""
    if image not in WHEEL_SETS:
        raise BadInput(f"image {image} has no wheelhouse; images with one: {', '.join(WHEEL_SETS)}")
    if torch_build not in ("cuda", "cpu"):
        raise BadInput(f"TORCH_BUILD must be cuda or cpu, not {torch_build!r}")
    files = tuple((name.format(torch=torch_build), deps) for name, deps in WHEEL_SETS[image])
    for name, _ in files:
        if not (context / name).is_file():
            raise BadInput(f"image {image}: {context / name} does not exist")
    return WheelSet(image=image, context=context, files=files, arch=arch)


def download_argv(ws: WheelSet, name: str, deps: bool, dest: Path, python: str = sys.executable) -> list[str]:
    """The host's `pip download` of one requirements file for the image's interpreter and platform
    (a SOURCE_FILES file: its source archives, which the image builds)."""
    if name in SOURCE_FILES:
        # Only the named packages as source: pip builds their metadata in an isolated environment
        # whose build requirements (numpy, setuptools_scm) come as wheels.
        names = sorted(n for n, _ in pinned_requirements(ws.context, (ws.context / name,)))
        src = [f"--no-binary={','.join(names)}", "--no-deps"]
        return [python, "-m", "pip", "download", "--dest", str(dest), *src, "-r", str(ws.context / name)]
    argv = [python, "-m", "pip", "download", "--dest", str(dest), "--only-binary=:all:"]
    argv += ["--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi", "cp311", "--abi", "abi3"]
    argv += ["--abi", "none"]
    for tag in platform_tags(ws.arch):
        argv += ["--platform", tag]
    if not deps:
        argv.append("--no-deps")
    return [*argv, "-r", str(ws.context / name)]


@dataclass(frozen=True, kw_only=True)
class Filled:
    path: Path
    wheels: int
    size: int
    seconds: float
    reused: bool


def _complete(dest: Path) -> dict[str, object] | None:
    try:
        doc = json.loads((dest / COMPLETE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def fill(
    ws: WheelSet,
    cache: Path,
    *,
    out: Path | None = None,
    python: str = sys.executable,
    log: Path | None = None,
    timeout_s: float = 3600.0,
) -> Filled:
    """The wheelhouse of `ws`: reused from `cache/<image>-<key>` when complete, else downloaded there
    (or into `out`) by the host's pip. Blocked with pip's real cause (certificate, DNS, refused, no
    such version) when the host cannot get a pinned wheel either."""
    key = ws.key()
    dest = out or cache / f"{ws.image}-{key[:16]}"
    done = _complete(dest)
    if done is not None and done.get("key") == key:
        wheels = sorted(dest.glob("*.whl"))
        return Filled(
            path=dest, wheels=len(wheels), size=sum(w.stat().st_size for w in wheels), seconds=0.0, reused=True
        )
    dest.mkdir(parents=True, exist_ok=True)
    (dest / COMPLETE).unlink(missing_ok=True)
    started = time.monotonic()
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    transcript: list[str] = []
    # The build-specific file (PyTorch's pair) first: where it cannot be had, pip fails before the
    # shared set is downloaded into a folder that will not be used.
    for name, deps in sorted(ws.files, key=lambda f: "-torch-" not in f[0]):
        argv = download_argv(ws, name, deps, dest, python)
        transcript.append("$ " + " ".join(argv))
        res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout_s)
        transcript += [res.stdout, res.stderr]
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("\n".join(transcript), encoding="utf-8")
        if res.returncode != 0:
            cause = classify_pip_error(res.stdout + "\n" + res.stderr)
            raise Blocked(
                f"image {ws.image}: the host's pip could not download the pinned wheels of {name}: {cause.text}",
                cause.fix + (f"; the pip output is in {log}" if log else ""),
            )
    wheels = sorted(dest.glob("*.whl"))
    doc = {
        "key": key,
        "image": ws.image,
        "files": [n for n, _ in ws.files],
        "python": PYTHON_VERSION,
        "platforms": platform_tags(ws.arch),
        "wheels": {w.name: hashlib.sha256(w.read_bytes()).hexdigest() for w in wheels},
        "sources": {a.name: hashlib.sha256(a.read_bytes()).hexdigest() for a in _source_archives(dest)},
    }
    (dest / COMPLETE).write_text(json.dumps(doc, indent=1) + "\n")
    return Filled(
        path=dest,
        wheels=len(wheels),
        size=sum(w.stat().st_size for w in wheels),
        seconds=time.monotonic() - started,
        reused=False,
    )


def _source_archives(dest: Path) -> list[Path]:
    return sorted(p for p in dest.iterdir() if p.name.endswith(SOURCE_ARCHIVES))


def gpu_here() -> bool:
    """Whether this machine shows an NVIDIA GPU (a driver's nvidia-smi that lists one)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        res = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return res.returncode == 0 and "GPU" in res.stdout


def torch_choices(given: str, *, remote_engine: bool, gpu: bool) -> Sequence[str]:
    """The TORCH_BUILD values to try, in order: what the user gave; else CUDA on a GPU or remote
    engine (a GPU server), else the CPU pair first (≈0.8 GB against ≈5.5 GB) and CUDA if the CPU
    pair cannot be had."""
    if given:
        return (given,)
    if remote_engine or gpu:
        return ("cuda",)
    return ("cpu", "cuda")


@dataclass(frozen=True, kw_only=True)
class HostFilled:
    env: EnvSettings  # the settings to build the image with (the wheelhouse, WHEELHOUSE_ONLY=yes)
    filled: Filled
    torch_build: str  # "" for an image without PyTorch
    notes: tuple[str, ...]


def cached_host_env(image: str, context: Path, env: EnvSettings, cache: Path) -> EnvSettings | None:
    """The settings `host_wheelhouse` would build `image` with, if its wheelhouse is already complete
    in `cache` (nothing is downloaded); None otherwise. For finding an image built that way."""
    if image not in WHEEL_SETS or env.wheelhouse or not env.host_wheelhouse or has_torch(image):
        return None
    ws = wheel_set(image, context)
    dest = cache / f"{ws.image}-{ws.key()[:16]}"
    done = _complete(dest)
    if done is None or done.get("key") != ws.key():
        return None
    return replace(env, wheelhouse=str(dest), build_args={**env.build_args, "WHEELHOUSE_ONLY": "yes"})


def host_wheelhouse(
    image: str, context: Path, env: EnvSettings, cache: Path, *, log: Path | None = None
) -> HostFilled | None:
    """Fill `image`'s wheelhouse on the host and return the settings that build it offline from
    there; None when the image installs no wheels, a wheelhouse is given, or ANT_KPI_HOST_WHEELHOUSE=no."""
    if image not in WHEEL_SETS or env.wheelhouse or not env.host_wheelhouse:
        return None
    torch_image = has_torch(image)
    choices = (
        torch_choices(env.build_args.get("TORCH_BUILD", ""), remote_engine=bool(env.docker_host), gpu=gpu_here())
        if torch_image
        else ("cuda",)
    )
    notes: list[str] = []
    for i, torch in enumerate(choices):
        ws = wheel_set(image, context, torch_build=torch)
        try:
            filled = fill(ws, cache, log=log)
        except Blocked as e:
            if i + 1 < len(choices):
                # The CPU pair (torch+cpu with its torchvision) comes from PyTorch's own index: where
                # the host cannot get it, the CUDA build from PyPI runs on a CPU too.
                notes.append(f"PyTorch CPU build not obtainable by the host's pip ({e.what}); the CUDA build is used")
                continue
            raise
        args = {**env.build_args, "WHEELHOUSE_ONLY": "yes"}
        if torch_image:
            args["TORCH_BUILD"] = torch
            notes.append(f"PyTorch build: {torch}")
        notes.append(
            f"wheelhouse filled by the host's pip: {filled.wheels} wheels, {filled.size / 1e6:,.0f} MB "
            f"({'reused' if filled.reused else f'{filled.seconds:.0f} s'}), key {ws.key()[:16]}"
        )
        return HostFilled(
            env=replace(env, wheelhouse=str(filled.path), build_args=args),
            filled=filled,
            torch_build=torch if torch_image else "",
            notes=tuple(notes),
        )
    return None
