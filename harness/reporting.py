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
    from harness.report import Lang
    from harness.runner import Run
    from harness.stats import Evaluation

REPORT_FILES = ("report.md", "report.html", "report.ko.md", "report.ko.html")
# A row is identified by these; a re-parse after an interrupted parse must not count it twice.
ROW_IDENTITY = ["run_id", "kpi", "metric", "variant", "workload", "target", "repeat", "sample"]


def collect(run_dir: Path) -> Results:
    """The run's rows: the journal (deduplicated, last wins) or the stored table."""
    if (run_dir / "results.jsonl").exists():
        res = Results.from_journal(run_dir)
        df = res.df.drop_duplicates(subset=ROW_IDENTITY, keep="last").reset_index(drop=True)
        return Results(df)
    return Results.load(run_dir)


def write_reports(
    run_dir: Path, evaluations: Sequence[Evaluation], results: Results, *, langs: Sequence[Lang] = ("en",),
    html: bool = True, source_dir: Path | None = None,
) -> list[Path]:
    """report.md (+ report.html and plots/) per language into run_dir; the paths written.

    source_dir is where the run's logs and traces are, when the reports go elsewhere (a bundle).
    """
    from harness.plots import make_plots
    from harness.report import write_html_report, write_report

    src = source_dir or run_dir
    paths = [write_report(run_dir, evaluations, results, lang=lang, links_from=src) for lang in langs]
    if html:
        plots = make_plots(evaluations, results, src, out_dir=run_dir)
        note = "" if plots or not evaluations else "matplotlib is not installed (pip install matplotlib)"
        for lang in langs:
            paths.append(write_html_report(run_dir, evaluations, results, lang=lang, plots=plots, plot_note=note,
                                           links_from=src))
        paths += sorted(run_dir / x.path for ps in plots.values() for x in ps)
    return paths


def evaluate_and_report(
    run_dir: Path, run_id: str, manifest: Manifest, kpis: Sequence[Kpi], console: Console, *,
    langs: Sequence[Lang] = ("en",), html: bool = True,
) -> list[str]:
    from harness.report import render_console
    from harness.stats import evaluate

    results = collect(run_dir)
    results.save(run_dir, run_id=run_id)
    # The report files cover every KPI with rows in the run: a run resumed for some of its KPIs
    # must not drop the others from report.md. The console and the verdicts returned are those
    # of `kpis`, what this command ran or was asked for.
    done = set(results.df["kpi"]) if "kpi" in results.df.columns else set()
    wanted = {k.id for k in kpis}
    every = [k for k in manifest.kpis if k.id in done or k.id in wanted]
    every += [k for k in kpis if k not in every]
    evaluations = {k.id: evaluate(k, results.filter(kpi=k.id)) for k in every}
    paths = write_reports(run_dir, list(evaluations.values()), results, langs=langs, html=html)
    asked = [evaluations[k.id] for k in kpis]
    render_console(asked, results, console)
    for path in paths:
        if path.suffix in (".md", ".html"):
            console.print(f"report: {path}")
    return [e.verdict.value for e in asked]


def finish_run(run: Run, kpis: Sequence[Kpi]) -> list[str]:
    return evaluate_and_report(run.run_dir, run.run_id, run.manifest, kpis, Console(emoji=False))


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
    measured = [(t, p.name, p) for p in _runs(runs_dir) if (t := _measured_at(p)) is not None]
    if not measured:
        raise BadInput(f"no run with results in {runs_dir}; run a KPI first (e.g. `nox -s kpi_js_memory`)")
    return max(measured)[2]


def _measured_at(run_dir: Path) -> float | None:
    """When rows last reached a run: its journal's time (a report re-saves the table, not the journal)."""
    for name in ("results.jsonl", "results.parquet"):
        p = run_dir / name
        if p.exists():
            return p.stat().st_mtime
    return None


def cmd_report(args: argparse.Namespace, opts: GlobalOptions) -> int:
    from harness.report import check_lang

    m = load_manifest(opts.manifest)
    run_dir = resolve_run(opts.runs_dir, args.run)
    results = collect(run_dir)
    ids = list(dict.fromkeys(results.df["kpi"]))
    kpis = [k for k in m.kpis if k.id in ids]
    if not kpis:
        raise BadInput(f"run {run_dir.name} has no result rows")
    lang = check_lang(getattr(args, "lang", "en"))
    verdicts = evaluate_and_report(run_dir, run_dir.name, m, kpis, Console(emoji=False), langs=(lang,),
                                   html=getattr(args, "html", True))
    return EXIT_KPI_FAILED if "FAIL" in verdicts else EXIT_OK


def cmd_runs(args: argparse.Namespace, opts: GlobalOptions) -> int:
    con = Console(emoji=False, highlight=False)
    t = Table(title=f"runs in {opts.runs_dir}", title_justify="left")
    for col in ("run", "KPIs", "rows", "ok", "blocked/failed", "report"):
        t.add_column(col)
    for p in _runs(opts.runs_dir):
        if _measured_at(p) is None and not (p / "results.csv").exists():
            # A build (`ant-kpi build`) or a run stopped before its first row: nothing is broken.
            what = "builds.json" if (p / "builds.json").exists() else "no result rows yet"
            t.add_row(p.name, "-", "0", "0", "0", what)
            continue
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
            ", ".join(n for n in REPORT_FILES if (p / n).exists()) or extra,
        )
    con.print(t)
    return EXIT_OK


def load_builds(run_dir: Path) -> dict[str, object]:
    p = run_dir / "builds.json"
    return json.loads(p.read_text()) if p.exists() else {}
