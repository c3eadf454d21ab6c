"""`ant-kpi run`: plan the KPIs, execute their steps in one run directory, evaluate and report."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from rich.console import Console

from harness.core.fsio import atomic_write_text
from harness.core.manifest import Kpi, load_manifest
from harness.core.plan import PLANS_DIR, KpiPlan
from harness.core.runner import Run, StepRunner, check_run_id, new_run_id, open_run, runs_lock
from harness.core.steps import Mode
from harness.core.strict_toml import did_you_mean
from harness.errors import EXIT_BAD_INPUT, EXIT_BLOCKED, EXIT_KPI_FAILED, EXIT_OK, EXIT_STEP_FAILED, BadInput
from harness.kpis import executors_for, plan_kpi
from harness.kpis.common.executors import record_blocked
from harness.options import MAX_REPEATS, GlobalOptions
from harness.results.runs import recover_run

if TYPE_CHECKING:
    from harness.env.lab.inventory import Board

MAX_BOARD_WAIT_S: Final = 86400.0
MAX_BOARD_WORKERS: Final = 64


def _filter_plan(plan: KpiPlan, workloads: list[str]) -> KpiPlan:
    if not workloads:
        return plan
    keep = tuple(s for s in plan.steps if s.kind != "measure" or not s.workload or s.workload in workloads)
    return replace(plan, steps=keep)


def check_repeats(repeats: int | None) -> int | None:
    """--repeats as given, when it is a count the harness can plan: 1 to MAX_REPEATS."""
    if repeats is not None and not 1 <= repeats <= MAX_REPEATS:
        raise BadInput(f"--repeats {repeats}: give a count from 1 to {MAX_REPEATS} (README: the `ant-kpi` command)")
    return repeats


def check_workloads(kpis: list[Kpi], workloads: list[str]) -> None:
    """Every --workload names a workload of one of the KPIs run; else nothing would be measured."""
    offered = list(dict.fromkeys(w for k in kpis for w in k.workloads))
    for w in workloads:
        if w not in offered:
            raise BadInput(
                f"--workload {w!r}: no KPI of this run measures it{did_you_mean(w, offered)}; "
                f"workloads: {', '.join(offered) or 'none'}"
            )


def cmd_run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    from harness.env.lab.session import resolve_targets
    from harness.env.sources import parse_source_overrides
    from harness.report.plan_table import print_plans

    m = load_manifest(opts.manifest)
    repeats = check_repeats(args.repeats)
    if repeats is not None:
        m = replace(m, defaults=replace(m.defaults, repeats=repeats, smoke_repeats=repeats))
    kpis = [m.kpi(k) for k in args.kpis]
    check_workloads(kpis, args.workload)
    overrides = parse_source_overrides(args.source, known=m.sources)
    run_id = check_run_id(args.run_id) if args.run_id is not None else new_run_id()
    board_wait = check_board_wait(args.board_wait)
    workers = check_board_workers(args.board_workers)
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
    console = Console(stderr=True, emoji=False)
    # The lock first: a run refused by it (or waiting for it) has created nothing and names no path.
    with runs_lock(opts.runs_dir, holder=f"run {run_id}", wait=args.wait, console=console):
        run = open_run(
            manifest=m,
            project_root=opts.project_root,
            mode=mode,
            runs_dir=opts.runs_dir,
            run_id=run_id,
            overrides=overrides,
            cache_dir=opts.cache_dir,
            env=opts.env,
            console=console,
        )
        run.console.print(f"run {run.run_id} → {run.run_dir}")
        for done in recover_run(run.run_dir):  # a resumed run that a crash left half-written
            run.console.print(f"[yellow]  recovered:[/yellow] {done}")
        states = _execute(run, plans, boards, wait=args.wait, board_wait=board_wait, workers=workers)
        from harness.report.finish import finish_run

        verdicts = finish_run(run, [p.kpi for p in plans])
    return exit_code(states, verdicts)


def check_board_wait(seconds: float | None) -> float | None:
    """--board-wait as given, when it is a number of seconds the harness can wait: 0 to a day."""
    if seconds is not None and not (math.isfinite(seconds) and 0 <= seconds <= MAX_BOARD_WAIT_S):
        raise BadInput(f"--board-wait {seconds:g}: give seconds from 0 to {MAX_BOARD_WAIT_S:g}")
    return seconds


def check_board_workers(n: int) -> int:
    """--board-workers as given: 0 (one worker per board) to MAX_BOARD_WORKERS."""
    if not 0 <= n <= MAX_BOARD_WORKERS:
        raise BadInput(
            f"--board-workers {n}: give 0 (one worker per board), 1 (one step after another) "
            f"or at most {MAX_BOARD_WORKERS}"
        )
    return n


def _execute(
    run: Run,
    plans: list[KpiPlan],
    boards: Mapping[str, Board],
    *,
    wait: bool,
    board_wait: float | None = None,
    workers: int = 0,
) -> dict[str, Any]:
    from harness.env.lab.session import Lab

    states: dict[str, Any] = {}
    run.steps = {s.id: s for p in plans for s in p.steps}
    lab = Lab(
        boards=boards,
        leases_dir=run.cache_dir / "leases",
        run_id=run.run_id,
        ttl_s=run.manifest.defaults.timeout_s * 4,
        wait=wait or board_wait is not None,
        wait_timeout_s=board_wait,
        say=run.console.print,
    )
    # Board leases taken during the run are released when it ends (or by the kernel if it dies).
    with lab:
        run.lab = lab
        for plan in plans:
            run.console.rule(f"KPI {plan.kpi.number} · {plan.kpi.id} · {run.mode}")
            for g in plan.gaps:
                run.console.print(f"[yellow]  gap:[/yellow] {g}")
            record_plan(run, plan)
            states[plan.kpi.id] = StepRunner(
                run,
                executors_for(plan.kpi.id),
                on_blocked=record_blocked,
                lanes={t: b.name for t, b in boards.items()},
                board_workers=workers,
            ).execute(plan)
    return states


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
