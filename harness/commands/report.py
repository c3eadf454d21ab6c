"""`ant-kpi report` and `ant-kpi runs`: render a stored run's report; list the stored runs."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.core.manifest import load_manifest
from harness.errors import EXIT_KPI_FAILED, EXIT_OK, BadInput
from harness.options import GlobalOptions
from harness.report.finish import REPORT_FILES, evaluate_and_report
from harness.results.runs import collect, list_runs, measured_at, resolve_run


def cmd_report(args: argparse.Namespace, opts: GlobalOptions) -> int:
    from harness.report.text import check_lang

    m = load_manifest(opts.manifest)
    run_dir = resolve_run(opts.runs_dir, args.run)
    results = collect(run_dir)
    ids = list(dict.fromkeys(results.df["kpi"]))
    kpis = [k for k in m.kpis if k.id in ids]
    if not kpis:
        raise BadInput(f"run {run_dir.name} has no result rows")
    lang = check_lang(getattr(args, "lang", "en"))
    verdicts = evaluate_and_report(
        run_dir, run_dir.name, m, kpis, Console(emoji=False), langs=(lang,), html=getattr(args, "html", True)
    )
    return EXIT_KPI_FAILED if "FAIL" in verdicts else EXIT_OK


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
    con.print(t)
    return EXIT_OK
