"""Stored runs: find a run directory by name (or the newest), and read its rows."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from harness.errors import BadInput
from harness.results.journal import recover_batch
from harness.results.rows import CSV_NAME, JOURNAL_NAME, META_NAME, PARQUET_NAME
from harness.results.store import Results, clean_stale_temporaries, recover_tables

# A row is identified by these; a re-parse after an interrupted parse must not count it twice.
ROW_IDENTITY = ["run_id", "kpi", "metric", "variant", "workload", "target", "repeat", "sample"]


def collect(run_dir: Path) -> Results:
    """The run's rows: the journal (deduplicated, last wins) or the stored table."""
    if (run_dir / "results.jsonl").exists():
        res = Results.from_journal(run_dir)
        df = res.df.drop_duplicates(subset=ROW_IDENTITY, keep="last").reset_index(drop=True)
        return Results(df)
    return Results.load(run_dir)


def recover_run(run_dir: Path) -> list[str]:
    """Bring a run's files to a consistent state after a crash; what was done, one line each.

    Call with the runs lock held: an interrupted batch (ingest) is finished or undone, a committed
    save of the tables is finished, and temporary files of interrupted writes are removed.
    """
    if not run_dir.is_dir():
        return []
    done = [m for m in (recover_batch(run_dir),) if m]
    if recover_tables(run_dir):
        done.append("a save of the tables that a crash interrupted was completed")
    clean_stale_temporaries(run_dir)
    return done


def table_disagreement(run_dir: Path, journal_rows: int) -> str:
    """'' when the stored tables hold the journal's rows; else how they differ (one line)."""
    if not (run_dir / JOURNAL_NAME).exists():
        return ""
    counts: dict[str, int] = {}
    meta = run_dir / META_NAME
    try:
        if meta.exists():
            counts[META_NAME] = int(json.loads(meta.read_text(encoding="utf-8")).get("rows", -1))
        if (run_dir / PARQUET_NAME).exists():
            counts[PARQUET_NAME] = len(Results.load(run_dir))
        if (run_dir / CSV_NAME).exists():
            counts[CSV_NAME] = sum(1 for _ in csv.reader(io.StringIO((run_dir / CSV_NAME).read_text("utf-8")))) - 1
    except (OSError, ValueError, AttributeError, BadInput) as e:
        return f"the stored tables cannot be read ({e}); they were rebuilt from the journal ({journal_rows} rows)"
    if not counts or all(n == journal_rows for n in counts.values()):
        return ""
    shown = ", ".join(f"{name} {n}" for name, n in counts.items())
    return f"the journal holds {journal_rows} rows but the stored tables disagree ({shown}); they were rebuilt from it"


def list_runs(runs_dir: Path) -> list[Path]:
    if not runs_dir.is_dir():
        return []
    return sorted((p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


# What a run directory holds (any one of them): commands that write a run refuse other directories.
RUN_MARKERS = (JOURNAL_NAME, PARQUET_NAME, CSV_NAME, META_NAME, "steps", "builds.json")


def resolve_run(runs_dir: Path, name: str | None) -> Path:
    if name:
        for p in (runs_dir / name, Path(name)):
            if p.is_dir():
                if not any((p / m).exists() for m in RUN_MARKERS):
                    raise BadInput(f"{p} is not a run directory (no {JOURNAL_NAME}, results or steps/)")
                return p
        raise BadInput(f"no run {name!r} in {runs_dir} (`ant-kpi runs` lists them)")
    measured = [(t, p.name, p) for p in list_runs(runs_dir) if (t := measured_at(p)) is not None]
    if not measured:
        raise BadInput(f"no run with results in {runs_dir}; run a KPI first (e.g. `nox -s kpi_js_memory`)")
    return max(measured)[2]


def measured_at(run_dir: Path) -> float | None:
    """When rows last reached a run: its journal's time (a report re-saves the table, not the journal)."""
    for name in ("results.jsonl", "results.parquet"):
        p = run_dir / name
        if p.exists():
            return p.stat().st_mtime
    return None


def load_builds(run_dir: Path) -> dict[str, object]:
    p = run_dir / "builds.json"
    return json.loads(p.read_text()) if p.exists() else {}
