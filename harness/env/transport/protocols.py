"""Reaching a target: small protocols (run a command, move files, say who you are), and the identity probe.

Code that measures on a board asks for a `Transport`, never for "ssh". Exit codes follow the shell:
124 timed out, 126 could not run, 127 not found, 128+N killed by signal N. Infrastructure failures
(board unreachable, host key wrong, connection lost) raise `Blocked`, never a result: a dead board
is not a failing benchmark.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final, Protocol, runtime_checkable

from harness import payload
from harness.errors import BadInput, Blocked, StepFailed

FIDELITY: Final = "board"
EXIT_TIMEOUT: Final = 124
EXIT_CANNOT_RUN: Final = 126
EXIT_NOT_FOUND: Final = 127
PSS_SOURCE: Final = payload.path("pss.py")
PSS_GRACE_S: Final = 30.0  # pss.py kills the tree at the timeout; this covers its start and JSON write
_ENV_NAME_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SHA_RE: Final = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, kw_only=True)
class CommandResult:
    """How a command ended; `stdout` is empty when it went to a file (`stdout_path`)."""

    exit_code: int
    stdout: str
    stderr: str
    wall_s: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@runtime_checkable
class CommandProtocol(Protocol):
    """Run an argv on the target (never through a shell that would re-split it)."""

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None,
        stdout_path: Path | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult: ...


@runtime_checkable
class FileTransferProtocol(Protocol):
    """Copy files to and from the target, checked by sha256 on both ends, under its private work_dir."""

    @property
    def work_dir(self) -> str: ...

    def remote_path(self, remote: str) -> str: ...

    def put(self, local: Path, remote: str) -> str: ...

    def get(self, remote: str, local: Path) -> Path: ...


@runtime_checkable
class IdentityProtocol(Protocol):
    """Describe the target: model, kernel, governor, temperature, memory, hostname, python3."""

    def identity(self) -> dict[str, Any]: ...


@runtime_checkable
class Transport(CommandProtocol, FileTransferProtocol, IdentityProtocol, Protocol):
    """Everything a measurement needs from a board."""

    @property
    def name(self) -> str: ...


class Endpoint(Protocol):
    """What a driver reads of a board (env.lab.inventory.Board satisfies it): no lab code is imported here."""

    @property
    def name(self) -> str: ...
    @property
    def transport(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def user(self) -> str: ...
    @property
    def identity_file(self) -> str: ...
    @property
    def known_hosts(self) -> str: ...
    @property
    def connect_timeout_s(self) -> float: ...
    @property
    def command_timeout_s(self) -> float: ...
    @property
    def work_dir(self) -> str: ...
    @property
    def address(self) -> str: ...


# -- identity -----------------------------------------------------------------------------------

# One round trip, POSIX sh only: boards may lack everything but a shell and coreutils/busybox.
IDENTITY_SCRIPT: Final = r"""
m=$(tr -d '\000' < /proc/device-tree/model 2>/dev/null) || m=
[ -n "$m" ] || m=$(cat /sys/class/dmi/id/product_name 2>/dev/null) || m=
echo "model=$m"
echo "kernel=$(uname -srm)"
echo "governor=$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null)"
echo "temp=$(cat /sys/class/thermal/thermal_zone0/temp 2>/dev/null)"
echo "mem_available=$(sed -n 's/^MemAvailable:[[:space:]]*\([0-9]*\).*/\1/p' /proc/meminfo 2>/dev/null)"
echo "hostname=$(uname -n)"
echo "python3=$(python3 -c 'import platform; print(platform.python_version())' 2>/dev/null)"
echo "cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null)"
"""


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def parse_identity(text: str) -> dict[str, Any]:
    """Turn IDENTITY_SCRIPT's key=value lines into the identity record (absent values are None)."""
    raw: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            raw[key.strip()] = value.strip()
    temp = _int_or_none(raw.get("temp", ""))
    return {
        "model": raw.get("model") or None,
        "kernel": raw.get("kernel") or None,
        "cpu_governor": raw.get("governor") or None,
        # thermal_zone temp is in millidegrees Celsius
        "soc_temp_c": None if temp is None else round(temp / 1000.0, 1),
        "mem_available_kb": _int_or_none(raw.get("mem_available", "")),
        "hostname": raw.get("hostname") or None,
        "python3": raw.get("python3") or None,
        "cpus": _int_or_none(raw.get("cpus", "")),
    }


def probe_identity(target: CommandProtocol, *, timeout: float = 60.0) -> dict[str, Any]:
    """Run the identity probe through any CommandProtocol."""
    r = target.run(["sh", "-c", IDENTITY_SCRIPT], timeout=timeout)
    if r.exit_code != 0:
        raise StepFailed(f"identity probe failed with exit {r.exit_code}: {_tail(r.stderr)}")
    return parse_identity(r.stdout)


# -- the work directory ---------------------------------------------------------------------------

# Where deployed files go when boards.toml names no work_dir: one private directory per user of
# the board (a fixed /tmp path would be shared with, and could be planted by, its other users).
DEFAULT_WORK_DIR_PREFIX: Final = "/tmp/ant-kpi-"
_WORK_DIR_EXIT: Final = 3
# POSIX sh (coreutils or busybox): make the directory 0700 if missing, then refuse it unless it is a
# real directory (no symbolic link) owned by this user and writable by no one else. Prints its path.
WORK_DIR_SCRIPT: Final = r"""
d=$1
[ -n "$d" ] || d=/tmp/ant-kpi-$(id -u)
no() { echo "ant-kpi-work-dir: $d $1" >&2; exit 3; }
if [ ! -e "$d" ] && [ ! -L "$d" ]; then
  mkdir -p -- "$(dirname -- "$d")" && mkdir -m 700 -- "$d" 2>/dev/null
fi
[ -L "$d" ] && no "is a symbolic link"
[ -d "$d" ] || no "is not a directory"
set -- $(stat -c '%u %a' -- "$d") || no "cannot be inspected (stat)"
[ "$1" = "$(id -u)" ] || no "is owned by uid $1, not by this user (uid $(id -u))"
[ $(( 0$2 & 022 )) -eq 0 ] || no "is writable by its group or by others (mode $2)"
echo "$d"
"""


def prepare_work_dir(target: CommandProtocol, requested: str, *, name: str) -> str:
    """The target's work directory, made private (0700) when missing and checked when present.

    `requested` is boards.toml's work_dir; empty means /tmp/ant-kpi-<uid of the board's user>.
    Blocked when the directory is another user's, a symbolic link or writable by others.
    """
    r = target.run(["sh", "-c", WORK_DIR_SCRIPT, "ant-kpi-work-dir", requested], timeout=60)
    path = r.stdout.strip().splitlines()[-1] if r.ok and r.stdout.strip() else ""
    if not path.startswith("/"):
        why = _tail(r.stderr.replace("ant-kpi-work-dir: ", ""), 200) or f"exit {r.exit_code}"
        shown = requested or f"{DEFAULT_WORK_DIR_PREFIX}<uid>"
        raise Blocked(
            f"board {name}: work directory {shown} is not safe to use: {why}",
            f"remove or fix it on the board (it must be a directory of the board user, mode 700), "
            f"or set another work_dir of [boards.{name}] in boards.toml",
        )
    return path


def inside(base: str, path: str) -> bool:
    """Whether `path` lies strictly inside directory `base` (both absolute, compared normalised)."""
    b, p = posixpath.normpath(base), posixpath.normpath(path)
    return p.startswith(b.rstrip("/") + "/") and ".." not in PurePosixPath(path).parts


def remove_inside(target: Transport, path: str) -> CommandResult:
    """`rm -rf` of `path`, only when it lies inside the target's work_dir; BadInput otherwise."""
    if not inside(target.work_dir, path):
        raise BadInput(f"refusing to remove {path}: it is not inside the work directory {target.work_dir}")
    return target.run(["rm", "-rf", "--", path], timeout=60)


# -- helpers ------------------------------------------------------------------------------------


def _tail(text: str, n: int = 300) -> str:
    """The last line(s) of a tool's output, flattened for a one-line message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= n else "…" + flat[-n:]


def _exit_code(returncode: int) -> int:
    """subprocess's -N (killed by signal N) as the shell's 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def _check_env(env: Mapping[str, str] | None) -> None:
    for key in env or {}:
        if not _ENV_NAME_RE.match(key):
            raise BadInput(f"environment variable name {key!r} is not a valid name")


def _seconds(value: float) -> str:
    """A duration as `timeout` and pss.py parse it: plain decimal, never an exponent."""
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def _join_remote(base: str, remote: str) -> str:
    return remote if remote.startswith("/") else f"{base.rstrip('/')}/{remote}"
