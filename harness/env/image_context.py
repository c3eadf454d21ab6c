"""What an image is built from: its context folder's hash, the build arguments, and the wheels a
wheelhouse adds. The tag `ant-kpi/<name>:<hash[:12]>` follows these, so equal inputs give the same tag."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from harness.core.digest import sha256_file
from harness.core.manifest import Image
from harness.errors import BadInput
from harness.options import EnvSettings

if TYPE_CHECKING:
    pass


WHEELHOUSE_ENV: Final = "ANT_KPI_WHEELHOUSE"
BUILD_ARG_ENV_PREFIX: Final = "ANT_KPI_BUILD_ARG_"
# The folder of a build context that receives the wheelhouse's wheels.
WHEELHOUSE_DIR: Final = "wheelhouse"
_ARG_RE: Final = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)
_PIN_RE: Final = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;#]+)")


# --------------------------------------------------------------------------------------------
# Context hash
# --------------------------------------------------------------------------------------------


def context_hash(context_dir: Path, build_args: Mapping[str, str], added: Mapping[str, Path] | None = None) -> str:
    """sha256 over the context's files (relative path, mode, content) and the build arguments.

    `added` maps context-relative paths to host files put into the context for the build (the
    wheelhouse): they are hashed as if they were part of the folder.
    """
    if not context_dir.is_dir():
        raise BadInput(f"build context {context_dir} is not a directory")
    h = hashlib.sha256()
    files = {p.relative_to(context_dir).as_posix(): p for p in context_dir.rglob("*")}
    # An added file is hashed by content wherever it lies (a wheelhouse of symbolic links included).
    files.update({rel: Path(src).resolve() for rel, src in (added or {}).items()})
    entries = sorted(files.items())
    for rel, p in entries:
        st = p.lstat()
        if stat.S_ISLNK(st.st_mode):
            h.update(b"L\0" + rel.encode() + b"\0" + os.readlink(p).encode() + b"\0")
        elif stat.S_ISREG(st.st_mode):
            # Only the executable bit, as git records it: umask differences between clones
            # (0644 vs 0664) must not change the tag, but a script losing +x must.
            mode = b"755" if st.st_mode & 0o111 else b"644"
            h.update(b"F\0" + rel.encode() + b"\0" + mode + b"\0")
            h.update(_file_sha256(p, st))
        elif stat.S_ISDIR(st.st_mode):
            h.update(b"D\0" + rel.encode() + b"\0")
    for key in sorted(build_args):
        h.update(b"A\0" + key.encode() + b"=" + build_args[key].encode() + b"\0")
    return h.hexdigest()


# Wheels are large (PyTorch's CUDA build brings ~3 GB) and hashed on every run: the digest of a
# file is remembered for as long as its identity, size and modification time stay the same.
_DIGESTS: dict[tuple[str, int, int, int], bytes] = {}


def _file_sha256(p: Path, st: os.stat_result) -> bytes:
    key = (str(p.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    found = _DIGESTS.get(key)
    if found is None:
        found = _DIGESTS[key] = bytes.fromhex(sha256_file(p))
    return found


# --------------------------------------------------------------------------------------------
# Build inputs: build arguments from the environment, the wheelhouse
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BuildInputs:
    """Everything an image's tag is computed from, and what its build sends to the engine."""

    context_dir: Path
    build_args: Mapping[str, str]
    # context-relative path -> host file added to (a copy of) the context for the build
    added: Mapping[str, Path] = field(default_factory=dict)

    def digest(self) -> str:
        return context_hash(self.context_dir, self.build_args, self.added)


def declared_args(dockerfile: Path) -> set[str]:
    """The names of the Dockerfile's ARG instructions."""
    if not dockerfile.is_file():
        return set()
    return set(_ARG_RE.findall(dockerfile.read_text(encoding="utf-8")))


def env_build_args(declared: Iterable[str], given: Mapping[str, str]) -> dict[str, str]:
    """Build arguments given as ANT_KPI_BUILD_ARG_<NAME>, for the names the Dockerfile declares."""
    names = set(declared)
    return {k: v for k, v in given.items() if k in names}


SOURCE_ARCHIVES: Final = (".tar.gz", ".zip")
# The requirements file of packages an image builds from source (no wheel for its Python): the
# wheelhouse holds their source archives.
SOURCE_REQUIREMENTS: Final = "requirements-sdist.txt"


def normalize_name(name: str) -> str:
    """A distribution name as PEP 503 compares it: lower case, runs of -_. as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements(context_dir: Path, files: Iterable[Path] = ()) -> set[tuple[str, str]]:
    """(normalized name, version) of every `name==version` line of the context's requirements*.txt
    (or of `files`)."""
    pins = set()
    for req in sorted(files) or sorted(context_dir.glob("requirements*.txt")):
        for line in req.read_text(encoding="utf-8").splitlines():
            m = _PIN_RE.match(line.strip())
            if m:
                pins.add((normalize_name(m.group(1)), m.group(2).lower()))
    return pins


def source_pin(filename: str) -> tuple[str, str] | None:
    """(normalized name, version) from a source archive's file name (`name-version.tar.gz`), None
    for any other name."""
    for ext in SOURCE_ARCHIVES:
        if filename.endswith(ext) and "-" in filename:
            name, _, version = filename[: -len(ext)].rpartition("-")
            return normalize_name(name), version.lower()
    return None


def source_pins(context_dir: Path) -> set[tuple[str, str]]:
    """The pins of the context's SOURCE_REQUIREMENTS: packages its Dockerfile builds from source."""
    f = context_dir / SOURCE_REQUIREMENTS
    return pinned_requirements(context_dir, (f,)) if f.is_file() else set()


def wheel_pin(filename: str) -> tuple[str, str] | None:
    """(normalized name, version) from a wheel's file name, None if it is not a wheel's name."""
    if not filename.endswith(".whl"):
        return None
    parts = filename[: -len(".whl")].split("-")
    if len(parts) not in (5, 6):  # name-version[-build]-python-abi-platform
        return None
    return normalize_name(parts[0]), parts[1].lower()


def wheelhouse_dirs(wheelhouse: str) -> list[Path]:
    """The directories ANT_KPI_WHEELHOUSE names (os.pathsep-separated); BadInput for a missing one."""
    dirs = [Path(d).expanduser() for d in wheelhouse.split(os.pathsep) if d.strip()]
    for d in dirs:
        if not d.is_dir():
            raise BadInput(f"{WHEELHOUSE_ENV}: {d} is not a directory")
    return dirs


def wheelhouse_files(
    dirs: Iterable[Path], pins: set[tuple[str, str]], sources: set[tuple[str, str]] | None = None
) -> dict[str, Path]:
    """`wheelhouse/<file>` -> file, for the wheels the pins name and the source archives `sources`
    name (the first directory wins)."""
    found: dict[str, Path] = {}
    for d in dirs:
        for f in sorted(d.iterdir()):
            rel = f"{WHEELHOUSE_DIR}/{f.name}"
            if rel not in found and (wheel_pin(f.name) in pins or source_pin(f.name) in (sources or set())):
                found[rel] = f
    return found


def build_inputs(image: Image, root: Path, env: EnvSettings) -> BuildInputs:
    """The build arguments and added files of `image` under these settings."""
    context_dir = (root / image.context).resolve()
    if not context_dir.is_dir():
        raise BadInput(f"image {image.name}: build context {image.context} does not exist")
    build_args = {**env_build_args(declared_args(context_dir / "Dockerfile"), env.build_args), "BASE_IMAGE": image.base}
    added: dict[str, Path] = {}
    dirs = wheelhouse_dirs(env.wheelhouse)
    # Only a context with a wheelhouse/ folder asks for wheels (its Dockerfile installs from it).
    if dirs and (context_dir / WHEELHOUSE_DIR).is_dir():
        added = wheelhouse_files(dirs, pinned_requirements(context_dir), source_pins(context_dir))
    return BuildInputs(context_dir=context_dir, build_args=build_args, added=added)


def image_digest(image: Image, root: Path, env: EnvSettings) -> str:
    """The context hash `ensure_image` gives this image under these settings (its tag's suffix)."""
    return build_inputs(image, root, env).digest()


def context_digest(image: Image, root: Path, env: EnvSettings) -> str:
    """A key for the plan's image step: its context, the build arguments and the wheelhouse files it
    would add; '' when the folder is not in this version.

    Added wheels count by name, size and mtime, not content: hashing gigabytes of wheels has no
    place in a dry run, and the image step itself computes the content tag.
    """
    if not (root / image.context).is_dir():
        return ""
    inputs = build_inputs(image, root, env)
    args = dict(inputs.build_args)
    for rel, src in sorted(inputs.added.items()):
        st = Path(src).stat()
        args[f"added:{rel}"] = f"{st.st_size}:{st.st_mtime_ns}"
    return context_hash(inputs.context_dir, args)


@contextlib.contextmanager
def assembled_context(inputs: BuildInputs, scratch: Path) -> Iterator[Path]:
    """The directory to send to the engine: the context itself, or a temporary copy with the added files."""
    if not inputs.added:
        yield inputs.context_dir
        return
    scratch.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="context-", dir=scratch))
    try:
        ctx = tmp / inputs.context_dir.name
        shutil.copytree(inputs.context_dir, ctx, symlinks=True)
        for rel, src in inputs.added.items():
            dst = ctx / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)  # no copy of gigabytes when the scratch is on the same file system
            except OSError:
                shutil.copy2(src, dst)
        yield ctx
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
