"""Stored runs: find a run directory by name (or the newest), and read its rows."""

from __future__ import annotations

import json
from pathlib import Path

from harness.errors import BadInput
from harness.results.store import Results

# A row is identified by these; a re-parse after an interrupted parse must not count it twice.
ROW_IDENTITY = ["run_id", "kpi", "metric", "variant", "workload", "target", "repeat", "sample"]


def collect(run_dir: Path) -> Results:
    """The run's rows: the journal (deduplicated, last wins) or the stored table."""
    if (run_dir / "results.jsonl").exists():
        res = Results.from_journal(run_dir)
        df = res.df.drop_duplicates(subset=ROW_IDENTITY, keep="last").reset_index(drop=True)
        return Results(df)
    return Results.load(run_dir)


def list_runs(runs_dir: Path) -> list[Path]:
    if not runs_dir.is_dir():
        return []
    return sorted((p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def resolve_run(runs_dir: Path, name: str | None) -> Path:
    if name:
        p = Path(name)
        if p.is_dir():
            return p
        if (runs_dir / name).is_dir():
            return runs_dir / name
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
