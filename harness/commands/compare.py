"""`ant-kpi compare`: two stored runs side by side."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from harness.core.manifest import load_manifest
from harness.errors import EXIT_OK, HarnessError
from harness.options import GlobalOptions
from harness.report.compare import ALPHA, MIN_N, compare_runs, render_table
from harness.results.runs import collect, resolve_run


def cmd_compare(args: argparse.Namespace, opts: GlobalOptions) -> int:
    dir_a = resolve_run(opts.runs_dir, args.run_a)
    dir_b = resolve_run(opts.runs_dir, args.run_b)
    a, b = collect(dir_a), collect(dir_b)
    directions: dict[tuple[str, str], str] = {}
    try:
        m = load_manifest(opts.manifest)
        directions = {(k.id, mt.name): mt.direction for k in m.kpis for mt in k.metrics}
    except HarnessError:  # comparing stored runs must not depend on today's manifest being valid
        directions = {}
    changes = compare_runs(a, b, directions=directions, include_one_sided=getattr(args, "all", False))
    if args.json:
        doc = {
            "a": dir_a.name,
            "b": dir_b.name,
            "alpha": ALPHA,
            "min_n": MIN_N,
            "changes": [c.to_json() for c in changes],
        }
        print(json.dumps(doc, indent=1, ensure_ascii=False))
        return EXIT_OK
    console = Console(emoji=False)
    if not console.is_terminal:
        console = Console(width=200, emoji=False)  # piped into a file or a log: keep one row per line
    render_table(changes, console, name_a=dir_a.name, name_b=dir_b.name)
    return EXIT_OK
