"""KPI 2: Resource API vs Legacy API latency under the ANT app runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.plan import interleaved

if TYPE_CHECKING:
    from harness.plan import PlanContext


def plan(ctx: PlanContext) -> None:
    m, kpi = ctx.manifest, ctx.kpi
    scripts = ctx.source("ant", paths=("test/resourcebench", "app-core"))
    for target in ctx.targets:
        where, fidelity = ctx.run_where(target)
        built = ctx.build(m.builds["ant"], target)
        if built is None:
            continue
        ctx.step(
            id=f"patch:per-send:{target}",
            kind="build",
            where="host",
            target=target,
            depends=(scripts.id,),
            description="copies of legacy.js and resource-api.js that stamp each send "
            "(upstream stamps once at load, so it prints time since load)",
            outputs=("legacy-persend.js", "resource-api-persend.js"),
        )
        deploy = ctx.deploy(
            target,
            ["ant/out (iotjs + build tree .so)", "app-core/main-old.js", "resourcebench scripts"],
            [built.id, f"patch:per-send:{target}"],
        )
        companion = (
            "the companion app on a phone on the board's network (official numbers)"
            if where == "board"
            else "the harness's loopback companion stand-in"
        )
        measures = []
        for r in range(ctx.repeats()):
            for vname in interleaved([v.name for v in kpi.variants], r):
                s = ctx.step(
                    id=f"measure:{vname}:{target}:{r}",
                    kind="measure",
                    where=where,
                    target=target,
                    variant=vname,
                    workload=vname,
                    repeat=r,
                    fidelity=fidelity,
                    depends=(deploy.id,),
                    argv=("iotjs", "app-core/main-old.js"),
                    description=f"start the runtime with main-old.js (HEAD main.js cannot reach a "
                    f"companion), talk to {companion}, run {vname} ≈110 s (≈50 sends)",
                    outputs=(f"{vname}-{r}.log",),
                    key_parts=(built.key,),
                )
                measures.append(s.id)
        ctx.step(
            id=f"parse:{target}",
            kind="parse",
            where="host",
            target=target,
            depends=tuple(measures),
            description="parse '(N)… mode elapsed time: Tms': raw time-since-load figures and "
            "per-send round trips, first sample dropped as warm-up",
        )
    ctx.step(
        id="evaluate",
        kind="evaluate",
        where="host",
        depends=tuple(s.id for s in ctx.steps if s.kind == "parse"),
        description="overhead % of the Resource API over the Legacy API (medians) with a "
        "bootstrap 95 % CI on the difference; raw and corrected figures side by side",
        notes=(
            "the repo's resource-api.js drops its first reply (51 sends, 50 lines); "
            "comparing raw figures shows a fake +3.9 % overhead",
        ),
    )
