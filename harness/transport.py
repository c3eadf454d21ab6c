"""Reaching a board: small protocols (run a command, move files, say who you are) and two drivers.

Code that measures on a board asks for a `Transport`, never for "ssh". `LocalTransport` serves a
harness running on the board itself; `SshTransport` drives the OpenSSH client with verified host
keys (never accept-new), quoted remote argv, and retries only for connection failures.

Exit codes follow the shell: 124 timed out, 126 could not run, 127 not found, 128+N killed by
signal N. Infrastructure failures (board unreachable, host key wrong, connection lost) raise
`Blocked`, never a result: a dead board is not a failing benchmark.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Protocol, runtime_checkable

from harness.artefacts import sha256_file
from harness.boards import Board
from harness.errors import BadInput, Blocked, StepFailed

FIDELITY: Final = "board"
EXIT_TIMEOUT: Final = 124
EXIT_CANNOT_RUN: Final = 126
EXIT_NOT_FOUND: Final = 127
PSS_SOURCE: Final = Path(__file__).resolve().parent / "pss.py"
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

    def run(self, argv: Sequence[str], *, timeout: float | None, stdout_path: Path | None = None,
            cwd: str | None = None, env: Mapping[str, str] | None = None) -> CommandResult: ...


@runtime_checkable
class FileTransferProtocol(Protocol):
    """Copy files to and from the target, checked by sha256 on both ends."""

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


# -- local --------------------------------------------------------------------------------------


class LocalTransport:
    """The harness runs on the board itself: commands are subprocesses, files are copies."""

    def __init__(self, board: Board | None = None, *, work_dir: str | None = None) -> None:
        self.board = board
        self.work_dir = work_dir or (board.work_dir if board else "/tmp/ant-kpi")
        self.default_timeout = board.command_timeout_s if board else 3600.0

    @property
    def name(self) -> str:
        return self.board.name if self.board else "local"

    def __repr__(self) -> str:
        return f"LocalTransport({self.name!r})"

    def run(self, argv: Sequence[str], *, timeout: float | None, stdout_path: Path | None = None,
            cwd: str | None = None, env: Mapping[str, str] | None = None) -> CommandResult:
        """Run argv here; `timeout` None means the board's command_timeout_s."""
        if not argv:
            raise BadInput("empty command")
        _check_env(env)
        limit = self.default_timeout if timeout is None else timeout
        full_env = {**os.environ, **env} if env else None
        out: IO[bytes] | int = subprocess.PIPE
        start = time.monotonic()
        with contextlib.ExitStack() as stack:
            if stdout_path is not None:
                stdout_path.parent.mkdir(parents=True, exist_ok=True)
                out = stack.enter_context(stdout_path.open("wb"))
            try:
                # A session of its own, so a timeout can kill the whole tree.
                proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.PIPE, cwd=cwd, env=full_env, start_new_session=True)
            except FileNotFoundError as e:
                if e.filename == argv[0] or cwd is None:
                    code, why = EXIT_NOT_FOUND, f"cannot run {argv[0]!r}: {e.strerror}"
                else:
                    code, why = EXIT_CANNOT_RUN, f"cannot change to directory {cwd}: {e.strerror}"
                return CommandResult(exit_code=code, stdout="", stderr=why, wall_s=time.monotonic() - start)
            except OSError as e:
                return CommandResult(exit_code=EXIT_CANNOT_RUN, stdout="",
                                     stderr=f"cannot run {argv[0]!r}: {e.strerror or e}",
                                     wall_s=time.monotonic() - start)
            timed_out = False
            try:
                stdout_b, stderr_b = proc.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                stdout_b, stderr_b = proc.communicate()
            wall = time.monotonic() - start
        return CommandResult(
            exit_code=EXIT_TIMEOUT if timed_out else _exit_code(proc.returncode),
            stdout=(stdout_b or b"").decode("utf-8", "replace"),
            stderr=(stderr_b or b"").decode("utf-8", "replace"),
            wall_s=wall, timed_out=timed_out,
        )

    def remote_path(self, remote: str) -> str:
        """Relative paths are under the board's work_dir."""
        return _join_remote(self.work_dir, remote)

    def put(self, local: Path, remote: str) -> str:
        """Copy a file into place atomically; returns the sha256 of the copy (checked against the source)."""
        dst = Path(self.remote_path(remote))
        return _copy_verified(Path(local), dst, self.name)

    def get(self, remote: str, local: Path) -> Path:
        """Copy a file from the board's path to `local`, checked by sha256."""
        src = Path(self.remote_path(remote))
        if not src.is_file():
            raise StepFailed(f"cannot fetch {src} from board {self.name}: no such file")
        _copy_verified(src, Path(local), self.name)
        return Path(local)

    def identity(self) -> dict[str, Any]:
        return {"board": self.name, "transport": "local", **probe_identity(self)}


def _copy_verified(src: Path, dst: Path, board: str) -> str:
    if not src.is_file():
        raise BadInput(f"cannot copy {src}: not a file")
    expected = sha256_file(src)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.part")
    try:
        shutil.copyfile(src, tmp)
        tmp.chmod(src.stat().st_mode & 0o777)
        os.replace(tmp, dst)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StepFailed(f"cannot copy {src} to {dst} on board {board}: {e.strerror or e}") from None
    got = sha256_file(dst)
    if got != expected:
        raise StepFailed(f"copy of {src} to {dst} on board {board} is corrupt (sha256 {got} != {expected})")
    return got


# -- ssh ----------------------------------------------------------------------------------------

# Runs every remote command: changes directory, applies the time limit (coreutils/busybox
# `timeout`, when it understands -k), and reports the command's exit status on stderr behind a
# per-call token. The token tells a command that exited 255 (ssh passes that on) apart from a
# connection that broke (ssh's own 255): only the former has it. argv arrives as "$@", so nothing
# in it is ever parsed by a shell.
_WRAPPER: Final = (
    'tok=$1; d=$2; t=$3; shift 3; '
    'if [ -n "$d" ]; then cd -- "$d" || { printf "\\n%s %d\\n" "$tok" 126 >&2; exit 126; }; fi; '
    'if [ -n "$t" ] && timeout -k 1 5 true >/dev/null 2>&1; then timeout -k 10 "$t" "$@"; else "$@"; fi; '
    'rc=$?; printf "\\n%s %d\\n" "$tok" "$rc" >&2; exit "$rc"'
)
_PUT_SCRIPT: Final = (
    'dst=$1; tmp=$1.$2.part; '
    'mkdir -p -- "$(dirname -- "$dst")" && cat > "$tmp" && chmod "$3" "$tmp" && mv -f -- "$tmp" "$dst" '
    '&& sha256sum -- "$dst" || { rc=$?; rm -f -- "$tmp"; exit "$rc"; }'
)
_GET_SCRIPT: Final = 'sha256sum -- "$1" >&2 && exec cat -- "$1"'
# The ssh log (-E) lines that mean the SSH session itself was established.
_AUTHENTICATED: Final = "Authenticated to "
_HOSTKEY_CHANGED: Final = ("REMOTE HOST IDENTIFICATION HAS CHANGED",
                           "has changed and you have requested strict checking")
_HOSTKEY_UNKNOWN: Final = "host key is known for"
_HOSTKEY_FAILED: Final = "Host key verification failed"
_AUTH_FAILED: Final = "Permission denied"


@dataclass(frozen=True, kw_only=True)
class _Raw:
    exit_code: int
    stdout: bytes
    stderr: bytes
    log: str
    wall_s: float
    local_timeout: bool


class SshTransport:
    """A board over OpenSSH: BatchMode, strict host keys from a known_hosts file, keepalives."""

    def __init__(self, board: Board, *, attempts: int = 3, backoff_s: float = 1.0,
                 alive_interval_s: float = 5.0, alive_count_max: int = 3, ssh: str = "ssh") -> None:
        if board.transport != "ssh" or not board.host:
            raise BadInput(f"board {board.name} is not an ssh board")
        self.board = board
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.alive_interval_s = alive_interval_s
        self.alive_count_max = alive_count_max
        self.ssh = ssh
        self.default_timeout = board.command_timeout_s

    @property
    def name(self) -> str:
        return self.board.name

    def __repr__(self) -> str:
        return f"SshTransport({self.name!r}, {self.board.address})"

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def known_hosts(self) -> str:
        return self.board.known_hosts or os.path.expanduser("~/.ssh/known_hosts")

    def _ssh_argv(self, log: Path, remote: str) -> list[str]:
        # This argv holds credentials (user, key path): it is never logged or returned.
        b = self.board
        argv = [
            self.ssh, "-T",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", f"ConnectTimeout={max(1, round(b.connect_timeout_s))}",
            "-o", f"ServerAliveInterval={max(1, round(self.alive_interval_s))}",
            "-o", f"ServerAliveCountMax={self.alive_count_max}",
            "-o", "LogLevel=VERBOSE",
            "-E", str(log),
            "-p", str(b.port),
        ]
        if b.identity_file:
            argv += ["-i", b.identity_file, "-o", "IdentitiesOnly=yes"]
        destination = f"{b.user}@{b.host}" if b.user else b.host
        return [*argv, destination, "--", remote]

    def _redact(self, text: str) -> str:
        """ssh's diagnostics without the user name or key path (they are credentials)."""
        b = self.board
        if b.identity_file:
            text = text.replace(b.identity_file, "<identity_file>")
        if b.user:
            text = text.replace(f"{b.user}@", "")
        return text

    def _preflight(self) -> None:
        if shutil.which(self.ssh) is None:
            raise Blocked(f"the OpenSSH client ({self.ssh}) is not installed, so board {self.name} cannot be reached",
                          "apt-get install openssh-client")
        if self.board.identity_file and not Path(self.board.identity_file).is_file():
            raise Blocked(f"board {self.name}: its identity_file does not exist on this machine",
                          f"fix identity_file of [boards.{self.name}] in boards.toml")
        if not Path(self.known_hosts).is_file():
            raise Blocked(
                f"board {self.name}: no known_hosts file, so its host key cannot be verified",
                f"after checking the fingerprint on the board's console, run: "
                f"ssh-keyscan -p {self.board.port} {self.board.host} >> {self.known_hosts}",
            )

    def _once(self, remote: str, *, stdin: IO[bytes] | int, stdout: IO[bytes] | int, limit: float) -> _Raw:
        with tempfile.TemporaryDirectory(prefix="ant-kpi-ssh-") as tmp:
            log = Path(tmp) / "ssh.log"
            start = time.monotonic()
            proc = subprocess.Popen(self._ssh_argv(log, remote), stdin=stdin, stdout=stdout,
                                    stderr=subprocess.PIPE)
            local_timeout = False
            try:
                out, err = proc.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                local_timeout = True
                proc.kill()
                out, err = proc.communicate()
            wall = time.monotonic() - start
            text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        return _Raw(exit_code=proc.returncode, stdout=out or b"", stderr=err or b"", log=text, wall_s=wall,
                    local_timeout=local_timeout)

    def _hostkey_blocked(self, log: str) -> Blocked:
        b = self.board
        spec = f"[{b.host}]:{b.port}" if b.port != 22 else b.host
        scan = f"ssh-keyscan -p {b.port} {b.host}"
        if any(s in log for s in _HOSTKEY_CHANGED):
            return Blocked(
                f"board {self.name}: its host key does not match the one for {spec} in {self.known_hosts} "
                "(reinstalled board, or someone in between); connection refused",
                f"check the key on the board's console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub); if it "
                f"is the board's, run: ssh-keygen -R '{spec}' -f {self.known_hosts} && {scan} >> {self.known_hosts}",
            )
        return Blocked(
            f"board {self.name}: {spec} is not in {self.known_hosts}, and unknown host keys are never accepted",
            f"check the key on the board's console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then run: "
            f"{scan} >> {self.known_hosts}",
        )

    def _diagnosis(self, raw: _Raw) -> str:
        lines = [ln for ln in (raw.log + "\n" + raw.stderr.decode("utf-8", "replace")).splitlines()
                 if ln.strip() and not ln.startswith(("Transferred:", "Bytes per second:", _AUTHENTICATED))]
        return self._redact(_tail(" ".join(lines[-2:]), 200)) or "no message from ssh"

    def _connect(self, remote: str, *, stdin_path: Path | None, stdout: IO[bytes] | int, limit: float,
                 what: str) -> _Raw:
        """Run `remote` over ssh, retrying only while no SSH session could be established."""
        self._preflight()
        last = ""
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            with contextlib.ExitStack() as stack:
                stdin: IO[bytes] | int = subprocess.DEVNULL
                if stdin_path is not None:
                    stdin = stack.enter_context(stdin_path.open("rb"))
                if not isinstance(stdout, int):
                    stdout.seek(0)
                    stdout.truncate()
                raw = self._once(remote, stdin=stdin, stdout=stdout, limit=limit)
            if raw.exit_code != 255 or _AUTHENTICATED in raw.log:
                return raw
            if _HOSTKEY_FAILED in raw.log or any(s in raw.log for s in _HOSTKEY_CHANGED) \
                    or _HOSTKEY_UNKNOWN in raw.log:
                raise self._hostkey_blocked(raw.log)
            if _AUTH_FAILED in raw.log:
                raise Blocked(
                    f"board {self.name} refused the SSH key (public-key authentication failed)",
                    "add the public half of the board's identity_file to the board user's ~/.ssh/authorized_keys, "
                    f"or fix user/identity_file of [boards.{self.name}] in boards.toml",
                )
            last = self._diagnosis(raw)
        b = self.board
        raise Blocked(
            f"board {self.name} unreachable at {b.host}:{b.port} ({what}; {self.attempts} attempts): {last}",
            f"check it is powered and reachable (ping {b.host}; ssh -p {b.port} {b.host} true), "
            "and that sshd runs on it; then resume the run",
        )

    def _call(self, argv: Sequence[str], *, timeout: float | None, stdout_path: Path | None = None,
              stdin_path: Path | None = None, cwd: str | None = None,
              env: Mapping[str, str] | None = None) -> CommandResult:
        if not argv:
            raise BadInput("empty command")
        _check_env(env)
        limit = self.default_timeout if timeout is None else timeout
        token = f"ANT-KPI-EXIT-{secrets.token_hex(8)}"
        inner = [*(["env", *(f"{k}={v}" for k, v in env.items())] if env else []), *argv]
        remote = shlex.join(["sh", "-c", _WRAPPER, "ant-kpi", token, cwd or "", _seconds(limit), *inner])
        # The remote `timeout` ends the command; this local limit only catches a board that stopped answering.
        local_limit = limit + self.board.connect_timeout_s * self.attempts + PSS_GRACE_S
        with contextlib.ExitStack() as stack:
            out: IO[bytes] | int = subprocess.PIPE
            if stdout_path is not None:
                stdout_path.parent.mkdir(parents=True, exist_ok=True)
                out = stack.enter_context(stdout_path.open("w+b"))
            raw = self._connect(remote, stdin_path=stdin_path, stdout=out, limit=local_limit, what=argv[0])
        stderr = raw.stderr.decode("utf-8", "replace")
        match = re.search(rf"\n?{token} (\d+)\n?\Z", stderr)
        stdout = raw.stdout.decode("utf-8", "replace")
        if match:
            code = int(match.group(1))
            return CommandResult(exit_code=code, stdout=stdout, stderr=stderr[:match.start()], wall_s=raw.wall_s,
                                 timed_out=code == EXIT_TIMEOUT and raw.wall_s >= limit)
        if raw.local_timeout:
            return CommandResult(
                exit_code=EXIT_TIMEOUT, stdout=stdout, wall_s=raw.wall_s, timed_out=True,
                stderr=stderr + f"\n(board {self.name} gave no answer within {local_limit:g} s; the command may "
                                "still run there: its `timeout` is missing or does not understand -k)",
            )
        if raw.exit_code != 255:
            # The session ended normally without the wrapper's report (e.g. a login shell that is not
            # POSIX sh): ssh's exit code is still the remote one.
            return CommandResult(exit_code=raw.exit_code, stdout=stdout, stderr=stderr, wall_s=raw.wall_s)
        raise Blocked(
            f"board {self.name}: connection lost while running {argv[0]!r} ({self._diagnosis(raw)})",
            "check the board is powered and on the network, then resume the run (rows already measured are kept)",
        )

    # -- protocols -----------------------------------------------------------------------------

    def run(self, argv: Sequence[str], *, timeout: float | None, stdout_path: Path | None = None,
            cwd: str | None = None, env: Mapping[str, str] | None = None) -> CommandResult:
        """Run argv on the board; `timeout` None means the board's command_timeout_s."""
        return self._call(argv, timeout=timeout, stdout_path=stdout_path, cwd=cwd, env=env)

    def remote_path(self, remote: str) -> str:
        """Relative paths are under the board's work_dir."""
        return _join_remote(self.board.work_dir, remote)

    def put(self, local: Path, remote: str) -> str:
        """Copy a file to the board (atomic rename there); returns its sha256, as sha256sum on the board reports it."""
        src = Path(local)
        if not src.is_file():
            raise BadInput(f"cannot copy {src} to board {self.name}: not a file")
        expected = sha256_file(src)
        dst = self.remote_path(remote)
        mode = f"{src.stat().st_mode & 0o777:o}"
        r = self._call(["sh", "-c", _PUT_SCRIPT, "ant-kpi-put", dst, secrets.token_hex(4), mode],
                       timeout=self.default_timeout, stdin_path=src)
        if r.exit_code != 0:
            self._transfer_failed(f"cannot copy {src.name} to {dst} on board {self.name}", r)
        got = r.stdout.split()[0] if r.stdout.split() else ""
        if got != expected:
            raise StepFailed(f"copy of {src.name} to {dst} on board {self.name} does not verify "
                             f"(sha256 there {got or 'missing'}, here {expected})")
        return got

    def get(self, remote: str, local: Path) -> Path:
        """Copy a file from the board; its sha256 there must equal the local copy's."""
        src = self.remote_path(remote)
        dst = Path(local)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.part")
        try:
            r = self._call(["sh", "-c", _GET_SCRIPT, "ant-kpi-get", src], timeout=self.default_timeout,
                           stdout_path=tmp)
            if r.exit_code != 0:
                self._transfer_failed(f"cannot fetch {src} from board {self.name}", r)
            first = r.stderr.split()
            expected = first[0] if first and _SHA_RE.match(first[0]) else ""
            got = sha256_file(tmp)
            if got != expected:
                raise StepFailed(f"copy of {src} from board {self.name} does not verify "
                                 f"(sha256 there {expected or 'missing'}, here {got})")
            os.replace(tmp, dst)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return dst

    def _transfer_failed(self, what: str, r: CommandResult) -> None:
        if r.exit_code == EXIT_NOT_FOUND:
            raise Blocked(f"{what}: a tool is missing on the board ({_tail(r.stderr, 120)})",
                          "install coreutils (sha256sum, cat, mkdir) on the board")
        raise StepFailed(f"{what}: exit {r.exit_code}: {_tail(r.stderr) or 'no message'}")

    def identity(self) -> dict[str, Any]:
        return {"board": self.name, "transport": "ssh", **probe_identity(self)}


# -- registry -----------------------------------------------------------------------------------

TRANSPORTS: Final[Mapping[str, Callable[[Board], Transport]]] = {
    "ssh": SshTransport,
    "local": LocalTransport,
}


def transport_for(board: Board) -> Transport:
    """The driver for a board's `transport`."""
    try:
        make = TRANSPORTS[board.transport]
    except KeyError:
        raise BadInput(f"board {board.name}: unknown transport {board.transport!r}") from None
    return make(board)


# -- deploy / run / collect ---------------------------------------------------------------------


def deploy(transport: FileTransferProtocol, files: Mapping[Path, str]) -> dict[str, str]:
    """Copy local files to their remote paths; returns the verified sha256 per remote path."""
    return {remote: transport.put(Path(local), remote) for local, remote in files.items()}


# Per transport object: remote pss.py paths already checked in this process.
_PSS_READY: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def ensure_pss(transport: Transport, remote_dir: str) -> str:
    """Put harness/pss.py on the board once (skipped when an identical copy is there); returns its path."""
    path = transport.remote_path(f"{remote_dir.rstrip('/')}/pss.py")
    ready = _PSS_READY.setdefault(transport, set())
    if path in ready:
        return path
    check = transport.run(["python3", "-c", "import sys; sys.exit(0 if sys.version_info >= (3, 7) else 3)"],
                          timeout=60)
    if check.exit_code == EXIT_NOT_FOUND:
        raise Blocked(f"board {transport.name} has no python3, which the PSS sampler needs",
                      "install python3 (3.7 or newer) on the board")
    if check.exit_code != 0:
        raise Blocked(f"board {transport.name}: python3 is older than 3.7, too old for the PSS sampler",
                      "install python3 3.7 or newer on the board")
    there = transport.run(["sha256sum", "--", path], timeout=60)
    fields = there.stdout.split()
    if there.exit_code != 0 or not fields or fields[0] != sha256_file(PSS_SOURCE):
        transport.put(PSS_SOURCE, path)
    ready.add(path)
    return path


def run_sampled(transport: Transport, argv: Sequence[str], *, remote_dir: str, json_name: str, vminfo_name: str,
                timeout: float, local_dir: Path, interval_s: float | None = None) -> tuple[CommandResult, Path]:
    """Run argv under pss.py on the board; fetch its JSON and vminfo log into local_dir (fidelity "board").

    Returns the sampler's CommandResult (its exit code is the command's) and the local JSON path;
    the vminfo log is at local_dir / vminfo_name.
    """
    for name in (json_name, vminfo_name):
        if not name or "/" in name or name in (".", ".."):
            raise BadInput(f"{name!r} must be a plain file name")
    pss_path = ensure_pss(transport, remote_dir)
    base = transport.remote_path(remote_dir)
    json_remote, vminfo_remote = f"{base}/{json_name}", f"{base}/{vminfo_name}"
    pss_argv = ["python3", pss_path, "--json", json_remote, "--vminfo-log", vminfo_remote,
                "--timeout", _seconds(timeout)]
    if interval_s is not None:
        pss_argv += ["--interval", _seconds(interval_s)]
    result = transport.run([*pss_argv, "--", *argv], timeout=timeout + PSS_GRACE_S)
    local_dir.mkdir(parents=True, exist_ok=True)
    try:
        local_json = transport.get(json_remote, local_dir / json_name)
        transport.get(vminfo_remote, local_dir / vminfo_name)
    except StepFailed as e:
        raise StepFailed(f"pss.py on board {transport.name} left no results (exit {result.exit_code}: "
                         f"{_tail(result.stderr, 200)}); {e.what}") from None
    return result, local_json
