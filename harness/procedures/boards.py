"""KPI 6: boards on which compatibility/streaming.js passes, counted from evidence."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.plan import PlanContext


def plan(ctx: PlanContext) -> None:
    m = ctx.manifest
    script = ctx.source("ant", paths=("test/compatibility",))
    for target in ctx.targets:
        where, fidelity = ctx.run_where(target)
        built = ctx.build(m.builds["ant"], target)
        if built is None:
            continue
        camera = "the board's camera source from boards.toml" if where == "board" else "'test' (videotestsrc)"
        dep = ctx.deploy(target, ["ant/out", "streaming.js with sourceType set"], [built.id, script.id])
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
            argv=("antd", "streaming", "--run"),
            description=f"streaming.js with sourceType = {camera}; an external GDP client "
            "(tcpclientsrc ! gdpdepay ! identity eos-after=N ! fakesink) must receive frames",
            notes=(
                "pass = 'Pipeline ready!', no CRITICAL / 'Error received from element', the "
                "client exits 0, the final 'NNN.NN KB' line appears; the script's own exit "
                "code is not evidence",
            ),
        )
    ctx.step(
        id="evaluate",
        kind="evaluate",
        where="host",
        description="count of boards that passed, each linked to its log; the nine seed boards "
        "are the target set and the report shows which have evidence",
    )
