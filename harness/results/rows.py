"""The result row: one schema for every KPI (its columns and types), checked when a row is made."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any, Final, Literal, get_args

import numpy as np

from harness.core.manifest import FIDELITIES, Fidelity
from harness.errors import BadInput

RESULTS_SCHEMA_VERSION: Final = 2
# Version 1 had no `sample` column: its files still load, with sample 0 on every row.
READABLE_SCHEMAS: Final = (1, 2)
PARQUET_NAME: Final = "results.parquet"
CSV_NAME: Final = "results.csv"
META_NAME: Final = "results.meta.json"
JOURNAL_NAME: Final = "results.jsonl"
# Key in the parquet schema metadata, so a parquet file copied without its meta.json is checked too.
_PARQUET_META_KEY: Final = b"ant_kpi.results_schema"

Mode = Literal["smoke", "measure"]
Status = Literal["ok", "blocked", "failed"]
MODES: Final[tuple[str, ...]] = get_args(Mode)
STATUSES: Final[tuple[str, ...]] = get_args(Status)

# Column → pandas dtype. "string" (pd.NA for missing) behaves the same on pandas 2 and 3.
COLUMNS: Final[dict[str, str]] = {
    "run_id": "string",
    "kpi": "string",
    "metric": "string",
    "variant": "string",
    "workload": "string",
    "target": "string",
    "fidelity": "string",
    "mode": "string",
    "repeat": "int64",
    # The n-th sample within one measurement (a KPI 2 session prints one line per send).
    "sample": "int64",
    "value": "float64",
    "unit": "string",
    "status": "string",
    "time": "string",
    "source_commit": "string",
    "image_digest": "string",
    "artefact_sha256": "string",
    "argv": "string",
    "target_identity": "string",
    "harness_version": "string",
    "harness_dirty": "bool",
    "log": "string",
    "note": "string",
}
_STRING_COLUMNS: Final = tuple(c for c, t in COLUMNS.items() if t == "string")


def utc_now() -> str:
    """The current time as UTC ISO-8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_text(obj: object) -> str:
    # sort_keys makes the stored text deterministic; ensure_ascii=False keeps unicode readable.
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, kw_only=True)
class Row:
    """One measured (or blocked) value with its provenance."""

    run_id: str
    kpi: str
    metric: str
    variant: str
    value: float
    unit: str
    fidelity: Fidelity
    mode: Mode
    workload: str = ""
    target: str = ""
    repeat: int = 0
    sample: int = 0
    status: Status = "ok"
    time: str = field(default_factory=utc_now)
    source_commit: str = ""
    image_digest: str = ""
    artefact_sha256: str = ""
    argv: Sequence[str] = ()
    target_identity: Mapping[str, Any] = field(default_factory=dict, hash=False)
    harness_version: str = ""
    harness_dirty: bool = False
    log: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        where = f"result row {self.kpi}/{self.metric}/{self.variant}"
        for name in _STRING_COLUMNS:
            if name in ("argv", "target_identity"):
                continue
            got = getattr(self, name)
            if not isinstance(got, str):
                raise BadInput(f"{where}: {name} must be a string, not {type(got).__name__}")
        if self.fidelity not in FIDELITIES:
            raise BadInput(f"{where}: fidelity {self.fidelity!r} is not one of {', '.join(FIDELITIES)}")
        if self.mode not in MODES:
            raise BadInput(f"{where}: mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.status not in STATUSES:
            raise BadInput(f"{where}: status {self.status!r} is not one of {', '.join(STATUSES)}")
        for name in ("repeat", "sample"):
            got = getattr(self, name)
            if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
                raise BadInput(f"{where}: {name} must be an integer, not {got!r}")
            object.__setattr__(self, name, int(got))
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float, np.number)):
            raise BadInput(f"{where}: value must be a number, not {self.value!r}")
        object.__setattr__(self, "value", float(self.value))
        if self.status == "ok" and not math.isfinite(self.value):
            raise BadInput(f"{where}: value is {self.value} but status is ok (a measurement is finite; use failed)")
        if not isinstance(self.harness_dirty, (bool, np.bool_)):
            raise BadInput(f"{where}: harness_dirty must be true or false, not {self.harness_dirty!r}")
        object.__setattr__(self, "harness_dirty", bool(self.harness_dirty))
        if isinstance(self.argv, str) or not all(isinstance(a, str) for a in self.argv):
            raise BadInput(f"{where}: argv must be a list of strings")
        object.__setattr__(self, "argv", tuple(self.argv))
        try:
            _json_text(dict(self.target_identity))
        except (TypeError, ValueError) as e:
            raise BadInput(f"{where}: target_identity is not JSON data ({e})") from None
        object.__setattr__(self, "target_identity", dict(self.target_identity))
        _check_time(self.time, where)

    def to_record(self) -> dict[str, Any]:
        """The row as JSON-ready data (NaN → null; argv a list; target_identity an object)."""
        d = asdict(self)
        d["argv"] = list(self.argv)
        d["target_identity"] = dict(self.target_identity)
        d["value"] = None if math.isnan(self.value) else self.value
        return d

    @classmethod
    def from_record(cls, data: Mapping[str, Any], *, where: str = "row") -> Row:
        """Build a row from `to_record` data; unknown or missing keys → BadInput."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise BadInput(f"{where}: unknown field(s) {', '.join(unknown)}")
        kw = dict(data)
        if kw.get("value", 0.0) is None:
            kw["value"] = math.nan
        try:
            return cls(**kw)
        except TypeError as e:
            raise BadInput(f"{where}: {e}") from None
        except BadInput as e:
            raise BadInput(f"{where}: {e}") from None


def _check_time(text: str, where: str) -> None:
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadInput(f"{where}: time {text!r} is not ISO-8601") from None
    offset = t.utcoffset()
    if offset is None or offset.total_seconds() != 0:
        raise BadInput(f"{where}: time {text!r} must be UTC (end in +00:00 or Z)")


def _unsupported(schema: object) -> str:
    return f"results schema {schema!r} is not supported (this harness reads {', '.join(map(str, READABLE_SCHEMAS))})"
