"""The crash-safe journal of a run (results.jsonl): rows appended one line at a time, fsync'd."""

from __future__ import annotations

import json
import os
from pathlib import Path

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


def append_row_journal(run_dir: str | Path, row: Row) -> Path:
    """Append one row to results.jsonl and fsync, so a finished measurement survives a crash."""
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
