"""Atomic writes and an exclusive lock: results survive interruption, runs never interleave."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness.errors import BadInput, HarnessError


class LockBusy(HarnessError):
    """Another run holds the lock."""

    exit_code = 3
    label = "BLOCKED"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temporary file beside `path`, fsync, then rename over it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise BadInput(f"cannot write {p}: {e.strerror or e} (previous contents kept)") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return p


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def exclusive_lock(path: str | Path, *, wait: bool = False) -> Iterator[Path]:
    """Hold an exclusive flock on `path`; the kernel drops it when the process dies."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise LockBusy(
                f"{p} is held by {holder}: another run is using this directory; wait for it, "
                "or pass --wait to queue behind it"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)
        yield p
    finally:
        os.close(fd)
