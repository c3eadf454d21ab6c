"""KPI 4: the .tflite file size (the model's parameter memory) vs the baseline."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.core.plan import PlanContext


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
    ctx.step(
        id="measure:size",
        kind="measure",
        always=True,  # cheap: sizes whatever models exist now (a conversion may have appeared)
        where="host",
        fidelity="static",
        # No dependencies: each model that is missing gets its own blocked row, the others are sized.
        description="file size (bytes) and sha256 of the KPI 3 artefact, of the shipped "
        "mbv1_0.9_v4u.tflite and of the baseline",
        notes=(
            "the KPI 3 artefact comes from `kpi_ml_latency`; without it only the shipped "
            "model and the baseline are sized",
        ),
    )
    ctx.step(
        id="evaluate",
        kind="evaluate",
        always=True,
        where="host",
        description="size reduction % vs the baseline (static fidelity: exact, no CI needed)",
    )
