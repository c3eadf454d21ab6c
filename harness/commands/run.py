"""`ant-kpi run`: plan the KPIs, execute their steps in one run directory, evaluate and report."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from harness.core.fsio import atomic_write_text
from harness.core.manifest import load_manifest
from harness.core.plan import PLANS_DIR, KpiPlan
from harness.core.runner import Run, StepRunner, open_run, run_lock
from harness.core.steps import Mode
from harness.errors import EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_KPI_FAILED, EXIT_OK, EXIT_STEP_FAILED, BadInput
from harness.kpis import executors_for, plan_kpi
from harness.kpis.common.executors import record_blocked
from harness.options import GlobalOptions


def _filter_plan(plan: KpiPlan, workloads: list[str]) -> KpiPlan:
    if not workloads:
        return plan
    keep = tuple(s for s in plan.steps if s.kind != "measure" or not s.workload or s.workload in workloads)
    return replace(plan, steps=keep)


def cmd_run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    from harness.env.lab.session import Lab, resolve_targets
    from harness.env.sources import parse_source_overrides
    from harness.report.plan_table import print_plans

    m = load_manifest(opts.manifest)
    if args.repeats is not None:
        m = replace(m, defaults=replace(m.defaults, repeats=args.repeats, smoke_repeats=args.repeats))
    kpis = [m.kpi(k) for k in args.kpis]
    targets, boards = resolve_targets(m, args.target, args.boards, opts.env)
    mode: Mode = args.mode or ("measure" if boards else "smoke")
    if boards and mode != "measure":
        raise BadInput("a board was named with --mode smoke: boards are for measure runs")
    plans = [
        _filter_plan(
            plan_kpi(
                m,
                k,
                mode=mode,
                targets=tuple(targets),
                project_root=opts.project_root,
                env=opts.env,
                boards={t: b.name for t, b in boards.items()},
            ),
            args.workload,
        )
        for k in kpis
    ]
    if args.dry_run:
        print_plans(plans)
        return EXIT_OK
    overrides = parse_source_overrides(args.source)
    run = open_run(
        manifest=m,
        project_root=opts.project_root,
        mode=mode,
        runs_dir=opts.runs_dir,
        run_id=args.run_id,
        overrides=overrides,
        cache_dir=opts.cache_dir,
        env=opts.env,
    )
    run.console.print(f"run {run.run_id} → {run.run_dir}")
    states: dict[str, Any] = {}
    run.steps = {s.id: s for p in plans for s in p.steps}
    lab = Lab(
        boards=boards,
        leases_dir=run.cache_dir / "leases",
        run_id=run.run_id,
        ttl_s=m.defaults.timeout_s * 4,
        wait=args.wait,
    )
    # Board leases taken during the run are released when it ends (or by the kernel if it dies).
    with run_lock(run, wait=args.wait), lab:
        run.lab = lab
        for plan in plans:
            run.console.rule(f"KPI {plan.kpi.number} · {plan.kpi.id} · {mode}")
            for g in plan.gaps:
                run.console.print(f"[yellow]  gap:[/yellow] {g}")
            record_plan(run, plan)
            states[plan.kpi.id] = StepRunner(run, executors_for(plan.kpi.id), on_blocked=record_blocked).execute(plan)
    from harness.report.finish import finish_run

    verdicts = finish_run(run, [p.kpi for p in plans])
    return exit_code(states, verdicts)


def record_plan(run: Run, plan: KpiPlan) -> None:
    """Keep the KPI's plan in the run (plans/<kpi>.json) and name the steps this mode leaves out:
    the report lists them as not part of the mode, and they never count as blocked."""
    from rich.markup import escape

    for n in plan.not_in_mode:
        run.console.print(f"[cyan]  not part of {plan.mode} mode:[/cyan] {escape(n.line())}")
    atomic_write_text(
        run.run_dir / PLANS_DIR / f"{plan.kpi.id}.json",
        json.dumps(plan.to_dict(), indent=1, ensure_ascii=False, default=str) + "\n",
    )


def exit_code(states: Mapping[str, Mapping[str, Any]], verdicts: list[str]) -> int:
    """1 if a KPI failed its target; else the most serious step outcome: bad input, tool failure, blocked."""
    if "FAIL" in verdicts:
        return EXIT_KPI_FAILED
    codes = {st.code for per in states.values() for st in per.values() if st.status != "ok"}
    for code in (EXIT_BAD_INPUT, EXIT_STEP_FAILED, EXIT_BLOCKED):
        if code in codes:
            return code
    return EXIT_OK
