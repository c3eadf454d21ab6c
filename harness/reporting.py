"""Finish a run (journal → tidy table → verdicts → report) and the `report` / `runs` commands."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import EXIT_KPI_FAILED, EXIT_OK, BadInput
from harness.manifest import Kpi, Manifest, load_manifest
from harness.results import Results

if TYPE_CHECKING:
    from harness.cli import GlobalOptions
    from harness.runner import Run

# A row is identified by these; a re-parse after an interrupted parse must not count it twice.
ROW_IDENTITY = ["run_id", "kpi", "metric", "variant", "workload", "target", "repeat"]


def collect(run_dir: Path) -> Results:
    """The run's rows: the journal (deduplicated, last wins) or the stored table."""
    if (run_dir / "results.jsonl").exists():
        res = Results.from_journal(run_dir)
        df = res.df.drop_duplicates(subset=ROW_IDENTITY, keep="last").reset_index(drop=True)
        return Results(df)
    return Results.load(run_dir)


def evaluate_and_report(
    run_dir: Path, run_id: str, manifest: Manifest, kpis: Sequence[Kpi], console: Console
) -> list[str]:
    from harness.report import render_console, write_report
    from harness.stats import evaluate

    results = collect(run_dir)
    results.save(run_dir, run_id=run_id)
    evaluations = [evaluate(k, results.filter(kpi=k.id)) for k in kpis]
    path = write_report(run_dir, evaluations, results)
    render_console(evaluations, results, console)
    console.print(f"report: {path}")
    return [e.verdict.value for e in evaluations]


def finish_run(run: Run, kpis: Sequence[Kpi]) -> list[str]:
    return evaluate_and_report(run.run_dir, run.run_id, run.manifest, kpis, Console())


def _runs(runs_dir: Path) -> list[Path]:
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
    runs = [p for p in _runs(runs_dir) if (p / "results.jsonl").exists() or (p / "results.parquet").exists()]
    if not runs:
        raise BadInput(f"no run with results in {runs_dir}; run a KPI first (e.g. `nox -s kpi_js_memory`)")
    return runs[-1]


def cmd_report(args: argparse.Namespace, opts: GlobalOptions) -> int:
    m = load_manifest(opts.manifest)
    run_dir = resolve_run(opts.runs_dir, args.run)
    results = collect(run_dir)
    ids = list(dict.fromkeys(results.df["kpi"]))
    kpis = [k for k in m.kpis if k.id in ids]
    if not kpis:
        raise BadInput(f"run {run_dir.name} has no result rows")
    verdicts = evaluate_and_report(run_dir, run_dir.name, m, kpis, Console())
    return EXIT_KPI_FAILED if "FAIL" in verdicts else EXIT_OK


def cmd_runs(args: argparse.Namespace, opts: GlobalOptions) -> int:
    con = Console(emoji=False, highlight=False)
    t = Table(title=f"runs in {opts.runs_dir}", title_justify="left")
    for col in ("run", "KPIs", "rows", "ok", "blocked/failed", "report"):
        t.add_column(col)
    for p in _runs(opts.runs_dir):
        try:
            res = collect(p)
        except BadInput as e:
            t.add_row(p.name, "", "", "", "", escape(e.one_line()))
            continue
        df = res.df
        kinds = ", ".join(dict.fromkeys(df["kpi"])) if len(df) else "-"
        ok = int((df["status"] == "ok").sum()) if len(df) else 0
        builds = p / "builds.json"
        extra = "builds.json" if builds.exists() else ""
        t.add_row(
            p.name,
            kinds,
            str(len(df)),
            str(ok),
            str(len(df) - ok),
            "report.md" if (p / "report.md").exists() else extra,
        )
    con.print(t)
    return EXIT_OK


def load_builds(run_dir: Path) -> dict[str, object]:
    p = run_dir / "builds.json"
    return json.loads(p.read_text()) if p.exists() else {}
