"""`ant-kpi build` (the build_arm and build_ant sessions): build artefacts without measuring."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.commands.run import exit_code
from harness.core.fsio import atomic_write_text
from harness.core.manifest import Manifest, load_manifest
from harness.core.plan import KpiPlan, PlanContext
from harness.core.runner import Run, StepRunner, check_run_id, new_run_id, open_run, runs_lock
from harness.core.steps import Step
from harness.env.image_context import context_digest
from harness.errors import EXIT_OK, BadInput
from harness.kpis.common.executors import COMMON_EXECUTORS, exec_build
from harness.options import EnvSettings, GlobalOptions

DEFAULT_BUILDS = ("iotjs", "iotjs_plus", "vminfo")
DEFAULT_BUILD_TARGETS = ("rpi2", "arm64")


def _exec_any_build(step: Step, run: Run) -> dict[str, Any]:
    """build_arm / build_ant: ANT keeps its build tree (its modules are found by absolute path)."""
    if step.params.get("build") == "ant":
        from harness.kpis.common.ant_build import exec_ant_build

        return exec_ant_build(step, run)
    return exec_build(step, run)


def build_plan(
    m: Manifest, builds: list[str], targets: list[str], project_root: Path, env: EnvSettings | None = None
) -> KpiPlan:
    """A plan of build steps only (build_arm): each build for each target it supports."""
    kpi = m.kpi("js_memory")
    settings = env or EnvSettings()
    ctx = PlanContext(
        manifest=m,
        kpi=kpi,
        mode="smoke",
        targets=tuple(targets),
        project_root=project_root,
        image_key=lambda img: context_digest(img, project_root, settings),
    )
    for b in builds:
        if b not in m.builds:
            raise BadInput(f"no build {b!r} in {m.path}; builds: {', '.join(m.builds)}")
        for t in targets:
            if t not in m.targets:
                raise BadInput(f"no target {t!r} in {m.path}; targets: {', '.join(m.targets)}")
            ctx.build(m.builds[b], t)
    return KpiPlan(kpi=kpi, mode="smoke", targets=tuple(targets), steps=tuple(ctx.steps), gaps=tuple(ctx.gaps))


def cmd_build(args: argparse.Namespace, opts: GlobalOptions) -> int:
    from harness.env.sources import parse_source_overrides
    from harness.report.plan_table import print_plans

    m = load_manifest(opts.manifest)
    builds = list(args.builds) or list(DEFAULT_BUILDS)
    targets = list(args.target) or (list(m.targets) if args.builds == ["ant"] else list(DEFAULT_BUILD_TARGETS))
    plan = build_plan(m, builds, targets, opts.project_root, opts.env)
    overrides = parse_source_overrides(args.source, known=m.sources)
    run_id = check_run_id(args.run_id) if args.run_id is not None else new_run_id()
    if args.dry_run:
        print_plans([plan])
        return EXIT_OK
    console = Console(stderr=True, emoji=False)
    with runs_lock(opts.runs_dir, holder=f"build {run_id}", console=console):
        run = open_run(
            manifest=m,
            project_root=opts.project_root,
            mode="smoke",
            runs_dir=opts.runs_dir,
            run_id=run_id,
            overrides=overrides,
            cache_dir=opts.cache_dir,
            env=opts.env,
            console=console,
        )
        run.console.print(f"build run {run.run_id} → {run.run_dir}")
        for g in plan.gaps:
            run.console.print(f"[yellow]  not built:[/yellow] {g}")
        states = StepRunner(run, {**COMMON_EXECUTORS, "build": _exec_any_build}).execute(plan)
        summary = {
            sid: {
                "status": st.status,
                "message": st.message,
                **{k: st.outputs.get(k) for k in ("sha256", "path", "reused") if k in st.outputs},
            }
            for sid, st in states.items()
            if sid.startswith("build:")
        }
        atomic_write_text(
            run.run_dir / "builds.json", json.dumps({"builds": summary, "gaps": list(plan.gaps)}, indent=1)
        )
    for sid, info in summary.items():
        mark = "reused" if info.get("reused") else info["status"]
        run.console.print(f"  {sid:28} {mark:8} {str(info.get('sha256', ''))[:16]} {info['message']}")
    return exit_code({"build": states}, [])
