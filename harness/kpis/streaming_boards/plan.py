"""KPI 6: boards on which compatibility/streaming.js passes, counted from evidence."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.kpis.common.ant_plan import ant_deploy

if TYPE_CHECKING:
    from harness.core.plan import PlanContext


def plan(ctx: PlanContext) -> None:
    m = ctx.manifest
    script = ctx.source("ant", paths=("test/compatibility",))
    for target in ctx.targets:
        where, fidelity = ctx.run_where(target)
        built = ctx.build(m.builds["ant"], target)
        if built is None:
            continue
        camera = "the board's camera source from boards.toml" if where == "board" else "'test' (videotestsrc)"
        dep = ant_deploy(ctx, target, "streaming.js with sourceType set", [built.id, script.id])
        ctx.step(
            id=f"measure:streaming:{target}",
            kind="measure",
            where=where,
            target=target,
            variant="ant",
            workload="streaming",
            repeat=0,
            fidelity=fidelity,
            depends=(dep.id,),
            argv=("iotjs", "app-core/main.js", "streaming", "streaming.js", "0"),
            description=f"streaming.js as `antd streaming --run` runs it, with sourceType = {camera}; "
            "an external GDP client "
            "(tcpclientsrc ! gdpdepay ! identity eos-after=N ! fakesink) must receive frames",
            notes=(
                "pass = 'Pipeline ready!', no CRITICAL / 'Error received from element', the "
                "client exits 0, the final 'NNN.NN KB' line appears; the script's own exit "
                "code is not evidence",
            ),
        )
        ctx.step(
            id=f"parse:{target}",
            kind="parse",
            always=True,
            where="host",
            target=target,
            depends=(f"measure:streaming:{target}",),
            description="apply the pass rule to the app log and the client's exit → one 'passed' row",
        )
    ctx.step(
        id="evaluate",
        kind="evaluate",
        always=True,
        where="host",
        depends=tuple(s.id for s in ctx.steps if s.kind == "parse"),
        description="count of boards that passed, each linked to its log; the nine seed boards "
        "are the target set and the report shows which have evidence",
    )
