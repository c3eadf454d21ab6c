"""KPI 1: PSS of IoT.js vs IoT.js-Plus on the four appbench apps."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.core.plan import PlanContext
    from harness.core.steps import Step


def plan(ctx: PlanContext) -> None:
    bench = ctx.source("ant", paths=("test/appbench",))
    for target in ctx.targets:
        built = _builds(ctx, target)
        if built:
            _measure_target(ctx, target, built, bench)
    ctx.evaluate(
        "reduction % of IoT.js-Plus vs IoT.js per app with a 95 % CI; verdict only from board fidelity",
        depends=ctx.parse_steps(),
        notes=(
            "under QEMU total PSS is mostly the emulator (≈10.6 MB for a trivial binary); "
            "guest-only PSS is reported beside it",
        ),
    )


def _builds(ctx: PlanContext, target: str) -> dict[str, Step]:
    """Both runtimes (those the target can build) and the tools, for one target."""
    m, kpi = ctx.manifest, ctx.kpi
    built = {}
    for v in kpi.variants:
        step = ctx.build(m.builds[v.build], target)
        if step is not None:
            built[v.name] = step
    for tool in kpi.tools:
        ctx.build(m.builds[tool], target)
    return built


def _measure_target(ctx: PlanContext, target: str, built: dict[str, Step], bench: Step) -> None:
    m = ctx.manifest
    where, fidelity = ctx.run_where(target)
    runtimes = [f"{v}/iotjs" for v in built]
    deploy = ctx.deploy(
        target, [*runtimes, "pss.py", "test/appbench/*.js"], [bench.id, *(s.id for s in built.values())]
    )
    qemu = m.targets[target].qemu
    if where == "qemu":
        ctx.step(
            id=f"measure:emulator-overhead:{target}",
            kind="measure",
            where="qemu",
            target=target,
            fidelity="emulated",
            depends=(deploy.id,),
            description=f"PSS of a trivial static {target} binary under the same private "
            f"{qemu}: the emulator's own share",
            argv=("python3", "pss.py", "--", qemu, "hello-static"),
        )
    runner = (qemu, "-L", f"sysroot-{target}") if where == "qemu" else ()
    measures = []
    for r, app_name, vname in ctx.matrix(list(built), ctx.kpi.workloads):
        app = m.workloads[app_name]
        log = f"{vname}-{app.name}-{r}"
        argv = ("python3", "pss.py", "--interval", "0.01", "--vminfo-log", f"{log}.vminfo", "--", *runner)
        s = ctx.step(
            id=f"measure:{vname}:{app.name}:{target}:{r}",
            kind="measure",
            where=where,
            target=target,
            variant=vname,
            workload=app.name,
            repeat=r,
            fidelity=fidelity,
            depends=(deploy.id,),
            argv=(*argv, f"{vname}/iotjs", app.path),
            description=f"run {app.name} on {vname}, sample PSS of the process tree at 100 Hz",
            outputs=(f"{log}.json", f"{log}.vminfo"),
            key_parts=(built[vname].key,),
        )
        measures.append(s.id)
    ctx.parse(
        f"parse:{target}",
        "peak/final/guest PSS, wall time and exit status → result rows "
        "(vminfo-format logs kept beside the JSON traces)",
        target=target,
        # Not `depends`: the measurements that did complete are parsed even when a board went
        # away mid-run, and a resume re-parses once the missing ones are measured.
        params={"measures": measures},
    )
