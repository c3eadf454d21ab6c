"""Tidy result rows: one schema for every KPI, a versioned file format and a crash-safe journal.

A run directory holds:
  results.parquet    the rows (preferred on load; pyarrow)
  results.csv        the same rows, for spreadsheets and as a fallback
  results.meta.json  schema version, run id, harness version, creation time, columns
  results.jsonl      append-only journal: one row per line, fsynced as each measurement ends"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness import __version__
from harness.core.fsio import TMP_SUFFIX, atomic_write_text, ensure_dir, fsync_dir
from harness.core.manifest import Direction, Statistic
from harness.errors import BadInput
from harness.results.journal import _journal_row, pending_batch
from harness.results.rows import (
    _PARQUET_META_KEY,
    _STRING_COLUMNS,
    COLUMNS,
    CSV_NAME,
    JOURNAL_NAME,
    META_NAME,
    PARQUET_NAME,
    READABLE_SCHEMAS,
    RESULTS_SCHEMA_VERSION,
    Row,
    _json_text,
    _unsupported,
    utc_now,
)
from harness.results.statistics import Comparison, Summary, compare, summarize

# --------------------------------------------------------------------------------------------
# The result object
# --------------------------------------------------------------------------------------------


def _empty_frame() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in COLUMNS.items()})


def _coerce(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Exactly the schema's columns, in order, with its dtypes; anything else → BadInput."""
    _check_columns(df, where)
    out = df.loc[:, list(COLUMNS)].reset_index(drop=True).copy()
    for c, t in COLUMNS.items():
        try:
            out[c] = out[c].astype(pd.api.types.pandas_dtype(t))
        except (TypeError, ValueError) as e:
            raise BadInput(f"{where}: column {c} is not {t} ({e})") from None
        if t == "string" and bool(out[c].isna().any()):
            raise BadInput(f"{where}: column {c} has missing values")
    return out


def _check_columns(df: pd.DataFrame, where: str) -> None:
    missing = [c for c in COLUMNS if c not in df.columns]
    extra = [str(c) for c in df.columns if c not in COLUMNS]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            parts.append(f"unknown column(s) {', '.join(extra)}")
        raise BadInput(f"{where}: {'; '.join(parts)}")


def _row_to_flat(r: Row) -> dict[str, Any]:
    d = asdict(r)
    d["argv"] = _json_text(list(r.argv))
    d["target_identity"] = _json_text(dict(r.target_identity))
    return d


@dataclass(frozen=True, kw_only=True)
class GroupSummary:
    """The statistics of one group of rows (one metric of one variant on one workload)."""

    kpi: str
    metric: str
    target: str
    workload: str
    variant: str
    fidelity: str
    mode: str
    unit: str
    summary: Summary | None
    not_ok: int


class Results:
    """Result rows as a pandas DataFrame with a fixed schema, plus statistics on them."""

    def __init__(self, df: pd.DataFrame | None = None) -> None:
        self._df = _empty_frame() if df is None else _coerce(df, "results")

    @classmethod
    def _wrap(cls, df: pd.DataFrame) -> Results:
        """A Results around a frame already in the schema (no second validation pass)."""
        r = cls()
        r._df = df.reset_index(drop=True)
        return r

    # ---- construction and access ----------------------------------------------------------

    @classmethod
    def from_rows(cls, rows: Iterable[Row]) -> Results:
        """Results holding `rows`, in order."""
        flat = [_row_to_flat(r) for r in rows]
        if not flat:
            return cls()
        return cls(pd.DataFrame(flat, columns=list(COLUMNS)))

    @property
    def df(self) -> pd.DataFrame:
        """The rows as a DataFrame (treat as read-only; use append/filter to change)."""
        return self._df

    def __len__(self) -> int:
        return len(self._df)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows())

    def __repr__(self) -> str:
        return f"Results({len(self)} rows)"

    def rows(self) -> list[Row]:
        """The rows as Row objects (argv and target_identity decoded from JSON)."""
        out = []
        for i, rec in enumerate(self._df.to_dict("records")):
            d: dict[str, Any] = {str(k): v for k, v in rec.items()}
            where = f"results row {i}"
            try:
                d["argv"] = json.loads(str(d["argv"]))
                d["target_identity"] = json.loads(str(d["target_identity"]))
            except json.JSONDecodeError:
                raise BadInput(f"{where}: argv or target_identity is not JSON") from None
            d["repeat"] = int(d["repeat"])
            d["sample"] = int(d["sample"])
            d["value"] = float(d["value"])
            d["harness_dirty"] = bool(d["harness_dirty"])
            for c in _STRING_COLUMNS:
                if c not in ("argv", "target_identity"):
                    d[c] = str(d[c])
            out.append(Row.from_record(d, where=where))
        return out

    def append(self, rows: Iterable[Row] | Results) -> Results:
        """Add rows in place; returns self so calls can chain."""
        more = rows if isinstance(rows, Results) else Results.from_rows(rows)
        if len(more):
            frames = [f for f in (self._df, more._df) if len(f)]
            self._df = pd.concat(frames, ignore_index=True)
        return self

    def filter(self, **where: object) -> Results:
        """Rows whose columns equal the given values (a list, tuple or set matches any of them)."""
        mask = pd.Series(True, index=self._df.index)
        for col, want in where.items():
            if col not in COLUMNS:
                raise BadInput(f"cannot filter on {col!r}: columns are {', '.join(COLUMNS)}")
            if isinstance(want, (list, tuple, set, frozenset)):
                mask &= self._df[col].isin(list(want))
            else:
                mask &= self._df[col] == want
        return Results._wrap(self._df[mask.astype(bool)])

    def ok_values(self, metric: str, **where: object) -> np.ndarray:
        """Finite values of the ok rows of `metric` matching `where`."""
        sel = self.filter(metric=metric, status="ok", **where).df["value"].to_numpy(dtype=float)
        return sel[np.isfinite(sel)]

    # ---- statistics on the result object ---------------------------------------------------

    def summary(self, metric: str, **where: object) -> Summary:
        """Median with a 95 % CI (and spread) of the ok rows of `metric` matching `where`."""
        values = self.ok_values(metric, **where)
        if values.size == 0:
            raise BadInput(f"no ok rows of metric {metric!r}{_describe_where(where)}")
        return summarize(values)

    def compare(
        self,
        metric: str,
        *,
        baseline: str,
        candidate: str,
        statistic: Statistic,
        direction: Direction = "lower",
        **where: object,
    ) -> Comparison:
        """Compare the candidate variant's ok rows with the baseline's (see stats.compare)."""
        b = self.ok_values(metric, variant=baseline, **where)
        c = self.ok_values(metric, variant=candidate, **where)
        for name, v in ((baseline, b), (candidate, c)):
            if v.size == 0:
                raise BadInput(f"no ok rows of metric {metric!r} for variant {name!r}{_describe_where(where)}")
        return compare(b, c, statistic, direction)

    def summaries(self, **where: object) -> list[GroupSummary]:
        """Median and CI per (kpi, metric, target, workload, variant, fidelity, mode) group."""
        df = self.filter(**where).df
        keys = ["kpi", "metric", "target", "workload", "variant", "fidelity", "mode"]
        out = []
        for key, g in df.groupby(keys, sort=True):
            k = [str(x) for x in (key if isinstance(key, tuple) else (key,))]
            values = g[g["status"] == "ok"]["value"].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            units = sorted(set(g["unit"].tolist()))
            out.append(
                GroupSummary(
                    kpi=k[0],
                    metric=k[1],
                    target=k[2],
                    workload=k[3],
                    variant=k[4],
                    fidelity=k[5],
                    mode=k[6],
                    unit=", ".join(units),
                    summary=summarize(values) if values.size else None,
                    not_ok=int((g["status"] != "ok").sum()),
                )
            )
        return out

    # ---- files ----------------------------------------------------------------------------

    def save(self, run_dir: str | Path, *, run_id: str | None = None) -> Path:
        """Write results.parquet, results.csv and results.meta.json with one commit point; returns run_dir.

        All three are written beside their targets first; then a commit record is written (the
        commit point) and the three are renamed into place. A crash before the record leaves the
        previous tables; after it, `recover_tables` finishes the renames: they never disagree.
        """
        d = ensure_dir(Path(run_dir), "run directory")
        recover_tables(d)
        ids = sorted(set(self._df["run_id"].tolist()))
        rid = run_id if run_id is not None else (ids[0] if len(ids) == 1 else d.name)
        meta = {
            "schema": RESULTS_SCHEMA_VERSION,
            "run_id": rid,
            "harness_version": __version__,
            "created": utc_now(),
            "rows": len(self),
            "columns": dict(COLUMNS),
        }
        files = {
            PARQUET_NAME: self.to_parquet_bytes(),
            CSV_NAME: self.to_csv_text().encode("utf-8"),
            META_NAME: (json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
        }
        try:
            for name, data in files.items():
                _write_synced(d / _staged(name), data, shown=d / name)
            atomic_write_text(d / COMMIT_NAME, json.dumps(sorted(files)))
        except BaseException:
            for name in files:
                with contextlib.suppress(OSError):
                    os.unlink(d / _staged(name))
            raise
        recover_tables(d)
        return d

    def to_parquet_bytes(self) -> bytes:
        """The rows as a parquet file, schema version in its metadata."""
        table = pa.Table.from_pandas(self._df, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[_PARQUET_META_KEY] = str(RESULTS_SCHEMA_VERSION).encode()
        table = table.replace_schema_metadata(meta)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue()

    def to_csv_text(self) -> str:
        """The rows as CSV, every field quoted; NaN written as 'NaN', so "" stays ""."""
        # Quote every field: a lone "\r" in a note is otherwise written bare and read as a line end.
        return self._df.to_csv(index=False, na_rep="NaN", lineterminator="\n", quoting=csv.QUOTE_ALL)

    @classmethod
    def load(cls, run_dir: str | Path) -> Results:
        """Load a run's results: parquet, or CSV when parquet is absent; BadInput on any problem."""
        d = Path(run_dir)
        schema = _check_meta(d / META_NAME)
        pq_path, csv_path = d / PARQUET_NAME, d / CSV_NAME
        if pq_path.exists():
            return cls._load_parquet(pq_path)
        if csv_path.exists():
            return cls._load_csv(csv_path, schema=schema)
        hint = ""
        if (d / JOURNAL_NAME).exists():
            hint = f" ({JOURNAL_NAME} is there: the run ended before saving)"
        raise BadInput(f"{d}: no {PARQUET_NAME} or {CSV_NAME}{hint}")

    @classmethod
    def _load_parquet(cls, path: Path) -> Results:
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as e:
            raise BadInput(f"{path}: not a readable parquet file ({_first_line(e)})") from None
        found = (table.schema.metadata or {}).get(_PARQUET_META_KEY)
        schema = RESULTS_SCHEMA_VERSION
        if found is not None:
            text = found.decode(errors="replace")
            if text not in {str(v) for v in READABLE_SCHEMAS}:
                raise BadInput(f"{path}: {_unsupported(text)}")
            schema = int(text)
        try:
            df = table.to_pandas()
        except (pa.ArrowException, ValueError, TypeError) as e:
            raise BadInput(f"{path}: cannot convert ({_first_line(e)})") from None
        return cls._wrap(_coerce(_upgrade(df, schema), str(path)))

    @classmethod
    def _load_csv(cls, path: Path, *, schema: int = RESULTS_SCHEMA_VERSION) -> Results:
        # Read every cell as text: "" stays "", "007" stays "007", and float() below gives back
        # exactly the repr pandas wrote (NaN included) on every pandas version.
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        except (OSError, ValueError, pd.errors.ParserError) as e:
            raise BadInput(f"{path}: not a readable results CSV ({_first_line(e)})") from None
        df = _upgrade(df, schema, fill="0")
        _check_columns(df, str(path))
        for col, conv in (("value", float), ("repeat", int), ("sample", int)):
            try:
                df[col] = [conv(x) for x in df[col]]
            except ValueError as e:
                raise BadInput(f"{path}: column {col}: {_first_line(e)}") from None
        if not bool(df["harness_dirty"].isin(["True", "False"]).all()):
            raise BadInput(f"{path}: harness_dirty must be True or False")
        df["harness_dirty"] = df["harness_dirty"] == "True"
        return cls._wrap(_coerce(df, str(path)))

    @classmethod
    def from_journal(cls, run_dir: str | Path) -> Results:
        """Rows from results.jsonl; a torn last line (a crash mid-write) is ignored."""
        path = Path(run_dir) / JOURNAL_NAME
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as e:
            raise BadInput(f"{path}: cannot read ({e.strerror})") from None
        batch = pending_batch(Path(run_dir))
        if batch is not None:
            # A batch is committing (or a crash cut it short): none of its rows count yet.
            data = data[: int(batch["offset"])]
        lines = data.split(b"\n")
        torn_tail = lines[-1]  # b"" when the file ends with a newline
        rows = []
        for i, raw in enumerate(lines[:-1], start=1):
            if raw.strip():
                rows.append(_journal_row(raw, f"{path}:{i}"))
        if torn_tail.strip():
            # No newline after it: the write was cut short. Keep it only if it is whole.
            with contextlib.suppress(BadInput):
                rows.append(_journal_row(torn_tail, f"{path}:{len(lines)}"))
        return cls.from_rows(rows)


# The commit record of a save under way: the names whose staged copies are to be renamed into place.
COMMIT_NAME: Final = ".results.commit.json"
_STAGED_SUFFIX: Final = ".new"


def _staged(name: str) -> str:
    return f".{name}{_STAGED_SUFFIX}"


def _write_synced(path: Path, data: bytes, *, shown: Path) -> None:
    try:
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise BadInput(f"cannot write {shown}: {e.strerror or e} (previous contents kept)") from None


def recover_tables(run_dir: Path) -> bool:
    """Finish a save that passed its commit point (renames), drop staged copies of one that did not.

    True when a committed save had to be finished. Called before every save and when a command
    opens a run under the runs lock.
    """
    commit = run_dir / COMMIT_NAME
    finished = False
    if commit.exists():
        try:
            names = json.loads(commit.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            names = []
        for name in names if isinstance(names, list) else []:
            if name in (PARQUET_NAME, CSV_NAME, META_NAME) and (run_dir / _staged(name)).exists():
                os.replace(run_dir / _staged(name), run_dir / name)
                finished = True
        fsync_dir(run_dir)
        commit.unlink()
    for name in (PARQUET_NAME, CSV_NAME, META_NAME):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(run_dir / _staged(name))
    return finished


def clean_stale_temporaries(run_dir: Path) -> int:
    """Remove temporary files that interrupted atomic writes left in a run (call under the runs lock)."""
    n = 0
    for p in [*run_dir.glob(f".*{TMP_SUFFIX}"), *(run_dir / "steps").glob(f"**/.*{TMP_SUFFIX}")]:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            n += 1
    return n


def _describe_where(where: Mapping[str, object]) -> str:
    return "".join(f", {k}={v!r}" for k, v in where.items())


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _upgrade(df: pd.DataFrame, schema: int, *, fill: int | str = 0) -> pd.DataFrame:
    """Rows of an older schema in today's columns (version 1 lacks `sample`: 0)."""
    if schema == 1 and "sample" not in df.columns:
        df = df.copy()
        df.insert(list(df.columns).index("repeat") + 1 if "repeat" in df.columns else len(df.columns), "sample", fill)
    return df


def _check_meta(path: Path) -> int:
    """The schema version results.meta.json names (today's when there is no meta file)."""
    if not path.exists():
        return RESULTS_SCHEMA_VERSION
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadInput(f"{path}: not readable JSON ({_first_line(e)})") from None
    schema = meta.get("schema") if isinstance(meta, dict) else None
    if isinstance(schema, bool) or schema not in READABLE_SCHEMAS:
        raise BadInput(f"{path}: {_unsupported(schema)}")
    return int(schema)
