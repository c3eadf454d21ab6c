"""KPI 5: patch-aware training: accuracy and peak memory vs the plain model."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.plan import PlanContext


def plan(ctx: PlanContext) -> None:
    src = ctx.source("auto_compression", paths=("tinyml",))
    img = ctx.image("cuda-train")
    smoke = ctx.mode == "smoke"
    for variant in ("plain", "patch"):
        extra = ("--num-patches", "4", "--num-per-patch-stage", "5") if variant == "patch" else ()
        ctx.step(
            id=f"train:{variant}",
            kind="train",
            where="image",
            image="cuda-train",
            variant=variant,
            depends=(src.id, img.id),
            argv=(
                "python3",
                "patch_aware_train.py",
                "--model",
                "efficientnet_b0",
                "--epochs",
                "1" if smoke else "20",
                "--data-path",
                "<synthetic>" if smoke else "<dataset path>",
                *extra,
            ),
            description=("CPU smoke on synthetic data" if smoke else "4-GPU training on the dataset"),
            notes=(
                "patch_aware_trainer.sh calls motiv_train.py, which never existed: "
                "patch_aware_train.py is run directly",
                "needs torchvision's reference presets/utils/sampler/transforms (≥ 0.16)",
                "the script prints no peak memory: the harness measures it",
            ),
        )
        ctx.step(
            id=f"measure:peak-memory:{variant}",
            kind="measure",
            where="image",
            image="cuda-train",
            variant=variant,
            workload=variant,
            repeat=0,
            fidelity="host" if smoke else "simulator",
            depends=(f"train:{variant}",),
            description=(
                "peak memory of one inference of the trained model, sampled by the harness (host proxy)"
                if smoke
                else "peak SRAM of the model's TFLite export through the TinyEngine memory "
                "scheduler (tinyml/code_generator)"
            ),
        )
        ctx.step(
            id=f"parse:{variant}",
            kind="parse",
            where="host",
            variant=variant,
            depends=(f"train:{variant}", f"measure:peak-memory:{variant}"),
            description="'Test:  Acc@1 X Acc@5 Y' → top1; peak memory → peak_memory rows",
        )
    ctx.step(
        id="evaluate",
        kind="evaluate",
        where="host",
        description="accuracy and peak memory of the patch-aware model beside the plain model (reported)",
    )
