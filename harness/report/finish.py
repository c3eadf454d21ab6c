"""Finish a run: journal → tidy table → verdicts → report files and the console summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from harness.core.manifest import Kpi, Manifest
from harness.results.runs import collect
from harness.results.store import Results

if TYPE_CHECKING:
    from harness.core.runner import Run
    from harness.report.text import Lang
    from harness.results.judgement import Evaluation

REPORT_FILES = ("report.md", "report.html", "report.ko.md", "report.ko.html")


def write_reports(
    run_dir: Path,
    evaluations: Sequence[Evaluation],
    results: Results,
    *,
    langs: Sequence[Lang] = ("en",),
    html: bool = True,
    source_dir: Path | None = None,
    build_notes: str = "",
) -> list[Path]:
    """report.md (+ report.html and plots/) per language into run_dir; the paths written.

    source_dir is where the run's logs and traces are, when the reports go elsewhere (a bundle).
    """
    from harness.report.html import write_html_report
    from harness.report.markdown import write_report
    from harness.report.plots import make_plots

    src = source_dir or run_dir
    paths = [
        write_report(run_dir, evaluations, results, lang=lang, links_from=src, build_notes=build_notes)
        for lang in langs
    ]
    if html:
        plots = make_plots(evaluations, results, src, out_dir=run_dir)
        note = "" if plots or not evaluations else "matplotlib is not installed (pip install matplotlib)"
        for lang in langs:
            paths.append(
                write_html_report(
                    run_dir,
                    evaluations,
                    results,
                    lang=lang,
                    plots=plots,
                    plot_note=note,
                    links_from=src,
                    build_notes=build_notes,
                )
            )
        paths += sorted(run_dir / x.path for ps in plots.values() for x in ps)
    return paths


def evaluate_and_report(
    run_dir: Path,
    run_id: str,
    manifest: Manifest,
    kpis: Sequence[Kpi],
    console: Console,
    *,
    langs: Sequence[Lang] = ("en",),
    html: bool = True,
    write: bool = True,
) -> list[str]:
    """Verdicts of `kpis` on the console; with `write`, also the tables and report files of the run."""
    from harness.report.console import render_console
    from harness.results.verdicts import evaluate

    results = collect(run_dir)
    if write:
        results.save(run_dir, run_id=run_id)
    # The report files cover every KPI with rows in the run: a run resumed for some of its KPIs
    # must not drop the others from report.md. The console and the verdicts returned are those
    # of `kpis`, what this command ran or was asked for.
    done = set(results.df["kpi"]) if "kpi" in results.df.columns else set()
    wanted = {k.id for k in kpis}
    every = [k for k in manifest.kpis if k.id in done or k.id in wanted]
    every += [k for k in kpis if k not in every]
    evaluations = {k.id: evaluate(k, results.filter(kpi=k.id)) for k in every}
    from harness.report.buildnotes import build_notes_markdown

    notes = build_notes_markdown(manifest, every)
    paths = (
        write_reports(run_dir, list(evaluations.values()), results, langs=langs, html=html, build_notes=notes)
        if write
        else []
    )
    asked = [evaluations[k.id] for k in kpis]
    render_console(asked, results, console, run_dir=run_dir)
    for path in paths:
        if path.suffix in (".md", ".html"):
            console.print(f"report: {path}")
    return [e.verdict.value for e in asked]


def finish_run(run: Run, kpis: Sequence[Kpi]) -> list[str]:
    return evaluate_and_report(run.run_dir, run.run_id, run.manifest, kpis, Console(emoji=False))
