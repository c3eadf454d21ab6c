"""The crash-safe journal of a run (results.jsonl): rows appended one line at a time, fsync'd."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from harness.core.fsio import atomic_write_text, fsync_dir
from harness.errors import BadInput
from harness.results.rows import JOURNAL_NAME, READABLE_SCHEMAS, RESULTS_SCHEMA_VERSION, Row, _json_text, _unsupported

# --------------------------------------------------------------------------------------------
# The journal
# --------------------------------------------------------------------------------------------


def _journal_row(raw: bytes, where: str) -> Row:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadInput(f"{where}: not a JSON line") from None
    if not isinstance(data, dict):
        raise BadInput(f"{where}: not a JSON object")
    schema = data.pop("schema", None)
    if isinstance(schema, bool) or schema not in READABLE_SCHEMAS:
        raise BadInput(f"{where}: {_unsupported(schema)}")
    return Row.from_record(data, where=where)


# Boards run on threads of their own: one append at a time, so a line being written by one is
# never taken for a torn tail by another.
_APPEND_LOCK: Final = threading.Lock()


def append_row_journal(run_dir: str | Path, row: Row) -> Path:
    """Append one row to results.jsonl and fsync, so a finished measurement survives a crash."""
    with _APPEND_LOCK:
        return _append(run_dir, row)


def _append(run_dir: str | Path, row: Row) -> Path:
    path = Path(run_dir) / JOURNAL_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"schema": RESULTS_SCHEMA_VERSION, **row.to_record()}
    line = (_json_text(record) + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as e:
        raise BadInput(f"cannot open {path}: {e.strerror}") from None
    try:
        _drop_torn_tail(fd)
        view = memoryview(line)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except OSError as e:
        raise BadInput(f"cannot append to {path}: {e.strerror}") from None
    finally:
        os.close(fd)
    return path


def _drop_torn_tail(fd: int) -> None:
    """End a last line left without its newline by a crash: keep it if whole, else cut it."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    # Walk back to the last newline in chunks: the tail is one line, the file may be long.
    pos, cut = size, 0
    while pos > 0:
        start = max(0, pos - 65536)
        nl = os.pread(fd, pos - start, start).rfind(b"\n")
        if nl >= 0:
            cut = start + nl + 1
            break
        pos = start
    try:
        _journal_row(os.pread(fd, size - cut, cut), "journal tail")
    except BadInput:
        os.ftruncate(fd, cut)
    else:
        os.write(fd, b"\n")


# --------------------------------------------------------------------------------------------
# Batches: rows (and their evidence files) added all or nothing
# --------------------------------------------------------------------------------------------

# The intent record of a batch under way: where its bytes start in the journal, how many and
# their sha256, and the evidence files it moves into place. Present only while a batch commits.
BATCH_NAME: Final = ".results.batch.json"


def commit_batch(run_dir: str | Path, rows: Sequence[Row], files: Mapping[str, Path]) -> None:
    """Add `rows` to the journal and move `files` (run-relative name → staged file) into place, all or nothing.

    The caller holds the runs lock and has staged the files on the run's file system. A crash at
    any point leaves either the whole batch or none of it once `recover_batch` has run (every
    command that writes a run calls it first, and readers stop at the batch's first byte).
    """
    d = Path(run_dir)
    recover_batch(d)
    for rel in files:
        if (d / rel).exists():
            raise BadInput(f"{d / rel} exists already: evidence is never replaced")
    data = b"".join((_json_text({"schema": RESULTS_SCHEMA_VERSION, **r.to_record()}) + "\n").encode() for r in rows)
    path = d / JOURNAL_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as e:
        raise BadInput(f"cannot open {path}: {e.strerror}") from None
    failed: OSError | None = None
    try:
        _drop_torn_tail(fd)
        intent = {"offset": os.fstat(fd).st_size, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        atomic_write_text(d / BATCH_NAME, json.dumps({**intent, "rows": len(rows), "files": sorted(files)}))
        for rel, staged in files.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, d / rel)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as e:
        failed = e
    finally:
        os.close(fd)
    if failed is not None:
        recover_batch(d)
        raise BadInput(f"cannot add rows to {path}: {failed.strerror or failed} (nothing of this batch was kept)")
    os.unlink(d / BATCH_NAME)
    fsync_dir(d)


def pending_batch(run_dir: Path) -> dict[str, Any] | None:
    """The intent record of a batch that has not committed (or None)."""
    try:
        data = json.loads((run_dir / BATCH_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise BadInput(f"{run_dir / BATCH_NAME}: unreadable batch record ({e})") from None
    return data if isinstance(data, dict) else None


def recover_batch(run_dir: str | Path) -> str:
    """Finish or undo a batch a crash interrupted; '' when there was none, else what was done (one line)."""
    d = Path(run_dir)
    intent = pending_batch(d)
    if intent is None:
        return ""
    path = d / JOURNAL_NAME
    offset, size = int(intent["offset"]), int(intent["size"])
    with open(path, "a+b") as f:
        f.seek(offset)
        written = f.read(size)
        whole = len(written) == size and hashlib.sha256(written).hexdigest() == intent["sha256"]
        if not whole:
            f.truncate(offset)
            os.fsync(f.fileno())
    if not whole:
        for rel in intent.get("files", []):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(d / rel)
    os.unlink(d / BATCH_NAME)
    fsync_dir(d)
    if whole:
        return ""
    partial = written.count(b"\n")
    return f"an interrupted batch of {intent.get('rows', '?')} rows was rolled back ({partial} had reached the journal)"
