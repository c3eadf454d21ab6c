"""The harness runs on the board itself: commands are subprocesses, files are checked copies."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from harness.core.digest import sha256_file
from harness.env.transport.protocols import (
    EXIT_CANNOT_RUN,
    EXIT_NOT_FOUND,
    EXIT_TIMEOUT,
    CommandResult,
    Endpoint,
    _check_env,
    _exit_code,
    _join_remote,
    prepare_work_dir,
    probe_identity,
)
from harness.errors import BadInput, StepFailed

# -- local --------------------------------------------------------------------------------------


class LocalTransport:
    """The harness runs on the board itself: commands are subprocesses, files are copies."""

    def __init__(self, board: Endpoint | None = None, *, work_dir: str | None = None) -> None:
        self.board = board
        self._requested = work_dir or (board.work_dir if board else "")
        self._work_dir: str | None = None
        self.default_timeout = board.command_timeout_s if board else 3600.0

    @property
    def work_dir(self) -> str:
        """The private work directory (made and checked on first use; see prepare_work_dir)."""
        if self._work_dir is None:
            self._work_dir = prepare_work_dir(self, self._requested, name=self.name)
        return self._work_dir

    @property
    def name(self) -> str:
        return self.board.name if self.board else "local"

    def __repr__(self) -> str:
        return f"LocalTransport({self.name!r})"

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None,
        stdout_path: Path | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
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
                proc = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.PIPE,
                    cwd=cwd,
                    env=full_env,
                    start_new_session=True,
                )
            except FileNotFoundError as e:
                if e.filename == argv[0] or cwd is None:
                    code, why = EXIT_NOT_FOUND, f"cannot run {argv[0]!r}: {e.strerror}"
                else:
                    code, why = EXIT_CANNOT_RUN, f"cannot change to directory {cwd}: {e.strerror}"
                return CommandResult(exit_code=code, stdout="", stderr=why, wall_s=time.monotonic() - start)
            except OSError as e:
                return CommandResult(
                    exit_code=EXIT_CANNOT_RUN,
                    stdout="",
                    stderr=f"cannot run {argv[0]!r}: {e.strerror or e}",
                    wall_s=time.monotonic() - start,
                )
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
            wall_s=wall,
            timed_out=timed_out,
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
