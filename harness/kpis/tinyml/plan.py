"""KPI 5: patch-aware training: accuracy and peak memory vs the plain model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.core.digest import sha256_files

if TYPE_CHECKING:
    from harness.core.plan import PlanContext
    from harness.core.steps import Step

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
    return sha256_files(*paths)[:16]


def plan(ctx: PlanContext) -> None:
    from harness.kpis.tinyml import spec as k

    src = ctx.source("auto_compression", paths=("tinyml",))
    img = ctx.image("cuda-train")
    if ctx.mode == "smoke":
        ctx.synthetic_data("generate a tiny synthetic ImageFolder (train/val, 2 classes × 8 images)")
    shims = _digest(*(k.SHIMS_DIR / n for n in k.SHIM_MODULES))
    for variant, flags in VARIANT_FLAGS.items():
        train = _train(ctx, variant, flags, depends=(src.id, img.id), key_parts=(shims,))
        measures = _measure_memory(ctx, variant, flags, train)
        ctx.parse(
            f"parse:{variant}",
            "'Test:  Acc@1 X Acc@5 Y' → top1 row; the peak-memory analysis → peak_memory row",
            variant=variant,
            target="x86_64",
            # Not `depends`: the accuracy row is kept when the memory step fails, and the reverse.
            params={"measures": measures},
        )
    ctx.evaluate(
        "accuracy and peak memory of the patch-aware model beside the plain model (reported)",
        depends=ctx.parse_steps(),
    )


def _train(
    ctx: PlanContext, variant: str, flags: tuple[str, ...], *, depends: tuple[str, ...], key_parts: tuple[str, ...]
) -> Step:
    from harness.kpis.tinyml import spec as k

    smoke = ctx.mode == "smoke"
    launcher = ("python3", SCRIPT) if smoke else ("torchrun", "--nproc_per_node=4", SCRIPT)
    full = ("--use-wandb is left out: no experiment tracking service",
            "--weights downloads from download.pytorch.org unless the torch hub cache holds it")  # fmt: skip
    argv = (*launcher, *(SMOKE_ARGS if smoke else SEED_ARGS), "--data-path", "/data", "--output-dir", "/work/out",
            *flags)  # fmt: skip
    return ctx.step(
        id=f"train:{variant}",
        kind="train",
        where="image",
        image="cuda-train",
        variant=variant,
        depends=(*depends, *(("data:synthetic",) if smoke else ())),
        argv=argv,
        description=(
            f"{variant}: 1 epoch on CPU on the synthetic data (smoke)"
            if smoke
            else f"{variant}: 20 epochs on 4 GPUs on ImageNet, as patch_aware_trainer.sh"
        ),
        notes=(
            "patch_aware_trainer.sh calls motiv_train.py, which never existed: patch_aware_train.py is run directly",
            "torchvision's reference presets/utils/sampler/transforms (≥ 0.16 API) are the harness's own "
            "stand-ins (harness/shims/patch_aware)",
            *(f"patch {p.file}: {p.why}" for p in k.PATCHES),
            "plain = --num-per-patch-stage 0: no layer is replaced (torchvision's EfficientNet-B0 as is)"
            if variant == "plain"
            else "patch = the first 5 spatial layers (and their squeeze-excitation) zero-pad each of 4×4 patches",
            *(() if smoke else full),
        ),
        key_parts=(*key_parts, [(p.file, p.old, p.new) for p in k.PATCHES]),
        outputs=("out/checkpoint.pth", "out/model_0.pth"),
    )


def _measure_memory(ctx: PlanContext, variant: str, flags: tuple[str, ...], train: Step) -> list[str]:
    """The peak-memory analysis here (host) and, in measure mode, the MCU figure (BLOCKED)."""
    from harness.kpis.tinyml import spec as k

    how = (
        "layer by layer"
        if variant == "plain"
        else "its patch-wise first stage run tile by tile, the rest layer by layer (checked against the whole network)"
    )
    argv = ("python3", "/work/tools/patch_memory.py", "--src", "/work/src", "--checkpoint", k.CHECKPOINT,
            "--model", k.MODEL, *flags, "--input-size", str(k.INPUT_SIZE),
            "--out", f"/work/{k.MEMORY_JSON}")  # fmt: skip
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
        argv=argv,
        description=f"peak activation memory of one inference of the trained model, {how} "
        "(harness/patch_memory.py: fp32 tensors crossing module boundaries, BatchNorm folded)",
        notes=(
            "an analysis of the real model in PyTorch, not an MCU's SRAM: "
            "that needs TinyEngine on an int8 TFLite export",
        ),
        key_parts=(_digest(k.MEMORY_TOOL),),
        outputs=(k.MEMORY_JSON,),
    )
    sram_what = "peak SRAM of the model's int8 TFLite export through the TinyEngine memory scheduler"
    if ctx.mode == "smoke":
        ctx.skip_in_this_mode(
            f"measure:peak-sram:{variant}",
            sram_what,
            "no int8 TFLite export of the trained model exists, and the MCU figure is a "
            "simulator-fidelity measurement that a smoke run cannot make",
        )
        return [memory.id]
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
        description=f"{sram_what} (tinyml/code_generator): BLOCKED, no TFLite export of the patch-wise model exists",
    )
    return [memory.id, sram.id]
