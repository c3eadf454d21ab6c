"""`ant-kpi plan` (the dry run) and `ant-kpi validate`: what would run, with no Docker and no board."""

from __future__ import annotations

import argparse
import json
import sys

from harness import __version__
from harness.core.manifest import load_manifest
from harness.errors import EXIT_OK
from harness.options import GlobalOptions


def cmd_validate(args: argparse.Namespace, opts: GlobalOptions) -> int:
    m = load_manifest(opts.manifest)
    print(
        f"{opts.manifest}: ok — {len(m.kpis)} KPIs, {len(m.sources)} sources, "
        f"{len(m.images)} images, {len(m.targets)} targets, {len(m.workloads)} workloads"
    )
    return EXIT_OK


def cmd_plan(args: argparse.Namespace, opts: GlobalOptions) -> int:
    from harness.kpis import plan_all

    m = load_manifest(opts.manifest)
    plans = plan_all(m, args.kpis, mode=args.mode, target=args.target, project_root=opts.project_root, env=opts.env)
    if args.json:
        doc = {
            "manifest": str(opts.manifest),
            "mode": args.mode,
            "harness_version": __version__,
            "kpis": [p.to_dict() for p in plans],
        }
        sys.stdout.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        return EXIT_OK
    from harness.report.plan_table import print_plans

    print_plans(plans)
    return EXIT_OK
