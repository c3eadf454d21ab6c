"""KPI 2: Resource API vs Legacy API latency under the ANT app runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from harness.kpis.common.ant_plan import ant_deploy

if TYPE_CHECKING:
    from harness.core.plan import PlanContext
    from harness.core.steps import Step

UPSTREAM_SENDS: Final = 50  # `while totalCount < 49`: 50 result lines per script
SMOKE_SENDS: Final = 10  # smoke copies lower the loop bound: ≈22 s per script instead of ≈100 s
MEASURE_WALL_S: Final = 110.0  # ≈ 50 × 2 s plus start-up; lost replies must not stretch a run
SEND_PERIOD_S: Final = 2.0


def wall_bound_s(mode: str) -> float:
    """The wall-time bound of one session after `start`."""
    return MEASURE_WALL_S if mode != "smoke" else SEND_PERIOD_S * (SMOKE_SENDS + 1) + 10.0


def plan(ctx: PlanContext) -> None:
    scripts = ctx.source("ant", paths=("test/resourcebench", "app-core"))
    for target in ctx.targets:
        built = ctx.build(ctx.manifest.builds["ant"], target)
        if built is not None:
            _measure_target(ctx, target, built, scripts)
    ctx.evaluate(
        "overhead % of the Resource API over the Legacy API (medians) with a "
        "bootstrap 95 % CI on the difference; raw and corrected figures side by side",
        depends=ctx.parse_steps(),
        notes=(
            "the repo's resource-api.js drops its first reply (51 sends, 50 lines); "
            "comparing raw figures shows a fake +3.9 % overhead",
        ),
    )


def _measure_target(ctx: PlanContext, target: str, built: Step, scripts: Step) -> None:
    where, fidelity = ctx.run_where(target)
    sends = SMOKE_SENDS if ctx.mode == "smoke" else UPSTREAM_SENDS
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
    deploy = ant_deploy(
        ctx,
        target,
        "the derived resourcebench copies and the loopback companion",
        [built.id, f"patch:per-send:{target}"],
    )
    companion = (
        "the harness's companion stand-in on the board's own loopback (official figures need the "
        "phone app on the board's network, which is not automated)"
        if where == "board"
        else "the harness's loopback companion stand-in"
    )
    measures = []
    for r, _, vname in ctx.matrix([v.name for v in ctx.kpi.variants]):
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
            f"companion), talk to {companion}, run a per-send copy and the upstream-stamped copy "
            f"of {vname}, {sends} sends each, ≤ {wall_bound_s(ctx.mode):g} s each",
            outputs=(f"{vname}-{r}.log",),
            key_parts=(built.key,),
        )
        measures.append(s.id)
    ctx.parse(
        f"parse:{target}",
        "parse '(N)… mode elapsed time: Tms': raw time-since-load figures and "
        "per-send round trips, first sample dropped as warm-up",
        target=target,
        depends=tuple(measures),
    )
