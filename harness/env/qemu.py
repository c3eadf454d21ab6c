"""Run armhf/arm64 binaries under QEMU user mode, and measure what the emulator itself costs.

Everything here calls the emulator explicitly (``qemu-arm-static -L SYSROOT BINARY ARGS``) rather
than relying on binfmt_misc: the command is then the same on every host, and the sysroot is an
argument rather than an environment variable. To keep process names (comm) equal to the guest's,
the emulator is run from a private copy named after the guest (``private_emulator``); a private
copy also has its own inode, so its page-cache pages are not shared with other QEMU processes on
the host, which would otherwise lower the measured PSS while those run. See qemu/README.md.

Runs under QEMU have fidelity ``emulated`` (``FIDELITY``): PSS there is mostly the emulator's
(``emulator_overhead`` measures that share), so no memory verdict is drawn from them.
"""

from __future__ import annotations

import difflib
import functools
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, Final, Literal, cast, get_args

from harness.errors import BadInput, Blocked, StepFailed
from harness.options import SOURCE_ROOT
from harness.payload import pss

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

Arch = Literal["armhf", "arm64"]
ARCHES: Final[tuple[str, ...]] = get_args(Arch)
FIDELITY: Final = "emulated"
EMULATORS_TOML: Final = SOURCE_ROOT / "qemu" / "emulators.toml"
BINFMT_DIR: Final = Path("/proc/sys/fs/binfmt_misc")

EM_NAMES: Final[Mapping[int, str]] = {
    3: "x86",
    8: "mips",
    20: "ppc",
    21: "ppc64",
    40: "arm",
    62: "x86_64",
    183: "aarch64",
    243: "riscv",
}
_PT_INTERP: Final = 3
_ET_NAMES: Final[Mapping[int, str]] = {1: "rel", 2: "exec", 3: "dyn", 4: "core"}


@dataclass(frozen=True, kw_only=True)
class Emulator:
    """One arch's user-mode emulator and the Debian packages around it (qemu/emulators.toml)."""

    arch: Arch
    binary: str
    package: str
    binfmt: str
    binfmt_package: str
    sysroot: Path
    sysroot_package: str
    cross_gcc: str
    cross_packages: tuple[str, ...]
    elf_class: int
    elf_machine: int

    @property
    def install_fix(self) -> str:
        return f"apt-get install {self.package}"

    @property
    def cross_fix(self) -> str:
        return f"apt-get install {' '.join(self.cross_packages)}"


_FIELDS: Final = {
    "binary": str,
    "package": str,
    "binfmt": str,
    "binfmt_package": str,
    "sysroot": str,
    "sysroot_package": str,
    "cross_gcc": str,
    "cross_packages": list,
    "elf_class": int,
    "elf_machine": int,
}


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@functools.lru_cache(maxsize=4)
def load_emulators(path: Path = EMULATORS_TOML) -> Mapping[str, Emulator]:
    """The emulator table, strictly checked: unknown arches or keys are BadInput."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise BadInput(f"{path}: emulator table not found") from e
    except tomllib.TOMLDecodeError as e:
        raise BadInput(f"{path}: {e}") from e
    table: dict[str, Emulator] = {}
    for arch, entry in raw.items():
        if arch not in ARCHES or not isinstance(entry, dict):
            raise BadInput(f"{path}: [{arch}] is not an arch of {', '.join(ARCHES)}{_suggest(arch, ARCHES)}")
        for key in entry:
            if key not in _FIELDS:
                hint = _suggest(key, list(_FIELDS))
                raise BadInput(f"{path}: {arch}.{key} is not a known key{hint}")
        for key, kind in _FIELDS.items():
            if not isinstance(entry.get(key), kind):
                raise BadInput(f"{path}: {arch}.{key} must be a {kind.__name__}")
        values: dict[str, Any] = dict(entry)
        table[arch] = Emulator(
            arch=cast(Arch, arch),  # checked against ARCHES above
            binary=values["binary"],
            package=values["package"],
            binfmt=values["binfmt"],
            binfmt_package=values["binfmt_package"],
            sysroot=Path(values["sysroot"]),
            sysroot_package=values["sysroot_package"],
            cross_gcc=values["cross_gcc"],
            cross_packages=tuple(str(p) for p in values["cross_packages"]),
            elf_class=values["elf_class"],
            elf_machine=values["elf_machine"],
        )
    return MappingProxyType(table)  # cached: callers must not be able to change it


def emulator_info(arch: str) -> Emulator:
    table = load_emulators()
    if arch not in table:
        raise BadInput(
            f"no QEMU user-mode emulator for arch {arch!r}; known: "
            f"{', '.join(sorted(table))}{_suggest(arch, list(table))}"
        )
    return table[arch]


def find_emulator(arch: str) -> Path:
    """Absolute path of the arch's emulator on PATH; Blocked (with the apt-get fix) if absent."""
    emu = emulator_info(arch)
    found = shutil.which(emu.binary)
    if found is None:
        raise Blocked(f"{emu.binary} (QEMU user mode for {arch}) is not installed", emu.install_fix)
    return Path(found).resolve()


def binfmt_enabled(arch: str, *, root: Path = BINFMT_DIR) -> bool:
    """Whether the kernel runs `arch` binaries through QEMU by itself (binfmt_misc enabled)."""
    emu = emulator_info(arch)
    try:
        first = (root / emu.binfmt).read_text(encoding="ascii").splitlines()
    except OSError:
        return False
    return bool(first) and first[0].strip() == "enabled"


# -- ELF headers ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ElfInfo:
    """What the ELF header and program headers say about a binary."""

    path: Path
    elf_class: int  # 32 or 64
    little_endian: bool
    elf_type: str  # "exec", "dyn" (PIE or shared object), ...
    machine: int  # e_machine
    flags: int  # e_flags (ARM: EABI version, hard-float bit)
    interpreter: str | None  # PT_INTERP contents: the dynamic loader, None when static

    @property
    def dynamic(self) -> bool:
        """Dynamically linked: needs the guest's ld.so and libraries (a sysroot) under QEMU."""
        return self.interpreter is not None

    @property
    def machine_name(self) -> str:
        return EM_NAMES.get(self.machine, f"machine {self.machine}")

    @property
    def arch(self) -> str | None:
        """The emulator table's arch this binary belongs to, if any."""
        for name, emu in load_emulators().items():
            if (emu.elf_class, emu.elf_machine) == (self.elf_class, self.machine):
                return name
        return None

    def describe(self) -> str:
        link = "dynamic" if self.dynamic else "static"
        return f"ELF{self.elf_class} {self.machine_name} {self.elf_type} ({link})"


def elf_info(path: str | os.PathLike[str]) -> ElfInfo:
    """Read a binary's ELF header and program headers (no external tools); BadInput if not ELF."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            return _parse_elf(p, f)
    except FileNotFoundError as e:
        raise BadInput(f"{p}: no such file") from e
    except IsADirectoryError as e:
        raise BadInput(f"{p}: is a directory, not a binary") from e
    except struct.error as e:
        raise BadInput(f"{p}: truncated or corrupt ELF headers ({e})") from e
    except OSError as e:
        raise BadInput(f"{p}: cannot read: {e.strerror or e}") from e


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise struct.error(f"{size} bytes at offset {offset} are past the end of the file")
    return data


def _parse_elf(p: Path, f: BinaryIO) -> ElfInfo:
    ident = f.read(16)
    if len(ident) < 16 or ident[:4] != b"\x7fELF":
        raise BadInput(f"{p}: not an ELF binary")
    cls = {1: 32, 2: 64}.get(ident[4])
    order = {1: "<", 2: ">"}.get(ident[5])
    if cls is None or order is None:
        raise BadInput(f"{p}: unknown ELF class {ident[4]} or data encoding {ident[5]}")
    # e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags, e_ehsize, e_phentsize,
    # e_phnum: the address-sized fields are 4 bytes in ELF32 and 8 in ELF64.
    head = order + ("HHIIIIIHHH" if cls == 32 else "HHIQQQIHHH")
    fields = struct.unpack(head, _read_at(f, 16, struct.calcsize(head)))
    e_type, machine, phoff, flags, phentsize, phnum = (fields[0], fields[1], fields[4], fields[6], fields[8], fields[9])
    # Program header: p_type, then (ELF32) p_offset ... p_filesz, or (ELF64) p_flags, p_offset ...
    ph = order + ("IIIII" if cls == 32 else "IIQQQQ")
    interp: str | None = None
    for i in range(phnum):
        entry = struct.unpack(ph, _read_at(f, phoff + i * phentsize, struct.calcsize(ph)))
        if entry[0] != _PT_INTERP:
            continue
        p_offset, p_filesz = (entry[1], entry[4]) if cls == 32 else (entry[2], entry[5])
        raw = _read_at(f, p_offset, p_filesz)
        interp = raw.split(b"\0", 1)[0].decode("utf-8", "replace")
    return ElfInfo(
        path=p,
        elf_class=cls,
        little_endian=order == "<",
        elf_type=_ET_NAMES.get(e_type, str(e_type)),
        machine=machine,
        flags=flags,
        interpreter=interp,
    )


# -- private copies --------------------------------------------------------------------------------


def settle_page_cache(path: str | os.PathLike[str]) -> None:
    """Write a freshly written file back and drop it from the page cache.

    A file just written sits in the page cache in large folios, and mapping it then maps whole
    folios: a fresh copy of qemu-arm-static showed ~2.4 MB more PSS (13.2 vs 10.8 MB on the
    emulator side) than the same file read back from disk. Dropping the cached pages makes the
    next run fault them in from disk, as an installed binary is. Syncing first also keeps dirty
    pages out of Pss_Dirty-style sums.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", ".."):
        raise BadInput(f"{name!r} is not a plain file name for a private emulator copy")


def private_emulator(
    arch: str, dest_dir: str | os.PathLike[str], name: str, *, emulator: str | os.PathLike[str] | None = None
) -> Path:
    """Copy the arch's emulator to `dest_dir/name`: its own inode, comm = `name` (first 15 chars).

    A shared emulator binary shares its page-cache pages with every other QEMU process using it,
    which lowers this run's PSS by their share while they run. The copy is settled (see
    `settle_page_cache`) and replaced atomically, so a run still using an older copy keeps its
    file. An existing identical copy (same size and mtime) is reused.
    """
    _check_name(name)
    src = Path(emulator) if emulator is not None else find_emulator(arch)
    if not src.is_file():
        raise Blocked(f"emulator {src} does not exist", emulator_info(arch).install_fix)
    dest_root = Path(dest_dir)
    dest_root.mkdir(parents=True, exist_ok=True)
    dest = dest_root / name
    if dest.exists() and dest.samefile(src):
        raise BadInput(f"{dest} is the emulator itself, not a private copy")
    _copy_file(str(src), str(dest))
    dest.chmod(dest.stat().st_mode | 0o755)
    return dest


def private_sysroot(
    arch: str, dest_dir: str | os.PathLike[str], *, source: str | os.PathLike[str] | None = None
) -> Path:
    """Copy a sysroot's runtime libraries (lib/, no .a/.o) to `dest_dir`; return it for `-L`.

    The guest then loads the libc and ld.so the binary was built against (e.g. copied out of the
    build image), not whatever the host's cross packages hold, and their pages are not shared with
    other QEMU processes that use the system sysroot.
    """
    emu = emulator_info(arch)
    src = Path(source) if source is not None else emu.sysroot
    if not (src / "lib").is_dir():
        raise Blocked(
            f"sysroot {src} for {arch} has no lib/ directory",
            f"apt-get install {emu.sysroot_package}, or copy it out of the build image",
        )
    dest = Path(dest_dir)
    shutil.copytree(
        src / "lib",
        dest / "lib",
        symlinks=True,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("*.a", "*.o", "ldscripts", "*.spec"),
        copy_function=_copy_file,
    )
    return dest


def _copy_file(src: str, dst: str) -> str:
    """Copy for private copies: keep an identical file, else write a new inode and settle it.

    Rewriting a file in place would change the pages of a library or emulator that a running
    guest has mapped; a new inode leaves such a run alone.
    """
    st = os.stat(src)
    try:
        have = os.stat(dst)
    except FileNotFoundError:
        pass
    else:
        if (have.st_size, have.st_mtime_ns) == (st.st_size, st.st_mtime_ns):
            return dst
    target = Path(dst)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, 1 << 20)
        settle_page_cache(tmp)
        shutil.copystat(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dst


# -- commands --------------------------------------------------------------------------------------


def check_arch(info: ElfInfo, arch: str) -> None:
    """BadInput unless the binary is one the arch's emulator runs."""
    emu = emulator_info(arch)
    if (info.elf_class, info.machine) != (emu.elf_class, emu.elf_machine):
        want = f"ELF{emu.elf_class} {EM_NAMES.get(emu.elf_machine, emu.elf_machine)}"
        raise BadInput(f"{info.path} is {info.describe()}, not an {arch} binary ({want})")


def qemu_command(
    binary: str | os.PathLike[str],
    args: Sequence[str],
    *,
    arch: str,
    sysroot: str | os.PathLike[str] | None = None,
    emulator: str | os.PathLike[str] | None = None,
) -> list[str]:
    """argv running `binary args` under the arch's emulator; `-L sysroot` only when dynamic."""
    info = elf_info(binary)
    check_arch(info, arch)
    emu = emulator_info(arch)
    runner = str(emulator) if emulator is not None else str(find_emulator(arch))
    if not info.dynamic:
        return [runner, str(binary), *args]
    root = Path(sysroot) if sysroot is not None else emu.sysroot
    fix = f"apt-get install {emu.sysroot_package}, or pass the sysroot the binary was built with"
    if not root.is_dir():
        raise Blocked(f"sysroot {root} for the dynamic {arch} binary {binary} is missing", fix)
    loader = root / str(info.interpreter).lstrip("/")
    if not loader.exists():
        raise Blocked(f"{binary} needs {info.interpreter}, which sysroot {root} lacks", fix)
    return [runner, "-L", str(root), str(binary), *args]


# -- the emulator's own share ----------------------------------------------------------------------

# Written into work_dir and cross-compiled statically: a guest that maps almost nothing, so the
# PSS of its run is what the emulator itself costs.
PROBE_SOURCE: Final = """\
/* Emulator-overhead probe of the ANT KPI harness: print one line, stay alive, exit 0. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    double hold = argc > 1 ? atof(argv[1]) : 0.5;
    struct timespec left;
    left.tv_sec = (time_t)hold;
    left.tv_nsec = (long)((hold - (double)left.tv_sec) * 1e9);
    puts("probe ready");
    fflush(stdout);
    while (nanosleep(&left, &left) != 0)
        ;
    return 0;
}
"""


def build_probe(arch: str, work_dir: str | os.PathLike[str]) -> Path:
    """Cross-compile the static probe into work_dir (reused while its source is unchanged)."""
    emu = emulator_info(arch)
    gcc = shutil.which(emu.cross_gcc)
    if gcc is None:
        raise Blocked(f"{emu.cross_gcc} (cross compiler for {arch}) is not installed", emu.cross_fix)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    src = work / "probe.c"
    out = work / f"probe-static-{arch}"
    if not src.is_file() or src.read_text(encoding="utf-8") != PROBE_SOURCE:
        src.write_text(PROBE_SOURCE, encoding="utf-8")
    if out.is_file() and out.stat().st_mtime_ns >= src.stat().st_mtime_ns:
        return out
    log = work / f"probe-build-{arch}.log"
    with log.open("wb") as f:
        rc = subprocess.run(
            [gcc, "-O2", "-static", "-o", str(out), str(src)], stdout=f, stderr=subprocess.STDOUT, check=False
        ).returncode
    if rc != 0:
        text = log.read_text(encoding="utf-8", errors="replace")
        if "cannot find -lc" in text or "stdio.h" in text:
            raise Blocked(f"{emu.cross_gcc} cannot link a static {arch} binary (no static libc)", emu.cross_fix)
        raise StepFailed(f"building the {arch} emulator probe failed (exit {rc})", log)
    return out


def emulator_overhead(
    arch: str,
    work_dir: str | os.PathLike[str],
    *,
    probe: str | os.PathLike[str] | None = None,
    emulator: str | os.PathLike[str] | None = None,
    hold_s: float = 0.5,
    interval: float = pss.DEFAULT_INTERVAL,
    timeout: float = 120.0,
) -> pss.PssResult:
    """PSS of a trivial static guest under a private copy of the emulator: QEMU's own share.

    Its `peak("pss_kb")` is the figure shown beside emulated numbers; `peak("qemu_pss_kb")`
    excludes the probe's own few hundred KB. `probe` may name a prebuilt static binary; otherwise
    one is compiled into `work_dir` with the cross compiler (Blocked when that is missing).
    """
    work = Path(work_dir)
    binary = Path(probe) if probe is not None else build_probe(arch, work)
    info = elf_info(binary)
    check_arch(info, arch)
    if info.dynamic:
        raise BadInput(f"{binary}: the emulator probe must be static, it is {info.describe()}")
    settle_page_cache(binary)
    private = private_emulator(arch, work / "qemu-private", binary.name, emulator=emulator)
    argv = qemu_command(binary, [f"{hold_s:g}"], arch=arch, emulator=private)
    result = pss.sample_process(
        argv,
        interval=interval,
        timeout=timeout,
        guest_exe=binary,
        stdout=str(work / f"{binary.name}.out"),
        stderr=subprocess.STDOUT,
    )
    if result.timed_out or result.exit_status != 0:
        how = "timed out" if result.timed_out else f"exited {result.exit_status}"
        raise StepFailed(f"emulator probe {binary.name} under {private} {how}", work / f"{binary.name}.out")
    return result
