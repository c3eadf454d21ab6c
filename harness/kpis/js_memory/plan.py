"""KPI 1: PSS of IoT.js vs IoT.js-Plus on the four appbench apps."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.core.plan import interleaved

if TYPE_CHECKING:
    from harness.core.plan import PlanContext


def plan(ctx: PlanContext) -> None:
    m, kpi = ctx.manifest, ctx.kpi
    apps = [m.workloads[w] for w in kpi.workloads]
    bench = ctx.source("ant", paths=("test/appbench",))
    for target in ctx.targets:
        where, fidelity = ctx.run_where(target)
        built = {}
        for v in kpi.variants:
            step = ctx.build(m.builds[v.build], target)
            if step is not None:
                built[v.name] = step
        for tool in kpi.tools:
            ctx.build(m.builds[tool], target)
        if not built:
            continue
        runtimes = [f"{v}/iotjs" for v in built]
        deploy = ctx.deploy(
            target, [*runtimes, "pss.py", "test/appbench/*.js"], [bench.id, *(s.id for s in built.values())]
        )
        if where == "qemu":
            ctx.step(
                id=f"measure:emulator-overhead:{target}",
                kind="measure",
                where="qemu",
                target=target,
                fidelity="emulated",
                depends=(deploy.id,),
                description=f"PSS of a trivial static {target} binary under the same private "
                f"{m.targets[target].qemu}: the emulator's own share",
                argv=("python3", "pss.py", "--", m.targets[target].qemu, "hello-static"),
            )
        measures = []
        for r in range(ctx.repeats()):
            for app in apps:
                for vname in interleaved(list(built), r):
                    runtime = f"{vname}/iotjs"
                    runner = (m.targets[target].qemu, "-L", f"sysroot-{target}") if where == "qemu" else ()
                    argv = (
                        "python3",
                        "pss.py",
                        "--interval",
                        "0.01",
                        "--vminfo-log",
                        f"{vname}-{app.name}-{r}.vminfo",
                        "--",
                        *runner,
                        runtime,
                        app.path,
                    )
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
                        argv=argv,
                        description=f"run {app.name} on {vname}, sample PSS of the process tree at 100 Hz",
                        outputs=(f"{vname}-{app.name}-{r}.json", f"{vname}-{app.name}-{r}.vminfo"),
                        key_parts=(built[vname].key,),
                    )
                    measures.append(s.id)
        ctx.step(
            id=f"parse:{target}",
            kind="parse",
            where="host",
            target=target,
            # Not `depends`: the measurements that did complete are parsed even when a board went
            # away mid-run, and a resume re-parses once the missing ones are measured.
            params={"measures": measures},
            always=True,
            description="peak/final/guest PSS, wall time and exit status → result rows "
            "(vminfo-format logs kept beside the JSON traces)",
        )
    ctx.step(
        id="evaluate",
        kind="evaluate",
        where="host",
        depends=tuple(s.id for s in ctx.steps if s.kind == "parse"),
        always=True,
        description="reduction % of IoT.js-Plus vs IoT.js per app with a 95 % CI; verdict only from board fidelity",
        notes=(
            "under QEMU total PSS is mostly the emulator (≈10.6 MB for a trivial binary); "
            "guest-only PSS is reported beside it",
        ),
    )
