"""Atomic writes and an exclusive lock: results survive interruption, runs never interleave."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.errors import BadInput, HarnessError

# Temporary files of atomic writes end so; one left by a crash is stale (store.clean_stale_temporaries).
TMP_SUFFIX = ".tmp"


class LockBusy(HarnessError):
    """Another run holds the lock."""

    exit_code = 3
    label = "BLOCKED"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temporary file beside `path`, fsync, then rename over it."""
    p = Path(path)
    tmp = ""
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=TMP_SUFFIX, dir=p.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except OSError as e:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise BadInput(f"cannot write {p}: {e.strerror or e} (previous contents kept)") from None
    except BaseException:
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    return p


def read_regular(path: str | Path) -> bytes:
    """The bytes of a regular file; OSError("not a regular file") for a FIFO, a device or a directory.

    The file is opened without blocking (a FIFO with no writer would block the open), checked, and read.
    """
    p = Path(path)
    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(p))
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def fsync_dir(d: Path) -> None:
    """Make renames and unlinks in directory `d` durable."""
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path, what: str) -> Path:
    """`path` as a directory (made if missing); BadInput naming `what` when it cannot be one."""
    if path.exists() and not path.is_dir():
        raise BadInput(f"{what} {path} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInput(f"cannot create {what} {path}: {e.strerror or e}") from None
    return path


def process_alive(pid: int) -> bool:
    """Whether a process of this machine with that pid still exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_holder(path: str | Path) -> str:
    """What the holder of a lock file wrote into it ('pid N …'), or '' when nothing can be read."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()[:200]
    except OSError:
        return ""


@contextlib.contextmanager
def exclusive_lock(
    path: str | Path,
    *,
    wait: bool = False,
    holder: str = "",
    busy: Callable[[str], HarnessError] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """Hold an exclusive flock on `path`; the kernel drops it when the process dies.

    `holder` is written into the file for whoever finds it taken. When it is taken: `busy(text)`
    is raised (text: what the holder wrote), or with `wait`, `on_wait(text)` is called and the
    lock is waited for.
    """
    p = Path(path)
    ensure_dir(p.parent, "lock directory")
    try:
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise BadInput(f"cannot open lock {p}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            if not wait:
                if busy is not None:
                    raise busy(text) from None
                raise LockBusy(
                    f"{p} is held by {text}: another run is using this directory; wait for it, "
                    "or pass --wait to queue behind it"
                ) from None
            if on_wait is not None:
                on_wait(text)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}{' ' + holder if holder else ''}\n".encode(), 0)
        yield p
    finally:
        os.close(fd)
