"""KPI 3: ADMM/UVP compression, TFLite conversion, benchmark_model latency, accuracy loss."""

from __future__ import annotations

from typing import TYPE_CHECKING

DENSE_TOP1_ENV = "ANT_KPI_DENSE_TOP1"

if TYPE_CHECKING:
    from harness.core.plan import PlanContext
    from harness.core.steps import Step

# This run's own training output, converted by the harness; measured beside ANT's shipped model.
ARTEFACT = "mbv1_0.9_v4u.harness"
# The dense model the pruning starts from, validated by the same code on the same data.
DENSE = "mbv1_1.0_dense"
# benchmark_model's --num_threads follows the target's cores; the measure step puts the number in.
THREADS_ARG = "--num_threads=<target cores>"
BENCH_FLAGS = ("--warmup_runs=1", "--num_runs=50")

SEED_ARGS = (
    "-a",
    "mobilenet_v1",
    "-j",
    "16",
    "--pretrained",
    "--admm-epochs",
    "100",
    "--ft-epochs",
    "100",
    "-b",
    "512",
    "--lr",
    "0.01",
    "--dataset",
    "imagenet",
    "--width-mult",
    "1.0",
    "--sparsity-method",
    "uniform",
    "--target-sparsity",
    "0.9",
    "--lr-scheduler",
    "cosine",
    "--rho",
    "0.001",
    "--vector-size",
    "4",
    "--unaligned",
    "--cp",
    "--repeat",
)
SMOKE_ARGS = (
    "-a",
    "mobilenet_v1",
    "-j",
    "1",
    "--admm-epochs",
    "1",
    "--ft-epochs",
    "1",
    "-b",
    "4",
    "--width-mult",
    "1.0",
    "--sparsity-method",
    "uniform",
    "--target-sparsity",
    "0.9",
    "--vector-size",
    "4",
    "--unaligned",
    "--cp",
    "--repeat",
)


def plan(ctx: PlanContext) -> None:
    train = _train(ctx)
    dense = _validate_dense(ctx, depends=train.depends)
    ctx.parse(
        "parse:accuracy",
        f"the last 'Best accuracy: X.XXX' of the training → top1 of {ARTEFACT}; ' * Acc@1 …' of the dense "
        f"validation → top1 of {DENSE}; accuracy_loss = dense − pruned",
        depends=(train.id,),
        after=(dense.id,),
    )
    ctx.step(
        id="convert:tflite",
        kind="convert",
        where="image",
        image="cuda-train",
        depends=(train.id,),
        description="PyTorch → TFLite by the harness (convert.py named by the seed does not "
        "exist upstream): strip 'module.' and mask buffers, export, convert",
        outputs=("mbv1_0.9_v4u.harness.tflite",),
    )
    base = ctx.manifest.workloads["mobilenet_v2_1.0_224"]
    fetch = ctx.step(
        id="fetch:baseline",
        kind="fetch",
        where="host",
        description=f"download {base.url} (or a local path), pin its sha256, extract {base.member}",
        inputs=(base.url,),
        outputs=(base.member,),
    )
    shipped = ctx.source("ant", paths=("test/mlbench",))
    for target in ctx.targets:
        _measure_target(ctx, target, after=(fetch.id, shipped.id, "convert:tflite"))
    ctx.evaluate(
        "PASS: accuracy loss ≤ 3 %p and board timings of both the baseline and the compressed model; "
        "speed-up = baseline avg / compressed avg with 95 % CI, shown beside"
    )


def _train(ctx: PlanContext) -> Step:
    src = ctx.source("auto_compression", paths=("pruning/UVP/ADMM_baseline",))
    img = ctx.image("cuda-train")
    smoke = ctx.mode == "smoke"
    data = "<synthetic ImageFolder, 2 classes × 8 images>" if smoke else "<ImageNet path given by the user>"
    if smoke:
        ctx.synthetic_data("generate a tiny synthetic ImageFolder (train/val, 2 classes)")
    return ctx.step(
        id="train:admm",
        kind="train",
        where="image",
        image="cuda-train",
        depends=(src.id, img.id, *(("data:synthetic",) if smoke else ())),
        argv=("python3", "main.py", data, *(SMOKE_ARGS if smoke else SEED_ARGS)),
        description=(
            "ADMM + fine-tune on CPU, 1 + 1 epochs (smoke)"
            if smoke
            else "ADMM 100 + fine-tune 100 epochs on a GPU (DOCKER_HOST may name a GPU server)"
        ),
        fidelity="host",
        notes=(
            "needs stub modules auto_augment and gluoncv (missing/incompatible upstream), "
            "-j ≥ 1 (persistent_workers), and best_acc1 initialised (UnboundLocalError upstream)",
            "--pretrained needs mobilenet_v1_1.0.pth.tar converted from GluonCV once on a GPU host",
        ),
        outputs=("mobilenet_v1_1.0_ts0.9_admm*_ft*_v4_u_cp_repeat/model_best.pth.tar", "train.log"),
    )


def _validate_dense(ctx: PlanContext, *, depends: tuple[str, ...]) -> Step:
    """The dense Top-1: ADMM_baseline's own validate() on the model the pruning starts from."""
    smoke = ctx.mode == "smoke"
    data = "<synthetic ImageFolder, 2 classes × 8 images>" if smoke else "<ImageNet path given by the user>"
    args = SMOKE_ARGS if smoke else SEED_ARGS
    return ctx.step(
        id="validate:dense",
        kind="train",
        where="image",
        image="cuda-train",
        variant=DENSE,
        depends=depends,
        # The training's own command with --evaluate: same code, same data, same batch size, same seed.
        argv=("python3", "main.py", data, *args, "--evaluate"),
        description=(
            "validate the dense model the pruning starts from (smoke: the seed-42 random initialisation, "
            "untrained) with main.py --evaluate on the same val folder"
            if smoke
            else "validate the dense --pretrained checkpoint the pruning starts from with main.py --evaluate on "
            "ImageNet val"
        ),
        fidelity="host",
        notes=(f"{DENSE_TOP1_ENV}=<percent> replaces this measurement (marked as an override in the report)",),
        outputs=("validate_dense.log",),
    )


def _measure_target(ctx: PlanContext, target: str, *, after: tuple[str, ...]) -> None:
    where, fidelity = ctx.run_where(target)
    if ctx.manifest.targets[target].arch == "x86_64":
        tool: tuple[str, ...] = ("python3", "-m", "harness.payload.litert_bench")
        desc = "host reference through the LiteRT Python runtime (ai-edge-litert)"
    else:
        tool = ("benchmark_model_aarch64",)
        desc = "benchmark_model shipped in ANT test/mlbench"
    # The deploy stages whichever models exist (a missing baseline or shipped model blocks only
    # its own rows, not this run's conversion); it looks again on every resume.
    dep = ctx.deploy(
        target,
        ["benchmark_model_aarch64", "mobilenet_v2_1.0_224.tflite", "mbv1_0.9_v4u.tflite", f"{ARTEFACT}.tflite"],
        [],
        after=after,
        always=True,
    )
    # The seed times the shipped compressed model against the baseline; this run's own
    # conversion is timed beside them (it is the only compressed model a mirror has).
    for r, _, model in ctx.matrix(("mobilenet_v2_1.0_224", "mbv1_0.9_v4u", ARTEFACT), interleave=False):
        ctx.step(
            id=f"measure:{model}:{target}:{r}",
            kind="measure",
            where=where,
            target=target,
            variant=model,
            workload=model,
            repeat=r,
            fidelity=fidelity,
            depends=(dep.id,),
            argv=(*tool, f"--graph={model}.tflite", THREADS_ARG, *BENCH_FLAGS),
            description=f"{desc}: average inference time of {model}",
        )
    ctx.parse(
        f"parse:{target}", "benchmark_model output (all known format versions) → inference_avg rows", target=target
    )
