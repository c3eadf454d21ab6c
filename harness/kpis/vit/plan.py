"""KPI 8: throughput (images/s) of a ViT with token packing vs the plain ViT."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.core.digest import sha256_file

if TYPE_CHECKING:
    from harness.core.plan import PlanContext
    from harness.core.steps import Step, Where

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
    tool = sha256_file(k.BENCH_TOOL)[:16]
    if ctx.mode == "smoke":
        ctx.synthetic_data("generate a tiny synthetic ImageFolder (train/val, 2 classes × 8 images)")
    weights = _weights(ctx, depends=(src.id, img.id), tool=tool)
    train = _train(ctx, depends=(src.id, img.id, weights.id))
    ctx.parse(
        "parse:train",
        "'Max accuracy: X%' (and '* Acc@1 … loss …', 'Sparsity…', log.txt) → top1 row of the packed ViT",
        variant="packvit",
        depends=(train.id,),
        always=False,
    )
    conv = "convert:tflite"
    what = "export the plain and the packed ViT to TFLite for the on-device benchmark"
    if ctx.mode == "smoke":
        # No export exists in any mode; a smoke run has no device to benchmark on either, so these
        # steps could only end BLOCKED: the plan lists them as not part of smoke runs instead.
        ctx.skip_in_this_mode(conv, what, "no TFLite export of the token-packed ViT exists in any mode (its token "
                              "selection is data-dependent), so it could only end BLOCKED")  # fmt: skip
    else:
        ctx.step(
            id=conv,
            kind="convert",
            where="image",
            image="cuda-train",
            depends=(train.id,),
            description=f"{what}: BLOCKED, no export exists for the data-dependent token packing",
        )
    measures: list[str] = []
    for target in ctx.targets:
        measures += _measure_target(ctx, target, train=train.id, conv=conv, tool=tool)
    ctx.parse(
        "parse:throughput",
        "the bench JSON of every completed measurement → throughput rows (images/s)",
        # Not `depends`: the measurements that did complete are parsed even when others are blocked.
        params={"measures": measures},
    )
    ctx.evaluate(
        "throughput ratio packed / plain with a 95 % CI; a verdict needs the TFLite model on a board",
        depends=("parse:throughput",),
    )


def _weights(ctx: PlanContext, *, depends: tuple[str, ...], tool: str) -> Step:
    from harness.kpis.vit import spec as k

    smoke = ctx.mode == "smoke"
    init = ("python3", k.TOOL_PATH, "init-checkpoint", "--src", "/work/src", "--arch", k.ARCH,
            "--out", k.RANDOM_WEIGHTS)  # fmt: skip
    return ctx.step(
        id=f"weights:{k.ARCH}",
        kind="fetch",
        where="image" if smoke else "host",
        image="cuda-train" if smoke else "",
        depends=depends,
        argv=init if smoke else (),
        description=(
            "random DeiT-S weights as {'model': state_dict} from upstream's VisionTransformerTeacher "
            "(the ImageNet weights are a download; smoke only)"
            if smoke
            else f"DeiT-S ImageNet weights ({k.DEIT_URL}) from the local path in {k.DEIT_ENV}"
        ),
        key_parts=(tool, [(p.file, p.old, p.new) for p in k.PATCHES]),
        outputs=(k.RANDOM_WEIGHTS if smoke else k.DEIT_WEIGHTS,),
    )


def _train(ctx: PlanContext, *, depends: tuple[str, ...]) -> Step:
    from harness.kpis.vit import spec as k

    smoke = ctx.mode == "smoke"
    launcher = ("python3", SCRIPT) if smoke else ("torchrun", "--nproc_per_node=4", SCRIPT)
    how = (
        "--no-repeated-aug: RASampler yields no batch below 256 images; --mixup 0 --cutmix 0: "
        "timm 0.4.5's Mixup works on CUDA only"
        if smoke
        else "torchrun replaces the README's python -m torch.distributed.launch --use_env"
    )
    argv = (*launcher, "--output_dir", k.OUTPUT_DIR, *(SMOKE_ARGS if smoke else README_ARGS),
            "--model_path", k.RANDOM_WEIGHTS if smoke else k.DEIT_WEIGHTS)  # fmt: skip
    return ctx.step(
        id="train:packvit",
        kind="train",
        where="image",
        image="cuda-train",
        variant="packvit",
        depends=(*depends, *(("data:synthetic",) if smoke else ())),
        argv=argv,
        description=(
            "DeiT-S with token packing, 1 epoch on CPU on the synthetic data (smoke)"
            if smoke
            else "DeiT-S with token packing on ImageNet, 30 epochs on 4 GPUs, per PackViT's README"
        ),
        notes=(
            *(f"patch {p.file}: {p.why}" for p in k.PATCHES),
            how,
            "PackViT has no throughput script and no export: the harness times the models itself",
        ),
        key_parts=([(p.file, p.old, p.new) for p in k.PATCHES],),
        outputs=("out/checkpoint_best.pth", "out/log.txt"),
    )


def _measure_target(ctx: PlanContext, target: str, *, train: str, conv: str, tool: str) -> list[str]:
    """PyTorch timings in the image on the host; on a device, the TFLite model (BLOCKED: none exists)."""
    from harness.kpis.vit import spec as k

    on_host = ctx.manifest.targets[target].arch == "x86_64" and target not in ctx.boards
    if not on_host and ctx.mode == "smoke":
        ctx.skip_in_this_mode(
            f"measure:{{{','.join(MODELS)}}}:{target}",
            f"benchmark the {', '.join(MODELS)} TFLite models on {target} (the seed's on-device step)",
            "it needs convert:tflite's models, and an emulated timing would decide nothing",
        )
        return []
    where: Where
    if on_host:
        where, fidelity = "image", "host"
    else:
        where, fidelity = ctx.run_where(target)
    measures = []
    for r, _, v in ctx.matrix(list(MODELS)):
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
            depends=(train,) if on_host else (conv,),
            argv=_bench_argv(ctx, v, target, r) if on_host else (),
            description=(
                f"time {v} in PyTorch on the CPU (harness/vit_throughput_bench.py: batch 1, "
                "warm-up, timed forwards → images/s)"
                if on_host
                else f"benchmark the {v} TFLite model on {target}, as the seed asks: BLOCKED with "
                "convert:tflite (no TFLite model exists)"
            ),
            key_parts=(tool,) if on_host else (),
        )
        measures.append(s.id)
    return measures


def _bench_argv(ctx: PlanContext, v: str, target: str, r: int) -> tuple[str, ...]:
    from harness.kpis.vit import spec as k

    timing = SMOKE_TIMING if ctx.mode == "smoke" else MEASURE_TIMING
    return ("python3", k.TOOL_PATH, "bench", "--src", "/work/src", "--checkpoint",
            f"{k.OUTPUT_DIR}/checkpoint_best.pth", "--model", v, "--arch", k.ARCH, "--batch", "1", *timing,
            "--device", "cpu", "--seed", str(r), "--out", f"/work/{k.BENCH_DIR}/{v}-{target}-{r}.json")  # fmt: skip
