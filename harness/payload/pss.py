"""PSS sampler: start a command, sample the PSS of its process tree, write JSON and a vminfo log.

Why this exists. The seed procedure runs ``vminfo "<iotjs> <app>.js" log -i``. vminfo never starts
anything: its first argument is a process *name*, and ``-i`` takes one snapshot of processes that
are already running and whose ``ps -A`` name equals it. "iotjs app.js" is never such a name, so the
log gets an empty line. Even used correctly, vminfo matches by name (so it adds up unrelated
processes that share the name), samples at most once per second (short runs get no sample), and
its PSS sum also counts ``Pss_Dirty:`` lines on kernels >= 6.0.

This sampler instead
  * starts the command itself (an argv list, never a shell) in a new session;
  * follows that PID and all its descendants (``/proc/PID/task/*/children``; a ``/proc/*/stat``
    parent scan where that file does not exist);
  * takes a sample every ``interval`` seconds (default 0.01 s, i.e. >= 100 Hz). A *measured*
    sample reads ``/proc/PID/smaps_rollup`` of every process in the tree, falling back to the sum
    of the ``Pss:`` lines of ``/proc/PID/smaps`` (exactly ``Pss:``, not
    ``Pss_Dirty:``/``Pss_Anon:``/...) on kernels without smaps_rollup; there ``pss_anon_kb`` is the
    sum of ``Anonymous:`` (resident, not proportional). A *carried* sample repeats the last
    measured values (see "Measured and carried samples" below);
  * stops when the command exits (a zombie has no memory map, so it cannot be sampled) or when the
    timeout kills the whole tree. "final" is the last sample taken while the command was alive.

Measured and carried samples. smaps_rollup makes the kernel walk the page tables of every mapping,
so its cost grows with the mapped size (0.4 ms to 2 ms for a 32 MB process on a 2-core VM, the
more the busier the host); read at every tick, it cost about 9 % of a core at 100 Hz. Every tick
therefore reads only ``/proc/PID/stat`` of each process in the tree, one pread on a descriptor kept
open, and compares its memory counters: minor and major faults, virtual size and RSS. The whole
tree is measured (so that a sample is one coherent reading) when
  * it is the first sample, or the timeout is about to kill the tree;
  * a memory counter moved, or the set of processes changed (a child appeared or exited; a zombie
    has no memory, so its virtual size and RSS drop to 0). Mapping a page in is a page fault, so
    growth moves a fault count even where the kernel's RSS counter lags (it is batched per CPU or
    per thread on many kernels); a copy-on-write break after fork() moves PSS but not RSS, and it
    is a fault too; an munmap moves the virtual size;
  * ``remeasure_s`` (default 1 s; 0 = every sample) passed since the last measurement. PSS divides
    each page by the number of processes mapping it, so it changes with no counter of this tree
    moving when a process *outside* the tree maps or unmaps the same pages (another instance of the
    runtime, anything using the same libc), when KSM merges pages, or when memory is given back
    (madvise, reclaim) by less than a lagging RSS counter shows. These are shares of shared pages
    or small drops, never a rise of the tree's own memory; the default is vminfo's own period, as
    re-reading an idle 32 MB process four times a second cost about 0.5 % of a core by itself
    on that VM.
Every other sample is carried: it repeats the last measured values with its own time. A rise of
the tree's PSS from inside the tree is a fault or a change of the process set, so the peak is
measured as at full rate; only the share of pages that are also used outside the tree can drift
unseen, for at most ``remeasure_s``. The exit of a process cannot be foreseen, so its last sample
is the last tick before it: measured if anything changed, otherwise carried from at most
``remeasure_s`` earlier. Each sample says whether it was measured; ``measured_samples`` and
``measured_rate_hz`` give the real rate of PSS readings. The sampler's CPU use follows the
command's memory activity: a command that keeps faulting pages in is measured at every tick.

Guest-only PSS (``--guest-exe``, QEMU user mode). Under qemu-user one host process holds both the
emulator (its code, malloc heap, the TCG translation buffer) and the guest. The guest's share is
the PSS of the VMAs inside the guest's address space, found per sample from ``/proc/PID/smaps``:

  1. *Reservation rule* (32-bit guests, e.g. armhf under qemu-arm). qemu reserves the whole guest
     address space up front as one PROT_NONE block (observed: 0x1000-0x100000000 with qemu 7.2 and
     guest_base 0) and carves every guest mapping out of it, so the guest space is a gap-free run
     of address-adjacent VMAs. The guest space is the maximal gap-free run that contains the guest
     executable's mappings, if that run spans at least 1 GiB. qemu puts the reservation into the
     lowest free host addresses (guest_base 0 where vm.mmap_min_addr allows it; checked with
     ``-B 0x10000`` too), far below the host's heap and mmaps, so the run never merges with them.
  2. *Window rule* (64-bit guests, e.g. arm64 under qemu-aarch64: no reservation, guest_base 0,
     guest mappings scattered with gaps; observed: the executable at 0x400000 or 0x5500000000 and
     guest mmaps from 0x5500000000 upwards, while the host's brk heap lies at 0x5555xxxxxxxx and
     its mmaps at 0x7fxxxxxxxxxx). The guest space is the address window between the nearest
     *host landmark* below the guest executable's mappings and the nearest one above them. Host
     landmarks are the emulator's own file mappings (the file ``/proc/PID/exe`` names) and the
     kernel-named regions [heap], [stack], [vdso], [vvar], [vvar_vclock], [vsyscall]: qemu gives
     the guest plain anonymous mappings only, so these names always belong to the host.

``guest_pss_kb`` is the sum of ``Pss:`` in the guest space, ``guest_anon_kb`` the sum of
``Anonymous:`` there (heap, .bss, stack: the most runtime-specific part), and ``qemu_pss_kb`` is
the tree's total PSS minus the guest PSS (the emulator plus any wrapper process). Without
``--guest-exe`` only the cheaper smaps_rollup is read; with it, smaps is read at measured samples
only, like smaps_rollup.

The vminfo log (``--vminfo-log``) gets one line per sample in vminfo's format
``timestamp_us text_KB data_KB stack_KB shlib_KB pss_KB max_pss_KB``: text/data/stack/lib are
VmExe/VmData/VmStk/VmLib of the root process (under qemu they describe the emulator), pss is the
tree's PSS and max_pss its running maximum. /proc/PID/status is read at measured samples only:
its sizes change with the mappings, and so with the virtual size (an mprotect, which moves VmData
or VmLib alone, shows at the next measurement). The seed's "last value" reading still works: the
last non-empty line's 6th field is the final PSS and its 7th the peak.

This file is copied to boards that only have a stock python3 and run there as
``python3 pss.py [options] -- CMD ARGS...``. It therefore uses the standard library only, imports
nothing from the harness, and runs on Python >= 3.7.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

FORMAT = "ant-kpi-pss"
# v2 added carried samples ("measured": false) and remeasure_s; v1 documents still load (every
# sample of a v1 document was measured).
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
DEFAULT_INTERVAL = 0.01
DEFAULT_REMEASURE = 1.0  # seconds; see "Measured and carried samples" in the module docstring
SERIES = ("pss_kb", "pss_anon_kb", "guest_pss_kb", "guest_anon_kb", "qemu_pss_kb")
# A gap-free run at least this large around the guest executable is qemu's guest reservation.
RESERVATION_MIN_BYTES = 1 << 30
HOST_REGIONS = frozenset(
    {"[heap]", "[stack]", "[vdso]", "[vvar]", "[vvar_vclock]", "[vsyscall]"}
)
# Exit codes of the command-line tool when the command did not run to its own end (as timeout(1)
# and the shell use them).
EXIT_TIMEOUT = 124
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127
EXIT_USAGE = 2
KILL_WAIT_S = 2.0  # how long to wait for a killed tree to disappear

# kw_only needs Python 3.10; boards may have 3.7-3.9, where the fields are merely keyword-friendly.
_KW_ONLY: dict[str, Any] = {"kw_only": True} if sys.version_info >= (3, 10) else {}


class SamplerError(Exception):
    """The sampler could not do its job (not a failure of the sampled command)."""


class LaunchError(SamplerError):
    """The command could not be started: missing, not executable, bad working directory."""

    def __init__(self, argv: Sequence[str], reason: str, exit_code: int) -> None:
        self.argv = list(argv)
        self.reason = reason
        self.exit_code = exit_code
        super().__init__(f"cannot start {argv[0]!r}: {reason}" if argv else reason)


@dataclass(frozen=True, **_KW_ONLY)
class Sample:
    """One sample of the process tree; guest fields are None unless a guest executable was named."""

    t: float
    pss_kb: int
    pss_anon_kb: int
    procs: int = 1
    guest_pss_kb: int | None = None
    guest_anon_kb: int | None = None
    qemu_pss_kb: int | None = None
    measured: bool = True  # False: the values are carried from the last measured sample

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"t": self.t, "pss_kb": self.pss_kb,
                             "pss_anon_kb": self.pss_anon_kb, "procs": self.procs}
        for name in ("guest_pss_kb", "guest_anon_kb", "qemu_pss_kb"):
            value = getattr(self, name)
            if value is not None:
                d[name] = value
        if not self.measured:  # written for carried samples only: absent means measured
            d["measured"] = False
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sample:
        return cls(t=float(d["t"]), pss_kb=int(d["pss_kb"]), pss_anon_kb=int(d["pss_anon_kb"]),
                   procs=int(d.get("procs", 1)), guest_pss_kb=d.get("guest_pss_kb"),
                   guest_anon_kb=d.get("guest_anon_kb"), qemu_pss_kb=d.get("qemu_pss_kb"),
                   measured=bool(d.get("measured", True)))

    def carried(self, t: float) -> Sample:
        """This sample's values at a later time `t`, marked as not measured."""
        return Sample(t=t, pss_kb=self.pss_kb, pss_anon_kb=self.pss_anon_kb, procs=self.procs,
                      guest_pss_kb=self.guest_pss_kb, guest_anon_kb=self.guest_anon_kb,
                      qemu_pss_kb=self.qemu_pss_kb, measured=False)


@dataclass(frozen=True, **_KW_ONLY)
class PssResult:
    """A sampled run: how it ended, how well it was sampled, and the trace."""

    argv: tuple[str, ...]
    exit_status: int | None  # subprocess convention: negative = killed by that signal
    timed_out: bool
    wall_s: float
    interval_s: float
    started_at: float  # Unix time of the start
    sampler_cpu_s: float
    guest_exe: str | None = None
    guest_rule: str | None = None  # "reservation" or "window", see the module docstring
    remeasure_s: float | None = None  # None: every sample measured (v1 documents)
    trace: tuple[Sample, ...] = field(default=(), repr=False)

    @property
    def samples(self) -> int:
        return len(self.trace)

    @property
    def measured_samples(self) -> int:
        """Samples with a fresh PSS reading (smaps_rollup or smaps); the rest are carried."""
        return sum(1 for s in self.trace if s.measured)

    @property
    def rate_hz(self) -> float:
        """Achieved sample rate: samples per second over the sampled span."""
        return self._rate(len(self.trace))

    @property
    def measured_rate_hz(self) -> float:
        """Measured samples per second over the sampled span: the real rate of PSS readings."""
        return self._rate(self.measured_samples)

    def _rate(self, count: int) -> float:
        if len(self.trace) < 2 or count < 2:
            return 0.0
        span = self.trace[-1].t - self.trace[0].t
        return (count - 1) / span if span > 0 else 0.0

    def values(self, series: str) -> list[int]:
        if series not in SERIES:
            raise ValueError(f"unknown series {series!r}; one of {', '.join(SERIES)}")
        return [v for v in (getattr(s, series) for s in self.trace) if v is not None]

    def peak(self, series: str = "pss_kb") -> int | None:
        vals = self.values(series)
        return max(vals) if vals else None

    def final(self, series: str = "pss_kb") -> int | None:
        vals = self.values(series)
        return vals[-1] if vals else None

    def summary(self) -> dict[str, Any]:
        """Everything but the trace."""
        d: dict[str, Any] = {
            "format": FORMAT, "version": FORMAT_VERSION, "argv": list(self.argv),
            "exit_status": self.exit_status, "timed_out": self.timed_out,
            "wall_s": self.wall_s, "interval_s": self.interval_s,
            "started_at": self.started_at, "samples": self.samples,
            "rate_hz": round(self.rate_hz, 2), "measured_samples": self.measured_samples,
            "measured_rate_hz": round(self.measured_rate_hz, 2),
            "remeasure_s": self.remeasure_s, "sampler_cpu_s": self.sampler_cpu_s,
            "guest_exe": self.guest_exe, "guest_rule": self.guest_rule,
        }
        for series in SERIES:
            d[f"peak_{series}"] = self.peak(series)
            d[f"final_{series}"] = self.final(series)
        return d

    def to_dict(self) -> dict[str, Any]:
        d = self.summary()
        d["trace"] = [s.to_dict() for s in self.trace]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PssResult:
        if d.get("format") != FORMAT or d.get("version") not in READABLE_VERSIONS:
            raise ValueError(f"not a {FORMAT} v1-v{FORMAT_VERSION} document "
                             f"(format={d.get('format')!r}, version={d.get('version')!r})")
        remeasure = d.get("remeasure_s")
        return cls(argv=tuple(d["argv"]), exit_status=d["exit_status"],
                   timed_out=bool(d["timed_out"]), wall_s=float(d["wall_s"]),
                   interval_s=float(d["interval_s"]), started_at=float(d["started_at"]),
                   sampler_cpu_s=float(d["sampler_cpu_s"]), guest_exe=d.get("guest_exe"),
                   guest_rule=d.get("guest_rule"),
                   remeasure_s=float(remeasure) if remeasure is not None else None,
                   trace=tuple(Sample.from_dict(s) for s in d.get("trace", ())))


def load_json(path: str | os.PathLike[str]) -> PssResult:
    """Read a result written by ``--json`` / ``write_json``."""
    with open(path, encoding="utf-8") as f:
        return PssResult.from_dict(json.load(f))


def write_json(result: PssResult, path: str | os.PathLike[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result.to_dict(), f, indent=1)
        f.write("\n")


def read_vminfo_log(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(final PSS, max PSS) in KB of a vminfo-format log: fields 6, 7 of the last non-empty line."""
    last = ""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                last = line
    fields = last.split()
    if len(fields) != 7:
        raise ValueError(f"{os.fspath(path)}: no vminfo line (7 fields) found")
    return int(fields[5]), int(fields[6])


# -- /proc readers ------------------------------------------------------------------------------


def _read(path: str) -> bytes | None:
    """A /proc file's content, or None if the process is gone or hidden from us."""
    # os-level calls: no buffered file object for what is one or two reads.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # gone, or hidden from us
        return None
    try:
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except OSError:  # ESRCH and friends while the process is exiting
        return None
    finally:
        os.close(fd)


def _kb(line: bytes) -> int:
    return int(line.split()[1])


def _has_smaps_rollup() -> bool:
    return os.path.exists("/proc/self/smaps_rollup")


def _open_cached(fds: dict[tuple[int, str], int], pid: int, name: str) -> int | None:
    """A descriptor of /proc/PID/<name> kept open in `fds` (by PID and name); None if gone.

    Only for files that look the process up at each read (stat, statm), not at open.
    """
    key = (pid, name)
    fd = fds.get(key)
    if fd is None:
        try:
            fd = fds[key] = os.open(f"/proc/{pid}/{name}", os.O_RDONLY)
        except OSError:  # gone or hidden from us
            return None
    return fd


def read_rollup(pid: int, *, rollup: bool = True) -> tuple[int, int] | None:
    """(Pss, Pss_Anon) in KB of one process; None when it has no memory map (gone or a zombie)."""
    if rollup:
        # Opened afresh each time: smaps_rollup binds the memory map at open, so a descriptor kept
        # from before an exec (or from inside a vfork) would go on reading the old map.
        data = _read(f"/proc/{pid}/smaps_rollup")
        if not data:
            return None
        pss = anon = None
        for line in data.splitlines():
            if line.startswith(b"Pss:"):
                pss = _kb(line)
            elif line.startswith(b"Pss_Anon:"):
                anon = _kb(line)
        if pss is None:
            return None
        return pss, anon or 0
    vmas = read_smaps(pid)
    if not vmas:
        return None
    return sum(v.pss_kb for v in vmas), sum(v.anon_kb for v in vmas)


@dataclass(frozen=True, **_KW_ONLY)
class Vma:
    """One mapping of /proc/PID/smaps with the two counters the guest split needs."""

    start: int
    end: int
    dev: tuple[int, int]
    inode: int
    path: str
    pss_kb: int = 0
    anon_kb: int = 0


# One pass of the regex engine over the whole file instead of a Python loop over its ~25 lines per
# mapping: the guest split reads smaps at every tick, and this keeps the sampler's CPU share low.
# Header lines start with a lower-case hex address; "Pss:" is matched exactly, so Pss_Dirty:,
# Pss_Anon: and the like never count.
_SMAPS_RE = re.compile(
    rb"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ ([0-9a-f]+):([0-9a-f]+) (\d+)[ \t]*(.*)$"
    rb"|^Pss:[ \t]+(\d+)|^Anonymous:[ \t]+(\d+)",
    re.MULTILINE,
)


def parse_smaps(data: bytes) -> list[Vma]:
    """Parse /proc/PID/smaps text into mappings with their Pss: and Anonymous: values."""
    vmas: list[Vma] = []
    head: tuple[bytes, ...] | None = None
    pss = anon = 0

    def flush() -> None:
        if head is not None:
            vmas.append(Vma(start=int(head[0], 16), end=int(head[1], 16),
                            dev=(int(head[2], 16), int(head[3], 16)), inode=int(head[4]),
                            path=head[5].rstrip().decode("utf-8", "surrogateescape"),
                            pss_kb=pss, anon_kb=anon))

    for m in _SMAPS_RE.finditer(data):
        if m.group(1) is not None:
            flush()
            head = m.group(1, 2, 3, 4, 5, 6)
            pss = anon = 0
        elif m.group(7) is not None:
            pss = int(m.group(7))
        else:
            anon = int(m.group(8))
    flush()
    return vmas


def read_smaps(pid: int) -> list[Vma] | None:
    data = _read(f"/proc/{pid}/smaps")
    return parse_smaps(data) if data else None


@dataclass(frozen=True, **_KW_ONLY)
class GuestSplit:
    pss_kb: int
    anon_kb: int
    rule: str | None  # None: the guest executable is not mapped in this process


@dataclass(frozen=True, **_KW_ONLY)
class ExeId:
    """How to recognise the guest executable's mappings: by device+inode, or by path."""

    path: str
    dev: tuple[int, int] | None = None
    inode: int | None = None

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> ExeId:
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except OSError:
            return cls(path=real)
        return cls(path=real, dev=(os.major(st.st_dev), os.minor(st.st_dev)), inode=st.st_ino)

    def matches(self, vma: Vma) -> bool:
        # Path as a fallback: on overlayfs maps may show the underlying device and inode.
        if self.inode is not None and vma.inode == self.inode and vma.dev == self.dev:
            return True
        return vma.path == self.path


def guest_split(vmas: Sequence[Vma], exe: ExeId, emulator_path: str = "") -> GuestSplit:
    """Guest-only PSS and anonymous KB of one process; the rule is in the module docstring."""
    idx = [i for i, v in enumerate(vmas) if exe.matches(v)]
    if not idx:
        return GuestSplit(pss_kb=0, anon_kb=0, rule=None)
    first, last = idx[0], idx[-1]

    # 1. reservation: the gap-free run of adjacent VMAs around the executable.
    lo = first
    while lo > 0 and vmas[lo - 1].end == vmas[lo].start:
        lo -= 1
    hi = last
    while hi + 1 < len(vmas) and vmas[hi].end == vmas[hi + 1].start:
        hi += 1
    if vmas[hi].end - vmas[lo].start >= RESERVATION_MIN_BYTES:
        inside = vmas[lo:hi + 1]
        rule = "reservation"
    else:
        # 2. window between the nearest host landmarks below and above the executable.
        def landmark(v: Vma) -> bool:
            return v.path in HOST_REGIONS or (bool(emulator_path) and v.path == emulator_path)

        lo = first
        while lo > 0 and not landmark(vmas[lo - 1]):
            lo -= 1
        hi = last
        while hi + 1 < len(vmas) and not landmark(vmas[hi + 1]):
            hi += 1
        inside = vmas[lo:hi + 1]
        rule = "window"
    return GuestSplit(pss_kb=sum(v.pss_kb for v in inside), anon_kb=sum(v.anon_kb for v in inside),
                      rule=rule)


def read_status_kb(
    pid: int, keys: Sequence[str] = ("VmExe", "VmData", "VmStk", "VmLib")
) -> list[int]:
    """Values in KB of the named /proc/PID/status fields (0 for a missing one)."""
    data = _read(f"/proc/{pid}/status") or b""
    found: dict[str, int] = {}
    for line in data.splitlines():
        name, _, rest = line.partition(b":")
        key = name.decode("ascii", "replace")
        if key in keys:
            found[key] = int(rest.split()[0]) if rest.split() else 0
    return [found.get(k, 0) for k in keys]


# -- the process tree ---------------------------------------------------------------------------


class _Tree:
    """The root PID and its descendants, via the children files or a parent scan."""

    RESCAN_S = 0.1  # the parent scan reads every /proc/*/stat: do it at most 10 times a second

    def __init__(self, root: int) -> None:
        self.root = root
        self.children_files = os.path.exists(f"/proc/self/task/{os.getpid()}/children")
        self._cached: list[int] = [root]
        self.next_scan = -math.inf  # monotonic time of the next walk
        # Open /proc/PID/stat descriptors by (PID, name): re-read with pread, so a tick costs one
        # syscall per process instead of open, read and close.
        self.fds: dict[tuple[int, str], int] = {}

    def pids(self) -> list[int]:
        # The tree is re-walked at most 10 times a second: a new child is seen within 100 ms.
        now = time.monotonic()
        if now >= self.next_scan:
            self._cached = self._walk_children() if self.children_files else self._scan_parents()
            self.next_scan = now + self.RESCAN_S
            alive = set(self._cached)
            for gone in [key for key in self.fds if key[0] not in alive]:
                os.close(self.fds.pop(gone))
        return list(self._cached)

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()

    def _walk_children(self) -> list[int]:
        out = [self.root]
        i = 0
        while i < len(out):
            pid = out[i]
            i += 1
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                data = _read(f"/proc/{pid}/task/{tid}/children")
                if data:
                    out.extend(int(x) for x in data.split() if int(x) not in out)
        return out

    def _scan_parents(self) -> list[int]:
        kids: dict[int, list[int]] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            data = _read(f"/proc/{name}/stat")
            if not data:
                continue
            # The comm field may contain spaces and parentheses: the ppid follows the last ')'.
            fields = data[data.rfind(b")") + 2:].split()
            if len(fields) > 1:
                kids.setdefault(int(fields[1]), []).append(int(name))
        out = [self.root]
        i = 0
        while i < len(out):
            out.extend(kids.get(out[i], ()))
            i += 1
        return out


def _kill_tree(proc: subprocess.Popen[bytes], tree: _Tree) -> None:
    """SIGKILL the command's process group and every descendant (some may have left the group)."""
    pids = tree.pids()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    # SIGKILL is delivered asynchronously: wait (briefly) until none of them runs any more, so that
    # the caller's next run does not share the machine with the remains of this one.
    deadline = time.monotonic() + KILL_WAIT_S
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids if pid != proc.pid):
        time.sleep(0.005)


def _alive(pid: int) -> bool:
    """Running or sleeping; False once it is gone or a zombie."""
    data = _read(f"/proc/{pid}/stat")
    if not data:
        return False
    return data[data.rfind(b")") + 2:][:1] not in (b"Z", b"X")


class _ExitWatch:
    """Sleep until the next tick, waking at once when the command exits (pidfd where available)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        self._poll: select.poll | None = None
        self._fd = -1
        pidfd_open: Callable[[int], int] | None = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            try:
                self._fd = pidfd_open(proc.pid)
            except OSError:
                self._fd = -1
        if self._fd >= 0:
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLIN)

    def waiter(self) -> Callable[[int], object]:
        """A function that waits up to N ms and returns something true once the command exited."""
        if self._poll is not None:
            return self._poll.poll  # the pidfd turns readable at the exit: no waitpid() per tick
        return self._sleep_then_check

    def _sleep_then_check(self, ms: int) -> bool:
        if ms > 0:
            time.sleep(ms / 1000)
        return self._proc.poll() is not None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _open_output(target: Any, stack: list[IO[Any]]) -> Any:
    if target is None or isinstance(target, int) or hasattr(target, "write"):
        return target
    f = open(target, "wb")  # noqa: SIM115 - closed by the caller through `stack`
    stack.append(f)
    return f


def _is_path(target: object) -> bool:
    return isinstance(target, (str, os.PathLike))


def _same_path(a: Any, b: Any) -> bool:
    return os.path.abspath(os.fspath(a)) == os.path.abspath(os.fspath(b))


class _Sampler:
    """Samples one tree until its root exits: measures it when its counters moved, else carries.

    The rules are in "Measured and carried samples" in the module docstring. The loop runs 100
    times a second for the whole run, so a carried tick is kept to one pread per process and a
    comparison of bytes, and carried samples become Sample objects only after the run.
    """

    def __init__(self, tree: _Tree, *, exe: ExeId | None, rollup: bool, remeasure_s: float,
                 read_sizes: bool) -> None:
        self.tree = tree
        self.exe = exe
        self.rollup = rollup
        self.remeasure_s = remeasure_s
        self.read_sizes = read_sizes
        self.guest_rule: str | None = None
        self.timed_out = False
        # VmExe/VmData/VmStk/VmLib of the root at each measured sample, for the vminfo log.
        self.sizes: list[list[int]] = []
        self._emulators: dict[int, str] = {}

    def run(self, proc: subprocess.Popen[bytes], t0: float, *, interval: float,
            timeout: float | None) -> list[Sample]:
        """Sample every `interval` s from monotonic time `t0` until the root exits or times out."""
        ticks: list[Sample | float] = []  # a measured Sample, or the run time of a carried sample
        watch = _ExitWatch(proc)
        wait_ms = watch.waiter()
        # Bound to locals: the loop runs 100 times a second, and cold caches make lookups count.
        pread, monotonic, ceil, append = os.pread, time.monotonic, math.ceil, ticks.append
        sizes, zeros = itertools.repeat(1024), itertools.repeat(0)  # pread(fd, 1024, 0) for each fd
        tree, remeasure_s = self.tree, self.remeasure_s
        deadline = t0 + timeout if timeout is not None else math.inf
        pids: list[int] = []
        fds: list[int] = []  # /proc/PID/stat of each process, in the order of `pids`
        last: list[bytes] = []  # what they said at the last tick
        measured_at = -math.inf  # run time of the last measurement; -inf forces one
        next_tick = t0
        try:
            while True:
                now = monotonic()
                t = now - t0
                if now >= deadline:
                    # The last moment this tree can be read: measure it whatever the counters say.
                    sample = self._measure(pids or tree.pids(), t)
                    if sample is not None:
                        append(sample)
                    _kill_tree(proc, tree)
                    self.timed_out = True
                    break
                if now >= tree.next_scan:
                    fresh = tree.pids()
                    if fresh != pids:
                        pids, fds = fresh, self._counter_fds(fresh)
                        measured_at = -math.inf  # the set changed
                try:
                    read = list(map(pread, fds, sizes, zeros))
                except OSError:  # a descendant is gone: read the others one by one
                    read = self._read_each(fds)
                if not read[0]:
                    break  # the root is gone
                if t - measured_at >= remeasure_s or (read != last and _counters_moved(read, last)):
                    sample = self._measure(pids, t)
                    if sample is None:  # the root has no memory map any more: it exited
                        break
                    append(sample)
                    measured_at = t
                else:
                    append(t)
                last = read
                next_tick += interval
                if next_tick > deadline:
                    next_tick = deadline
                now = monotonic()
                if next_tick < now:  # we fell behind (a long read, a busy host): don't burst
                    next_tick = now
                if wait_ms(ceil((next_tick - now) * 1000)):
                    break
        finally:
            watch.close()
        trace: list[Sample] = []
        measured: Sample | None = None
        for tick in ticks:
            if isinstance(tick, Sample):
                measured = tick
                trace.append(tick)
            elif measured is not None:
                trace.append(measured.carried(round(tick, 6)))
        return trace

    def _counter_fds(self, pids: list[int]) -> list[int]:
        fds: list[int] = []
        for pid in pids:
            fd = _open_cached(self.tree.fds, pid, "stat")
            fds.append(fd if fd is not None else -1)
        return fds

    @staticmethod
    def _read_each(fds: list[int]) -> list[bytes]:
        out: list[bytes] = []
        for fd in fds:
            try:
                out.append(os.pread(fd, 1024, 0))
            except OSError:
                out.append(b"")
        return out

    def _measure(self, pids: list[int], t: float) -> Sample | None:
        """Read the PSS of every process in `pids`; None when the root has no memory map."""
        tree, exe = self.tree, self.exe
        pss = anon = procs = 0
        guest_pss = guest_anon = 0
        for pid in pids:
            got = read_rollup(pid, rollup=self.rollup)
            if got is None:
                if pid == tree.root:
                    return None
                continue  # a descendant that exited between the walk and the read
            vmas = read_smaps(pid) if exe is not None else None
            if exe is not None and not vmas:
                # It exited between the two reads: a total without its guest split would book the
                # whole process as emulator, so drop it (the root: the run is over).
                if pid == tree.root:
                    return None
                continue
            procs += 1
            pss += got[0]
            anon += got[1]
            if exe is not None and vmas:
                if pid not in self._emulators:
                    try:
                        self._emulators[pid] = os.readlink(f"/proc/{pid}/exe")
                    except OSError:
                        self._emulators[pid] = ""
                split = guest_split(vmas, exe, self._emulators[pid])
                if split.rule is not None:
                    guest_pss += split.pss_kb
                    guest_anon += split.anon_kb
                    self.guest_rule = split.rule
        if self.read_sizes:
            self.sizes.append(read_status_kb(tree.root))
        t = round(t, 6)
        if exe is None:
            return Sample(t=t, pss_kb=pss, pss_anon_kb=anon, procs=procs)
        # rollup and smaps are two reads a moment apart: never report a negative emulator share.
        return Sample(t=t, pss_kb=pss, pss_anon_kb=anon, procs=procs, guest_pss_kb=guest_pss,
                      guest_anon_kb=guest_anon, qemu_pss_kb=max(0, pss - guest_pss))


def _counters_moved(now: list[bytes], before: list[bytes]) -> bool:
    """Whether the memory counters of two /proc/PID/stat readings of the tree differ.

    The texts differ at every tick of a busy process (its CPU times), so they are compared whole
    first and parsed only then.
    """
    if len(now) != len(before):
        return True
    for i, text in enumerate(now):
        if text != before[i] and _memory_counters(text) != _memory_counters(before[i]):
            return True
    return False


def _memory_counters(stat: bytes) -> tuple[bytes, ...]:
    """minflt, majflt, vsize and rss of /proc/PID/stat text (a zombie has vsize and rss 0)."""
    # The comm field may contain spaces and parentheses: the fields follow the last ')'. After it:
    # state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime
    # cstime priority nice num_threads itrealvalue starttime vsize rss ...
    f = stat[stat.rfind(b")") + 2:].split(b" ", 22)
    return (f[7], f[9], f[20], f[21]) if len(f) > 21 else (stat,)


def _write_vminfo_log(log: IO[str], trace: Sequence[Sample], sizes: Sequence[list[int]],
                      started_at: float) -> None:
    """One vminfo line per sample; `sizes` holds the status sizes of each measured sample."""
    peak = 0
    measured = iter(sizes)
    text = "0 0 0 0"
    for s in trace:
        peak = max(peak, s.pss_kb)
        if s.measured:  # the sizes move with vsize, which a carried sample saw still
            text = " ".join(str(kb) for kb in next(measured, [0, 0, 0, 0]))
        log.write(f"{int((started_at + s.t) * 1e6)} {text} {s.pss_kb} {peak}\n")


def sample_process(
    argv: Sequence[str],
    *,
    interval: float = DEFAULT_INTERVAL,
    remeasure_s: float = DEFAULT_REMEASURE,
    cwd: str | os.PathLike[str] | None = None,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    guest_exe: str | os.PathLike[str] | None = None,
    vminfo_log: str | os.PathLike[str] | None = None,
    stdout: str | os.PathLike[str] | int | IO[Any] | None = None,
    stderr: str | os.PathLike[str] | int | IO[Any] | None = None,
) -> PssResult:
    """Run `argv` (no shell, stdin /dev/null); sample the PSS of its process tree until it exits.

    A sample is taken every `interval` seconds; PSS is re-read when the tree's counters moved and at
    least every `remeasure_s` seconds (0: at every sample), see the module docstring.
    `sampler_cpu_s` is this process's own CPU time (user + system) over the run. `env` replaces the
    environment, as in subprocess. `stdout`/`stderr` may be file paths (created or truncated; the
    same path for both gives one combined file), open files, subprocess.DEVNULL, or None
    (inherit). Raises LaunchError when the command cannot be started; a timeout kills the tree and
    sets `timed_out`.
    """
    argv = [os.fspath(a) for a in argv]
    if not argv:
        raise LaunchError(argv, "empty command", EXIT_USAGE)
    if interval <= 0:
        raise ValueError("interval must be > 0")
    if remeasure_s < 0:
        raise ValueError("remeasure_s must be >= 0")
    if timeout is not None and timeout <= 0:
        raise ValueError("timeout must be > 0")
    exe = ExeId.of(guest_exe) if guest_exe is not None else None
    rollup = _has_smaps_rollup()
    opened: list[IO[Any]] = []
    log: IO[str] | None = None
    try:
        out = _open_output(stdout, opened)
        # One path for both streams: share one open file, or each would overwrite the other.
        if _is_path(stdout) and _is_path(stderr) and _same_path(stdout, stderr):
            err = out
        else:
            err = _open_output(stderr, opened)
        if vminfo_log is not None:
            log = open(vminfo_log, "w", encoding="ascii")  # noqa: SIM115 - closed in finally
        cpu0 = time.process_time()  # CLOCK_PROCESS_CPUTIME_ID: ns resolution, times() has 10 ms
        started_at = time.time()
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, start_new_session=True)
        except FileNotFoundError as e:
            missing = e.filename if e.filename not in (None, argv[0]) else None
            why = (f"working directory {missing!r} does not exist" if missing
                   else "no such file or command")
            raise LaunchError(argv, why, EXIT_NOT_FOUND) from e
        except PermissionError as e:
            denied = e.filename if e.filename not in (None, argv[0]) else None
            why = (f"permission denied on working directory {denied!r}" if denied
                   else "permission denied (not executable?)")
            raise LaunchError(argv, why, EXIT_NOT_EXECUTABLE) from e
        except NotADirectoryError as e:
            raise LaunchError(argv, f"not a directory: {e.filename!r}", EXIT_NOT_FOUND) from e
        except OSError as e:
            raise LaunchError(argv, e.strerror or str(e), EXIT_NOT_EXECUTABLE) from e
        tree = _Tree(proc.pid)
        sampler = _Sampler(tree, exe=exe, rollup=rollup, remeasure_s=remeasure_s,
                           read_sizes=log is not None)
        try:
            trace = sampler.run(proc, t0, interval=interval, timeout=timeout)
            end = time.monotonic()
            status = proc.wait()
        except BaseException:  # Ctrl-C or a bug: never leave the command running behind us
            _kill_tree(proc, tree)
            proc.wait()
            raise
        finally:
            tree.close()
        if log is not None:
            _write_vminfo_log(log, trace, sampler.sizes, started_at)
        cpu1 = time.process_time()  # writing the trace and the log is part of the sampler's work
    finally:
        if log is not None:
            log.close()
        for f in opened:
            f.close()
    return PssResult(
        argv=tuple(argv), exit_status=status, timed_out=sampler.timed_out,
        wall_s=round(end - t0, 6), interval_s=interval, started_at=started_at,
        sampler_cpu_s=round(cpu1 - cpu0, 4),
        guest_exe=exe.path if exe is not None else None, guest_rule=sampler.guest_rule,
        remeasure_s=remeasure_s, trace=tuple(trace),
    )


# -- command line -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pss.py",
        usage="python3 pss.py [options] -- CMD [ARGS...]",
        description="Start CMD and sample the PSS of its process tree until it exits.",
    )
    p.add_argument("--interval", type=float, default=DEFAULT_INTERVAL, metavar="S",
                   help="seconds between samples (default %(default)s = 100 Hz)")
    p.add_argument("--remeasure", type=float, default=DEFAULT_REMEASURE, metavar="S",
                   help="re-read PSS at least every S seconds even when the tree's memory "
                        "counters did not move (default %(default)s; 0 = at every sample)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="kill the process tree after S seconds (exit code 124)")
    p.add_argument("--guest-exe", metavar="PATH",
                   help="guest executable of a QEMU user-mode run: also report guest-only PSS")
    p.add_argument("--json", metavar="PATH", help="write summary and trace as JSON ('-' = stdout)")
    p.add_argument("--vminfo-log", metavar="PATH", help="write vminfo-format lines, one per sample")
    p.add_argument("--stdout", metavar="PATH", help="the command's stdout goes to this file")
    p.add_argument("--stderr", metavar="PATH", help="the command's stderr goes to this file")
    p.add_argument("--cwd", metavar="DIR", help="working directory of the command")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line on stderr")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    return p


def _summary_line(r: PssResult) -> str:
    how = "timed out, killed" if r.timed_out else f"exit {r.exit_status}"
    line = (f"pss.py: {how} after {r.wall_s:.3f} s; {r.samples} samples at {r.rate_hz:.1f} Hz "
            f"({r.measured_samples} measured); PSS peak {r.peak()} KB, final {r.final()} KB")
    if r.guest_exe is not None:
        line += f"; guest PSS peak {r.peak('guest_pss_kb')} KB ({r.guest_rule or 'not found'})"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.print_usage(sys.stderr)
        print("pss.py: error: no command given (put it after --)", file=sys.stderr)
        return EXIT_USAGE
    if args.interval <= 0 or (args.timeout is not None and args.timeout <= 0):
        print("pss.py: error: --interval and --timeout must be > 0", file=sys.stderr)
        return EXIT_USAGE
    if args.remeasure < 0:
        print("pss.py: error: --remeasure must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = sample_process(command, interval=args.interval, remeasure_s=args.remeasure,
                                cwd=args.cwd,
                                timeout=args.timeout, guest_exe=args.guest_exe,
                                vminfo_log=args.vminfo_log, stdout=args.stdout,
                                stderr=args.stderr)
    except LaunchError as e:
        print(f"pss.py: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # an output file we could not create
        print(f"pss.py: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.json == "-":
        json.dump(result.to_dict(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif args.json:
        write_json(result, args.json)
    if not args.quiet:
        print(_summary_line(result), file=sys.stderr)
    if result.timed_out:
        return EXIT_TIMEOUT
    status = result.exit_status or 0
    return 128 - status if status < 0 else status


if __name__ == "__main__":
    sys.exit(main())
