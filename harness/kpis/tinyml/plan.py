"""KPI 5: patch-aware training: accuracy and peak memory vs the plain model."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.core.plan import PlanContext

SCRIPT = "/work/src/patch_aware_train.py"
# The seed's patch_aware_trainer.sh settings (4 GPUs, AMP, ImageNet, pretrained EfficientNet-B0).
SEED_ARGS = (
    "--amp",
    "--model",
    "efficientnet_b0",
    "--epochs",
    "20",
    "--lr",
    "0.0001",
    "--wd",
    "0.0001",
    "--opt",
    "rmsprop",
    "--weights",
    "EfficientNet_B0_Weights.IMAGENET1K_V1",
    "-b",
    "256",
    "--lr-scheduler",
    "cosineannealinglr",
)
SMOKE_ARGS = (
    "--device",
    "cpu",
    "--model",
    "efficientnet_b0",
    "--epochs",
    "1",
    "--lr",
    "0.0001",
    "--wd",
    "0.0001",
    "--opt",
    "rmsprop",
    "-b",
    "4",
    "-j",
    "0",
    "--lr-scheduler",
    "cosineannealinglr",
    "--lr-warmup-epochs",
    "0",
    "--print-freq",
    "1",
)
VARIANT_FLAGS = {
    "plain": ("--num-patches", "1", "--num-per-patch-stage", "0"),
    "patch": ("--num-patches", "4", "--num-per-patch-stage", "5"),
}


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def plan(ctx: PlanContext) -> None:
    from harness.kpis.tinyml import spec as k

    src = ctx.source("auto_compression", paths=("tinyml",))
    img = ctx.image("cuda-train")
    smoke = ctx.mode == "smoke"
    if smoke:
        ctx.step(
            id="data:synthetic",
            kind="fetch",
            where="host",
            description="generate a tiny synthetic ImageFolder (train/val, 2 classes × 8 images)",
            outputs=("synth/train", "synth/val"),
        )
    shims = _digest(*(k.SHIMS_DIR / n for n in k.SHIM_MODULES))
    tool = _digest(k.MEMORY_TOOL)
    for variant, flags in VARIANT_FLAGS.items():
        launcher = ("python3", SCRIPT) if smoke else ("torchrun", "--nproc_per_node=4", SCRIPT)
        train = ctx.step(
            id=f"train:{variant}",
            kind="train",
            where="image",
            image="cuda-train",
            variant=variant,
            depends=(src.id, img.id, *(("data:synthetic",) if smoke else ())),
            argv=(
                *launcher,
                *(SMOKE_ARGS if smoke else SEED_ARGS),
                "--data-path",
                "/data",
                "--output-dir",
                "/work/out",
                *flags,
            ),
            description=(
                f"{variant}: 1 epoch on CPU on the synthetic data (smoke)"
                if smoke
                else f"{variant}: 20 epochs on 4 GPUs on ImageNet, as patch_aware_trainer.sh"
            ),
            notes=(
                "patch_aware_trainer.sh calls motiv_train.py, which never existed: "
                "patch_aware_train.py is run directly",
                "torchvision's reference presets/utils/sampler/transforms (≥ 0.16 API) are the harness's own "
                "stand-ins (harness/shims/patch_aware)",
                *(f"patch {p.file}: {p.why}" for p in k.PATCHES),
                "plain = --num-per-patch-stage 0: no layer is replaced (torchvision's EfficientNet-B0 as is)"
                if variant == "plain"
                else "patch = the first 5 spatial layers (and their squeeze-excitation) zero-pad each of 4×4 patches",
                *(
                    ()
                    if smoke
                    else (
                        "--use-wandb is left out: no experiment tracking service",
                        "--weights downloads from download.pytorch.org unless the torch hub cache holds it",
                    )
                ),
            ),
            key_parts=(shims, [(p.file, p.old, p.new) for p in k.PATCHES]),
            outputs=("out/checkpoint.pth", "out/model_0.pth"),
        )
        memory = ctx.step(
            id=f"measure:peak-memory:{variant}",
            kind="measure",
            where="image",
            image="cuda-train",
            target="x86_64",
            variant=variant,
            workload=k.MEMORY_WORKLOAD,
            repeat=0,
            fidelity="host",
            depends=(train.id,),
            argv=(
                "python3",
                "/work/tools/patch_memory.py",
                "--src",
                "/work/src",
                "--checkpoint",
                k.CHECKPOINT,
                "--model",
                k.MODEL,
                *flags,
                "--input-size",
                str(k.INPUT_SIZE),
                "--out",
                f"/work/{k.MEMORY_JSON}",
            ),
            description=(
                "peak activation memory of one inference of the trained model, "
                + (
                    "layer by layer"
                    if variant == "plain"
                    else "its patch-wise first stage run tile by tile, "
                    "the rest layer by layer (checked against the whole network)"
                )
                + " (harness/patch_memory.py: fp32 tensors crossing module boundaries, BatchNorm folded)"
            ),
            notes=(
                "an analysis of the real model in PyTorch, not an MCU's SRAM: "
                "that needs TinyEngine on an int8 TFLite export",
            ),
            key_parts=(tool,),
            outputs=(k.MEMORY_JSON,),
        )
        measures = [memory.id]
        if not smoke:
            sram = ctx.step(
                id=f"measure:peak-sram:{variant}",
                kind="measure",
                where="image",
                image="cuda-train",
                target="x86_64",
                variant=variant,
                workload=k.MEMORY_WORKLOAD,
                repeat=0,
                fidelity="simulator",
                depends=(train.id,),
                description="peak SRAM of the model's int8 TFLite export through the TinyEngine memory "
                "scheduler (tinyml/code_generator): BLOCKED, no TFLite export of the patch-wise model exists",
            )
            measures.append(sram.id)
        ctx.step(
            id=f"parse:{variant}",
            kind="parse",
            where="host",
            variant=variant,
            target="x86_64",
            # Not `depends`: the accuracy row is kept when the memory step fails, and the reverse.
            params={"measures": measures},
            always=True,
            description="'Test:  Acc@1 X Acc@5 Y' → top1 row; the peak-memory analysis → peak_memory row",
        )
    ctx.step(
        id="evaluate",
        kind="evaluate",
        where="host",
        depends=tuple(s.id for s in ctx.steps if s.kind == "parse"),
        always=True,
        description="accuracy and peak memory of the patch-aware model beside the plain model (reported)",
    )
