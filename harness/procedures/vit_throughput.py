"""KPI 8: throughput (images/s) of a ViT with token packing vs the plain ViT."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.plan import interleaved

if TYPE_CHECKING:
    from harness.plan import PlanContext


def plan(ctx: PlanContext) -> None:
    src = ctx.source("auto_compression", paths=("PackViT",))
    img = ctx.image("cuda-train")
    smoke = ctx.mode == "smoke"
    train = ctx.step(
        id="train:packvit",
        kind="train",
        where="image",
        image="cuda-train",
        depends=(src.id, img.id),
        argv=(
            "python3",
            "main_l2_vit_3keep_senet.py",
            "--arch",
            "deit_small",
            "--epochs",
            "1" if smoke else "30",
            "--base_rate",
            "0.7",
        ),
        description=(
            "tiny ViT on synthetic data, CPU"
            if smoke
            else "DeiT-S with token packing on ImageNet, multi-GPU, per PackViT's README"
        ),
        notes=(
            "PackViT has no throughput script and no TFLite export: the harness adds both",
            "CPU needs --no-repeated-aug --mixup 0 --cutmix 0 and two .cuda() guards",
        ),
    )
    conv = ctx.step(
        id="convert:tflite",
        kind="convert",
        where="image",
        image="cuda-train",
        depends=(train.id,),
        description="export plain and packed ViT to TFLite (harness's own)",
    )
    for target in ctx.targets:
        where, fidelity = ctx.run_where(target)
        for r in range(ctx.repeats()):
            for v in interleaved(["vit", "packvit"], r):
                ctx.step(
                    id=f"measure:{v}:{target}:{r}",
                    kind="measure",
                    where=where,
                    target=target,
                    variant=v,
                    workload=v,
                    repeat=r,
                    fidelity=fidelity,
                    depends=(conv.id,),
                    description=f"benchmark the {v} tflite model; images/s = 1e6 / avg µs × batch",
                )
    ctx.step(id="evaluate", kind="evaluate", where="host", description="throughput ratio packed / plain with a 95 % CI")
