"""Board leases: one run measures on a board at a time.

A lease is an flock on ``<leases_dir>/<board>.lease``; the kernel drops it when the holder exits
or dies, so a crashed run never leaves a board locked. The locked file also holds a JSON note
(run id, pid, host, since, expires) so a second run can say who has the board. ``ttl_s`` is the
holder's declared duration: a holder past it is reported as overdue (it is still alive, since its
lock is held, so it is never broken automatically).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from harness.errors import BadInput, Blocked

SUFFIX: Final = ".lease"
POLL_S: Final = 0.5
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True, kw_only=True)
class Lease:
    """A held lease: which board, for which run, until when (Unix time)."""

    board: str
    run_id: str
    pid: int
    host: str
    acquired_at: float
    expires_at: float
    path: Path

    def note(self) -> dict[str, Any]:
        return {
            "board": self.board,
            "run_id": self.run_id,
            "pid": self.pid,
            "host": self.host,
            "acquired_at": self.acquired_at,
            "expires_at": self.expires_at,
        }


def lease_path(leases_dir: Path, board_name: str) -> Path:
    if not _NAME_RE.match(board_name):
        raise BadInput(f"board name {board_name!r}: use letters, digits, '_', '-', '.'")
    return Path(leases_dir) / f"{board_name}{SUFFIX}"


def holder(leases_dir: Path, board_name: str) -> dict[str, Any] | None:
    """The note of the run holding the board, or None when it is free (the note alone proves nothing)."""
    path = lease_path(leases_dir, board_name)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            # A shared lock succeeds only when nobody holds the exclusive one.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_note(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_note(fd: int) -> dict[str, Any]:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


def _busy(board_name: str, note: dict[str, Any]) -> Blocked:
    run = note.get("run_id", "?")
    pid = note.get("pid", "?")
    where = f" on {note['host']}" if note.get("host") and note.get("host") != socket.gethostname() else ""
    extra = ""
    expires = note.get("expires_at")
    if isinstance(expires, (int, float)) and expires < time.time():
        extra = f", overdue by {time.time() - expires:.0f} s"
    elif isinstance(expires, (int, float)):
        extra = f", until {_iso(expires)}"
    return Blocked(
        f"board {board_name} is leased by run {run} (pid {pid}{where}{extra})",
        "wait, or pass --board-wait S to wait up to S seconds (--wait: without limit)",
    )


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def lease(
    board_name: str,
    *,
    leases_dir: Path,
    run_id: str,
    ttl_s: float,
    wait: bool = False,
    wait_timeout_s: float | None = None,
) -> Iterator[Lease]:
    """Hold the board for this run; Blocked when another run has it (or, with wait, once wait_timeout_s passes)."""
    if ttl_s <= 0:
        raise BadInput(f"lease ttl must be > 0 s, got {ttl_s:g}")
    path = lease_path(leases_dir, board_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = None if wait_timeout_s is None else time.monotonic() + wait_timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait or (deadline is not None and time.monotonic() >= deadline):
                    raise _busy(board_name, _read_note(fd)) from None
                # Polling rather than a blocking flock: a waiting run stays interruptible (Ctrl-C).
                time.sleep(POLL_S)
        now = time.time()
        held = Lease(
            board=board_name,
            run_id=run_id,
            pid=os.getpid(),
            host=socket.gethostname(),
            acquired_at=now,
            expires_at=now + ttl_s,
            path=path,
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(held.note(), sort_keys=True) + "\n").encode(), 0)
        try:
            yield held
        finally:
            # Cleared before the unlock, so a stale note is never read as the next holder's.
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the last descriptor releases the flock
