"""A board over OpenSSH: verified host keys (never accept-new), quoted remote argv, retries only for
connection failures."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from harness.core.digest import sha256_file
from harness.env.transport.protocols import (
    _SHA_RE,
    EXIT_NOT_FOUND,
    EXIT_TIMEOUT,
    PSS_GRACE_S,
    CommandResult,
    Endpoint,
    _check_env,
    _join_remote,
    _seconds,
    _tail,
    prepare_work_dir,
    probe_identity,
)
from harness.errors import BadInput, Blocked, StepFailed

# -- ssh ----------------------------------------------------------------------------------------

# Runs every remote command: changes directory, applies the time limit (coreutils/busybox
# `timeout`, when it understands -k), and reports the command's exit status on stderr behind a
# per-call token. The token tells a command that exited 255 (ssh passes that on) apart from a
# connection that broke (ssh's own 255): only the former has it. argv arrives as "$@", so nothing
# in it is ever parsed by a shell.
_WRAPPER: Final = (
    "tok=$1; d=$2; t=$3; shift 3; "
    'if [ -n "$d" ]; then cd -- "$d" || { printf "\\n%s %d\\n" "$tok" 126 >&2; exit 126; }; fi; '
    'if [ -n "$t" ] && timeout -k 1 5 true >/dev/null 2>&1; then timeout -k 10 "$t" "$@"; else "$@"; fi; '
    'rc=$?; printf "\\n%s %d\\n" "$tok" "$rc" >&2; exit "$rc"'
)
_PUT_SCRIPT: Final = (
    "dst=$1; tmp=$1.$2.part; "
    'mkdir -p -- "$(dirname -- "$dst")" && cat > "$tmp" && chmod "$3" "$tmp" && mv -f -- "$tmp" "$dst" '
    '&& sha256sum -- "$dst" || { rc=$?; rm -f -- "$tmp"; exit "$rc"; }'
)
_GET_SCRIPT: Final = 'sha256sum -- "$1" >&2 && exec cat -- "$1"'
# The ssh log (-E) lines that mean the SSH session itself was established.
_AUTHENTICATED: Final = "Authenticated to "
_HOSTKEY_CHANGED: Final = (
    "REMOTE HOST IDENTIFICATION HAS CHANGED",
    "has changed and you have requested strict checking",
)
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

    def __init__(
        self,
        board: Endpoint,
        *,
        attempts: int = 3,
        backoff_s: float = 1.0,
        alive_interval_s: float = 5.0,
        alive_count_max: int = 3,
        ssh: str = "ssh",
    ) -> None:
        if board.transport != "ssh" or not board.host:
            raise BadInput(f"board {board.name} is not an ssh board")
        self.board = board
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.alive_interval_s = alive_interval_s
        self.alive_count_max = alive_count_max
        self.ssh = ssh
        self.default_timeout = board.command_timeout_s
        self._work_dir: str | None = None

    @property
    def work_dir(self) -> str:
        """The board's private work directory (made and checked on first use; see prepare_work_dir)."""
        if self._work_dir is None:
            self._work_dir = prepare_work_dir(self, self.board.work_dir, name=self.name)
        return self._work_dir

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
            self.ssh,
            "-T",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            f"ConnectTimeout={max(1, round(b.connect_timeout_s))}",
            "-o",
            f"ServerAliveInterval={max(1, round(self.alive_interval_s))}",
            "-o",
            f"ServerAliveCountMax={self.alive_count_max}",
            "-o",
            "LogLevel=VERBOSE",
            "-E",
            str(log),
            "-p",
            str(b.port),
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
            raise Blocked(
                f"the OpenSSH client ({self.ssh}) is not installed, so board {self.name} cannot be reached",
                "apt-get install openssh-client",
            )
        if self.board.identity_file and not Path(self.board.identity_file).is_file():
            raise Blocked(
                f"board {self.name}: its identity_file does not exist on this machine",
                f"fix identity_file of [boards.{self.name}] in boards.toml",
            )
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
            proc = subprocess.Popen(self._ssh_argv(log, remote), stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
            local_timeout = False
            try:
                out, err = proc.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                local_timeout = True
                proc.kill()
                out, err = proc.communicate()
            wall = time.monotonic() - start
            text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        return _Raw(
            exit_code=proc.returncode,
            stdout=out or b"",
            stderr=err or b"",
            log=text,
            wall_s=wall,
            local_timeout=local_timeout,
        )

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
        lines = [
            ln
            for ln in (raw.log + "\n" + raw.stderr.decode("utf-8", "replace")).splitlines()
            if ln.strip() and not ln.startswith(("Transferred:", "Bytes per second:", _AUTHENTICATED))
        ]
        return self._redact(_tail(" ".join(lines[-2:]), 200)) or "no message from ssh"

    def _connect(
        self, remote: str, *, stdin_path: Path | None, stdout: IO[bytes] | int, limit: float, what: str
    ) -> _Raw:
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
            if _HOSTKEY_FAILED in raw.log or any(s in raw.log for s in _HOSTKEY_CHANGED) or _HOSTKEY_UNKNOWN in raw.log:
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

    def _call(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None,
        stdout_path: Path | None = None,
        stdin_path: Path | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
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
            return CommandResult(
                exit_code=code,
                stdout=stdout,
                stderr=stderr[: match.start()],
                wall_s=raw.wall_s,
                timed_out=code == EXIT_TIMEOUT and raw.wall_s >= limit,
            )
        if raw.local_timeout:
            return CommandResult(
                exit_code=EXIT_TIMEOUT,
                stdout=stdout,
                wall_s=raw.wall_s,
                timed_out=True,
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

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None,
        stdout_path: Path | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run argv on the board; `timeout` None means the board's command_timeout_s."""
        return self._call(argv, timeout=timeout, stdout_path=stdout_path, cwd=cwd, env=env)

    def remote_path(self, remote: str) -> str:
        """Relative paths are under the board's work_dir."""
        return _join_remote(self.work_dir, remote)

    def put(self, local: Path, remote: str) -> str:
        """Copy a file to the board (atomic rename there); returns its sha256, as sha256sum on the board reports it."""
        src = Path(local)
        if not src.is_file():
            raise BadInput(f"cannot copy {src} to board {self.name}: not a file")
        expected = sha256_file(src)
        dst = self.remote_path(remote)
        mode = f"{src.stat().st_mode & 0o777:o}"
        r = self._call(
            ["sh", "-c", _PUT_SCRIPT, "ant-kpi-put", dst, secrets.token_hex(4), mode],
            timeout=self.default_timeout,
            stdin_path=src,
        )
        if r.exit_code != 0:
            self._transfer_failed(f"cannot copy {src.name} to {dst} on board {self.name}", r)
        got = r.stdout.split()[0] if r.stdout.split() else ""
        if got != expected:
            raise StepFailed(
                f"copy of {src.name} to {dst} on board {self.name} does not verify "
                f"(sha256 there {got or 'missing'}, here {expected})"
            )
        return got

    def get(self, remote: str, local: Path) -> Path:
        """Copy a file from the board; its sha256 there must equal the local copy's."""
        src = self.remote_path(remote)
        dst = Path(local)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.part")
        try:
            r = self._call(["sh", "-c", _GET_SCRIPT, "ant-kpi-get", src], timeout=self.default_timeout, stdout_path=tmp)
            if r.exit_code != 0:
                self._transfer_failed(f"cannot fetch {src} from board {self.name}", r)
            first = r.stderr.split()
            expected = first[0] if first and _SHA_RE.match(first[0]) else ""
            got = sha256_file(tmp)
            if got != expected:
                raise StepFailed(
                    f"copy of {src} from board {self.name} does not verify "
                    f"(sha256 there {expected or 'missing'}, here {got})"
                )
            os.replace(tmp, dst)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return dst

    def _transfer_failed(self, what: str, r: CommandResult) -> None:
        if r.exit_code == EXIT_NOT_FOUND:
            raise Blocked(
                f"{what}: a tool is missing on the board ({_tail(r.stderr, 120)})",
                "install coreutils (sha256sum, cat, mkdir) on the board",
            )
        raise StepFailed(f"{what}: exit {r.exit_code}: {_tail(r.stderr) or 'no message'}")

    def identity(self) -> dict[str, Any]:
        return {"board": self.name, "transport": "ssh", **probe_identity(self)}
