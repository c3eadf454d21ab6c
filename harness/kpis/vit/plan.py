"""KPI 8: throughput (images/s) of a ViT with token packing vs the plain ViT."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from harness.core.plan import interleaved

if TYPE_CHECKING:
    from harness.core.plan import PlanContext
    from harness.core.steps import Where

SCRIPT = "/work/src/main_l2_vit_3keep_senet.py"
# PackViT's README (DeiT-S); --dist-eval needs the process group torchrun sets up.
README_ARGS = (
    "--arch",
    "deit_small",
    "--input-size",
    "224",
    "--batch-size",
    "256",
    "--data-path",
    "/data",
    "--epochs",
    "30",
    "--dist-eval",
    "--distill",
    "--base_rate",
    "0.7",
)
SMOKE_ARGS = (
    "--arch",
    "deit_small",
    "--input-size",
    "224",
    "--batch-size",
    "4",
    "--data-path",
    "/data",
    "--epochs",
    "1",
    "--distill",
    "--base_rate",
    "0.7",
    "--device",
    "cpu",
    "--num_workers",
    "0",
    "--no-repeated-aug",
    "--mixup",
    "0",
    "--cutmix",
    "0",
)
# The models timed: the KPI's baseline and candidate, and (reported) the model infer.py evaluates.
MODELS = ("vit", "packvit", "packvit_masked")
SMOKE_TIMING = ("--warmup", "3", "--iters", "10")
MEASURE_TIMING = ("--warmup", "10", "--iters", "100")


def plan(ctx: PlanContext) -> None:
    from harness.kpis.vit import spec as k

    src = ctx.source("auto_compression", paths=("PackViT",))
    img = ctx.image("cuda-train")
    smoke = ctx.mode == "smoke"
    tool = hashlib.sha256(k.BENCH_TOOL.read_bytes()).hexdigest()[:16]
    patches = [(p.file, p.old, p.new) for p in k.PATCHES]
    if smoke:
        ctx.step(
            id="data:synthetic",
            kind="fetch",
            where="host",
            description="generate a tiny synthetic ImageFolder (train/val, 2 classes × 8 images)",
            outputs=("synth/train", "synth/val"),
        )
    weights = ctx.step(
        id=f"weights:{k.ARCH}",
        kind="fetch",
        where="image" if smoke else "host",
        image="cuda-train" if smoke else "",
        depends=(src.id, img.id),
        argv=(
            (
                "python3",
                k.TOOL_PATH,
                "init-checkpoint",
                "--src",
                "/work/src",
                "--arch",
                k.ARCH,
                "--out",
                k.RANDOM_WEIGHTS,
            )
            if smoke
            else ()
        ),
        description=(
            "random DeiT-S weights as {'model': state_dict} from upstream's VisionTransformerTeacher "
            "(the ImageNet weights are a download; smoke only)"
            if smoke
            else f"DeiT-S ImageNet weights ({k.DEIT_URL}) from the local path in {k.DEIT_ENV}"
        ),
        key_parts=(tool, patches),
        outputs=(k.RANDOM_WEIGHTS if smoke else k.DEIT_WEIGHTS,),
    )
    launcher = ("python3", SCRIPT) if smoke else ("torchrun", "--nproc_per_node=4", SCRIPT)
    train = ctx.step(
        id="train:packvit",
        kind="train",
        where="image",
        image="cuda-train",
        variant="packvit",
        depends=(src.id, img.id, weights.id, *(("data:synthetic",) if smoke else ())),
        argv=(
            *launcher,
            "--output_dir",
            k.OUTPUT_DIR,
            *(SMOKE_ARGS if smoke else README_ARGS),
            "--model_path",
            k.RANDOM_WEIGHTS if smoke else k.DEIT_WEIGHTS,
        ),
        description=(
            "DeiT-S with token packing, 1 epoch on CPU on the synthetic data (smoke)"
            if smoke
            else "DeiT-S with token packing on ImageNet, 30 epochs on 4 GPUs, per PackViT's README"
        ),
        notes=(
            *(f"patch {p.file}: {p.why}" for p in k.PATCHES),
            *(
                (
                    "--no-repeated-aug: RASampler yields no batch below 256 images; --mixup 0 --cutmix 0: "
                    "timm 0.4.5's Mixup works on CUDA only",
                )
                if smoke
                else ("torchrun replaces the README's python -m torch.distributed.launch --use_env",)
            ),
            "PackViT has no throughput script and no export: the harness times the models itself",
        ),
        key_parts=(patches,),
        outputs=("out/checkpoint_best.pth", "out/log.txt"),
    )
    ctx.step(
        id="parse:train",
        kind="parse",
        where="host",
        variant="packvit",
        depends=(train.id,),
        description="'Max accuracy: X%' (and '* Acc@1 … loss …', 'Sparsity…', log.txt) → top1 row of the packed ViT",
    )
    conv = ctx.step(
        id="convert:tflite",
        kind="convert",
        where="image",
        image="cuda-train",
        depends=(train.id,),
        description="export the plain and the packed ViT to TFLite for the on-device benchmark: BLOCKED, "
        "no export exists for the data-dependent token packing",
    )
    measures: list[str] = []
    for target in ctx.targets:
        on_host = ctx.manifest.targets[target].arch == "x86_64" and target not in ctx.boards
        where: Where
        if on_host:
            where, fidelity = "image", "host"
        else:
            where, fidelity = ctx.run_where(target)
        for r in range(ctx.repeats()):
            for v in interleaved(list(MODELS), r):
                if on_host:
                    argv: tuple[str, ...] = (
                        "python3",
                        k.TOOL_PATH,
                        "bench",
                        "--src",
                        "/work/src",
                        "--checkpoint",
                        f"{k.OUTPUT_DIR}/checkpoint_best.pth",
                        "--model",
                        v,
                        "--arch",
                        k.ARCH,
                        "--batch",
                        "1",
                        *(SMOKE_TIMING if smoke else MEASURE_TIMING),
                        "--device",
                        "cpu",
                        "--seed",
                        str(r),
                        "--out",
                        f"/work/{k.BENCH_DIR}/{v}-{target}-{r}.json",
                    )
                    desc = (
                        f"time {v} in PyTorch on the CPU (harness/vit_throughput_bench.py: batch 1, "
                        "warm-up, timed forwards → images/s)"
                    )
                else:
                    argv = ()
                    desc = (
                        f"benchmark the {v} TFLite model on {target}, as the seed asks: BLOCKED with "
                        "convert:tflite (no TFLite model exists)"
                    )
                s = ctx.step(
                    id=f"measure:{v}:{target}:{r}",
                    kind="measure",
                    where=where,
                    image="cuda-train" if on_host else "",
                    target=target,
                    variant=v,
                    workload=k.WORKLOAD,
                    repeat=r,
                    fidelity=fidelity,
                    depends=(train.id,) if on_host else (conv.id,),
                    argv=argv,
                    description=desc,
                    key_parts=(tool,) if on_host else (),
                )
                measures.append(s.id)
    ctx.step(
        id="parse:throughput",
        kind="parse",
        where="host",
        # Not `depends`: the measurements that did complete are parsed even when others are blocked.
        params={"measures": measures},
        always=True,
        description="the bench JSON of every completed measurement → throughput rows (images/s)",
    )
    ctx.step(
        id="evaluate",
        kind="evaluate",
        where="host",
        depends=("parse:throughput",),
        always=True,
        description="throughput ratio packed / plain with a 95 % CI; a verdict needs the TFLite model on a board",
    )
