"""vminfo logs: `timestamp_us text_KB data_KB stack_KB shlib_KB pss_KB max_pss_KB` per line.

vminfo writes an empty line whenever no process of the given name exists (before the app starts,
after it exits), so blank lines are skipped wherever they are; "the last value" is read from the
last non-empty line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness.errors import BadInput

FIELDS: Final = (
    "timestamp_us",
    "text_kb",
    "data_kb",
    "stack_kb",
    "shlib_kb",
    "pss_kb",
    "max_pss_kb",
)
# ASCII digits only: int() would also take "1_000" and non-Latin digits, which vminfo never writes.
_INT_RE: Final = re.compile(r"[0-9]+", re.ASCII)


@dataclass(frozen=True, kw_only=True)
class VminfoSample:
    """One vminfo line (sizes in KB)."""

    line: int
    timestamp_us: int
    text_kb: int
    data_kb: int
    stack_kb: int
    shlib_kb: int
    pss_kb: int
    max_pss_kb: int


def parse_vminfo_text(text: str, *, source: str = "vminfo log") -> list[VminfoSample]:
    """Samples of a vminfo log's text; a malformed line → BadInput naming its line number."""
    samples = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != len(FIELDS):
            raise BadInput(f"{source}:{number}: expected {len(FIELDS)} fields ({' '.join(FIELDS)}), found {len(parts)}")
        for name, part in zip(FIELDS, parts, strict=True):
            if not _INT_RE.fullmatch(part):
                raise BadInput(f"{source}:{number}: {name} {_short(part)!r} is not a whole number")
        values = [int(p) for p in parts]
        samples.append(VminfoSample(line=number, **dict(zip(FIELDS, values, strict=True))))
    return samples


def parse_vminfo(path: str | Path) -> list[VminfoSample]:
    """Samples of a vminfo log file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise BadInput(f"{p}: cannot read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise BadInput(f"{p}:{line}: not text (byte {data[e.start]:#04x})") from None
    return parse_vminfo_text(text, source=str(p))


def _last(samples: Sequence[VminfoSample]) -> VminfoSample:
    if not samples:
        raise BadInput(
            "vminfo log has no sample: the process was not found while vminfo ran "
            "(runs shorter than its 1 s interval get none)"
        )
    return samples[-1]


def final_pss_kb(samples: Sequence[VminfoSample]) -> int:
    """PSS (KB) of the last sample: the 6th field of the last non-empty line."""
    return _last(samples).pss_kb


def max_pss_kb(samples: Sequence[VminfoSample]) -> int:
    """Peak PSS (KB) vminfo saw: the 7th field of the last non-empty line."""
    return _last(samples).max_pss_kb


def measurements(path: Path) -> list[dict[str, Any]]:
    """The registry entry: peak_pss and final_pss (KB) of one vminfo log."""
    samples = parse_vminfo(path)
    note = f"vminfo: {len(samples)} sample(s), last at line {_last(samples).line}"
    return [
        {"metric": "peak_pss", "value": float(max_pss_kb(samples)), "unit": "KB", "note": note},
        {"metric": "final_pss", "value": float(final_pss_kb(samples)), "unit": "KB", "note": note},
    ]


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
