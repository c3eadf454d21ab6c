"""`ant-kpi report` and `ant-kpi runs`: render a stored run's report; list the stored runs."""

from __future__ import annotations

import argparse
import contextlib

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.core.fsio import LockBusy, lock_holder
from harness.core.manifest import load_manifest
from harness.core.runner import RUNS_LOCK, runs_lock
from harness.core.tables import print_table
from harness.errors import EXIT_KPI_FAILED, EXIT_OK, BadInput
from harness.options import GlobalOptions
from harness.report.finish import REPORT_FILES, evaluate_and_report
from harness.results.runs import collect, list_runs, measured_at, recover_run, resolve_run, table_disagreement


def cmd_report(args: argparse.Namespace, opts: GlobalOptions) -> int:
    """Render a run's report under the runs lock; while another command holds it, show it without writing.

    A run in progress (or an ingest) holds the lock: its files are being written, so `report` then
    prints the verdicts from the journal as it stands and rewrites none of the run's files.
    """
    from harness.report.text import check_lang

    m = load_manifest(opts.manifest)
    runs = args.run if isinstance(args.run, list) else [args.run] if args.run else []
    if len(runs) > 1:
        return _report_several(runs, args, opts)
    if getattr(args, "out", None):
        raise BadInput("--out is for several runs; one run's report is written into its own folder")
    run_dir = resolve_run(opts.runs_dir, runs[0] if runs else None)
    lang = check_lang(getattr(args, "lang", "en"))
    err = Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(runs_lock(run_dir.parent, holder=f"report {run_dir.name}"))
            busy = ""
        except LockBusy:
            busy = lock_holder(run_dir.parent / RUNS_LOCK) or "another command"
        warnings = [] if busy else recover_run(run_dir)
        results = collect(run_dir)
        ids = list(dict.fromkeys(results.df["kpi"]))
        kpis = [k for k in m.kpis if k.id in ids]
        if not kpis:
            raise BadInput(f"run {run_dir.name} has no result rows")
        if not busy:
            warnings.append(table_disagreement(run_dir, len(results)))
        if any(warnings):
            err.print(escape(f"warning: {'; '.join(w for w in warnings if w)}"))
        verdicts = evaluate_and_report(
            run_dir,
            run_dir.name,
            m,
            kpis,
            Console(emoji=False),
            langs=(lang,),
            html=getattr(args, "html", True),
            write=not busy,
        )
        if busy:
            err.print(
                escape(
                    f"note: {run_dir.parent} is being written by {busy}: the report above is from the journal as "
                    "it stands, and no file of the run was rewritten; run `ant-kpi report` again when it ends"
                )
            )
    return EXIT_KPI_FAILED if "FAIL" in verdicts else EXIT_OK


def _report_several(runs: list[str], args: argparse.Namespace, opts: GlobalOptions) -> int:
    """Several runs judged together (a count over boards measured in different runs): each run's rows
    keep their run id, fidelity and mode; nothing in the runs is rewritten."""
    import pandas as pd

    from harness.report.console import render_console
    from harness.report.markdown import render_markdown
    from harness.report.text import check_lang
    from harness.results.store import Results
    from harness.results.verdicts import evaluate

    m = load_manifest(opts.manifest)
    lang = check_lang(getattr(args, "lang", "en"))
    dirs = list(dict.fromkeys(resolve_run(opts.runs_dir, r) for r in runs))
    frames = [collect(d).df for d in dirs]
    results = (
        Results(pd.concat([f for f in frames if len(f)], ignore_index=True)) if any(len(f) for f in frames) else None
    )
    if results is None:
        raise BadInput(f"runs {', '.join(d.name for d in dirs)} have no result rows")
    ids = list(dict.fromkeys(results.df["kpi"]))
    kpis = [k for k in m.kpis if k.id in ids]
    evaluations = [evaluate(k, results.filter(kpi=k.id)) for k in kpis]
    con = Console(emoji=False)
    con.print(f"runs judged together: {', '.join(d.name for d in dirs)} ({len(results)} rows)")
    render_console(evaluations, results, con)
    if getattr(args, "out", None):
        from pathlib import Path

        from harness.core.fsio import atomic_write_text

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        name = "report.md" if lang == "en" else f"report.{lang}.md"
        text = render_markdown(evaluations, results, run_id=" + ".join(d.name for d in dirs), run_dir=out, lang=lang)
        atomic_write_text(out / name, text)
        con.print(f"report: {out / name}")
    return EXIT_KPI_FAILED if any(e.verdict.value == "FAIL" for e in evaluations) else EXIT_OK


def cmd_runs(args: argparse.Namespace, opts: GlobalOptions) -> int:
    con = Console(emoji=False, highlight=False)
    t = Table(title=f"runs in {opts.runs_dir}", title_justify="left")
    for col in ("run", "KPIs", "rows", "ok", "blocked/failed", "report"):
        t.add_column(col)
    for p in list_runs(opts.runs_dir):
        if measured_at(p) is None and not (p / "results.csv").exists():
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
    print_table(con, t)
    return EXIT_OK
