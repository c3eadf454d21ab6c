"""KPI 4: the .tflite file size (the model's parameter memory) vs the baseline."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.core.plan import PlanContext

SHIPPED = "mbv1_0.9_v4u"
ARTEFACT = "mbv1_0.9_v4u.harness"


def plan(ctx: PlanContext) -> None:
    base = ctx.manifest.workloads["mobilenet_v2_1.0_224"]
    ctx.step(
        id="fetch:baseline",
        kind="fetch",
        where="host",
        description=f"download {base.url} (or a local path), pin its sha256",
        inputs=(base.url,),
        outputs=(base.member,),
    )
    ctx.source("ant", paths=("test/mlbench",))
    # One step per model: a missing model blocks only its own row, named by its variant.
    what = {
        base.name: f"the baseline {base.member}",
        SHIPPED: f"ANT's shipped {SHIPPED}.tflite",
        ARTEFACT: "this run's KPI 3 training output as converted by the harness (when the run has one)",
    }
    for model, desc in what.items():
        ctx.step(
            id=f"measure:size:{model}",
            kind="measure",
            always=True,  # cheap: sizes whatever exists now (a conversion may have appeared)
            where="host",
            fidelity="static",
            variant=model,
            workload=model,
            repeat=0,
            description=f"file size (bytes) and sha256 of {desc}",
            notes=(
                f"{ARTEFACT} comes from `kpi_ml_latency` in the same run (`ant-kpi run 3 4`, or "
                "`ant-kpi run 4 --run-id` of a run that has it); it is its own variant, never pooled "
                "with the shipped model",
            )
            if model == ARTEFACT
            else (),
        )
    ctx.step(
        id="evaluate",
        kind="evaluate",
        always=True,
        where="host",
        description="size reduction % vs the baseline (static fidelity: exact, no CI needed)",
    )
