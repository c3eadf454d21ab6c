"""`ant-kpi doctor`: what each KPI really needs on this machine, one table per KPI, each gap with its fix.

The needs come from the KPI's own plan in the chosen mode (its images, sources and emulated
targets) and from what its steps read at run time (doctor_needs.py); each is checked for real:
the sources are checked out as a run would, an image is looked up by the tag of its current inputs,
and an image build's package index is asked from a container.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.commands.doctor_needs import (
    Machine,
    Need,
    baseline,
    dense_top1,
    env_path,
    lab_needs,
    measure_training,
    ml_files,
    npu_needs,
    plan_needs,
)
from harness.core.manifest import load_manifest
from harness.core.plan import KpiPlan
from harness.core.tables import print_table
from harness.env import probes
from harness.errors import EXIT_OK
from harness.options import GlobalOptions

_STATE_STYLE = {"ok": "[green]ok[/green]", "missing": "[yellow]missing[/yellow]", "info": "[cyan]info[/cyan]"}


def kpi_needs(m: Machine, plan: KpiPlan) -> list[Need]:
    """Every need of one KPI in the plan's mode: the plan's own, then what its steps read at run time."""
    needs = plan_needs(m, plan)
    kpi, measure = plan.kpi.id, plan.mode == "measure"
    if kpi in ("ml_latency", "ml_memory"):
        needs.append(baseline(m))
        needs += ml_files(m, ("mbv1_0.9_v4u", "benchmark_model_aarch64") if kpi == "ml_latency" else ("mbv1_0.9_v4u",))
    if kpi == "ml_latency":
        needs.append(dense_top1(m))
        if "x86_64" in plan.targets:
            needs.append(
                Need(
                    name="ai-edge-litert (x86_64 host timings)",
                    probe=probes.module("ai_edge_litert"),
                    fix="pip install ai-edge-litert",
                )
            )
    if kpi == "ml_memory":
        needs.append(
            Need(
                name="KPI 3's own conversion",
                probe=probes.Probe(state="info", detail="sized when the same run has it: `ant-kpi run 3 4`"),
            )
        )
    if kpi == "npus":
        # The image row is npu_needs' own: a KPI 7 run builds tvm-npu only when asked.
        own = npu_needs(m)
        at = next((i for i, n in enumerate(needs) if n.name == "image tvm-npu"), len(needs))
        needs = [*needs[:at], own[0], *(n for n in needs[at + 1 :]), *own[1:]]
    if measure and kpi in ("ml_latency", "tinyml_memory", "vit_throughput"):
        needs += measure_training(m)
    if measure and kpi == "vit_throughput":
        needs.append(env_path("ANT_KPI_DEIT_SMALL", m.env.deit_small, "DeiT-S weights", "set ANT_KPI_DEIT_SMALL=/path"))
    if measure and kpi in ("js_memory", "app_latency", "boards", "ml_latency"):
        needs.append(Need(name="ssh client (boards)", probe=probes.which("ssh"), fix="apt-get install openssh-client"))
        needs += lab_needs(m)
    needs += [
        Need(name=f"not part of {plan.mode} mode: {n.id}", probe=probes.Probe(state="info", detail=n.why))
        for n in plan.not_in_mode
    ]
    return needs


def _table(plan: KpiPlan, needs: Sequence[Need]) -> Table:
    k = plan.kpi
    missing = sum(n.state == "missing" for n in needs)
    t = Table(
        title=f"KPI {k.number} · {k.id} · {plan.mode}: "
        + (f"{missing} of {len(needs)} missing" if missing else "nothing missing"),
        title_justify="left",
        expand=True,
    )
    t.add_column("needs", ratio=2, overflow="fold")
    t.add_column("state", no_wrap=True)
    t.add_column("what this machine has", ratio=4, overflow="fold")
    t.add_column("fix", ratio=3, overflow="fold")
    for n in needs:
        t.add_row(escape(n.name), _STATE_STYLE[n.state], escape(n.probe.detail), escape(n.fix))
    return t


def cmd_doctor(args: argparse.Namespace, opts: GlobalOptions) -> int:
    from harness.env.sources import parse_source_overrides
    from harness.kpis import plan_kpi

    manifest = load_manifest(opts.manifest)
    kpis = [manifest.kpi(k) for k in args.kpis] if args.kpis else list(manifest.kpis)
    con = Console(emoji=False, highlight=False)
    m = Machine(
        manifest,
        root=opts.project_root,
        cache_dir=opts.cache_dir,
        env=opts.env,
        overrides=parse_source_overrides(args.source),
    )
    con.print(f"[dim]checking {len(kpis)} KPI(s) in {args.mode} mode; sources go to {opts.cache_dir}[/dim]")
    for k in kpis:
        plan = plan_kpi(manifest, k, mode=args.mode, project_root=opts.project_root, env=opts.env)
        print_table(con, _table(plan, kpi_needs(m, plan)))
    disk = probes.disk(opts.project_root)
    con.print(f"disk: {disk.detail}" + ("" if disk.state == "ok" else " (images and builds want ≥ 20 GiB)"))
    con.print("A missing piece blocks only the steps that need it; `ant-kpi plan` works everywhere.")
    return EXIT_OK
