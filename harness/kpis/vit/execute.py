"""KPI 8 execution: PackViT training, and the throughput of the token-packed ViT vs the plain ViT.

Training: Auto-Compression's PackViT/main_l2_vit_3keep_senet.py in the cuda-train image, as its
README runs it (DeiT-S, --distill, --base_rate 0.7). It loads DeiT-S ImageNet weights that a
smoke run cannot download: the harness writes random weights of the same shape instead (upstream's
own VisionTransformerTeacher, saved as {'model': state_dict}). On a CPU it needs
--no-repeated-aug (RASampler yields no batch below 256 images), --mixup 0 --cutmix 0 (timm's Mixup
works on CUDA only) and two patches: a guarded torch.cuda.synchronize() and .to(x.device) for a
.cuda() in the evaluation forward.

Throughput: PackViT has none (its only timing is the MetricLogger's s/it, data loading included)
and no export. harness/vit_throughput_bench.py times, in the image, the plain ViT and the
token-packed ViTs built from the training checkpoint (batch 1, warm-up, timed forwards): rows
with fidelity `host`. The seed benchmarks a TFLite model on the device; the token selection is
data-dependent (Gumbel decisions, index gathers, a numpy call inside forward) and the harness has
no TFLite writer for it, so convert:tflite and the on-device measurements end BLOCKED and say so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Final

from harness.core.runner import Executor, Run
from harness.core.steps import Step
from harness.errors import BadInput, Blocked, StepFailed
from harness.kpis.common.datasets import IMAGENET_ENV, synthetic_imagefolder
from harness.kpis.common.executors import dep_output, journal_measurements, measured_fields
from harness.kpis.common.training import prepare_tree, run_training, train_identity, train_image, train_row
from harness.kpis.vit.spec import (
    ARCH,
    BENCH_TOOL,
    DEIT_ENV,
    DEIT_URL,
    DEIT_WEIGHTS,
    KPI,
    OUTPUT_DIR,
    PATCHES,
    RANDOM_WEIGHTS,
    RUN_DIR,
    TRAIN_DIR,
    WORKLOAD,
)
from harness.parsers.packvit import PackVitLog, parse_log_txt, parse_packvit_file
from harness.results.journal import append_row_journal
from harness.results.rows import Row

TFLITE_BLOCKED: Final = (
    "no TFLite model of PackViT: upstream has no export, and its token packing is data-dependent "
    "(Gumbel keep decisions, batch_index_select gathers, a numpy np.where inside forward) while the harness "
    "has no TFLite writer for attention models"
)
TFLITE_FIX: Final = (
    "export the trained model by hand (e.g. a fixed keep count per block, traced with the gather made "
    "static) and run benchmark_model on the device; the host rows (fidelity host) show the PyTorch throughput"
)


def _source(step: Step, run: Run) -> tuple[Path, str]:
    out = dep_output(step, run, "source:auto_compression")
    return Path(out["path"]) / TRAIN_DIR, str(out.get("commit", ""))


def _work(run: Run) -> Path:
    return run.work_dir("packvit")


def _host(work: Path, container_path: str) -> Path:
    """The host path of a /work/... path in the container."""
    return work / Path(container_path).relative_to("/work")


def _prepare(step: Step, run: Run) -> tuple[Path, str]:
    """A fresh patched PackViT tree in the work directory, with the bench tool beside it."""
    src, commit = _source(step, run)
    work = _work(run)
    prepare_tree(src, work, patches=PATCHES)
    tools = work / "tools"
    tools.mkdir(exist_ok=True)
    shutil.copy2(BENCH_TOOL, tools / BENCH_TOOL.name)
    return work, commit


def _crash(log: Path) -> str:
    try:
        return parse_packvit_file(log).error
    except BadInput:
        return ""


# --------------------------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------------------------


def exec_fetch(step: Step, run: Run) -> dict[str, Any]:
    """data:synthetic (the smoke ImageFolder) and weights:deit_small (random in smoke, a local file to measure)."""
    if step.id == "data:synthetic":
        return synthetic_imagefolder(run.work_dir("synth"))
    if step.id != f"weights:{ARCH}":
        raise Blocked(f"step {step.id}: this version knows no fetch of that name", "see `ant-kpi plan vit_throughput`")
    if run.mode == "smoke":
        work, commit = _prepare(step, run)
        dest = _host(work, RANDOM_WEIGHTS)
        dest.parent.mkdir(parents=True, exist_ok=True)
        rc, log = run_training(run, step, step.argv, work=work, data=None)
        if rc != 0 or not dest.is_file():
            why = _crash(log)
            raise StepFailed(f"random {ARCH} weights: exit {rc}" + (f": {why}" if why else ""), log=run.rel(log))
        made = _last_json(log)
        return {
            "path": str(dest),
            "origin": "random initialisation by the harness (not ImageNet weights)",
            "sha256": made.get("sha256", ""),
            "source_commit": commit,
            "log": str(log),
        }
    given = run.env.deit_small
    if not given:
        raise Blocked(
            f"PackViT trains from DeiT-S ImageNet weights ({Path(DEIT_WEIGHTS).name}), not given",
            f"download {DEIT_URL} (PackViT's download_pretrain.sh) and set {DEIT_ENV}=/path/to/it",
        )
    src = Path(str(given)).expanduser()
    if not src.is_file():
        raise BadInput(f"{DEIT_ENV}={given}: no such file")
    work, commit = _prepare(step, run)
    dest = _host(work, DEIT_WEIGHTS)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)
    return {"path": str(dest), "origin": f"local file {src}", "source_commit": commit}


def _last_json(log: Path) -> dict[str, Any]:
    for line in reversed(log.read_text(encoding="utf-8", errors="replace").splitlines()):
        if line.startswith("{"):
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            return doc if isinstance(doc, dict) else {}
    return {}


def exec_train(step: Step, run: Run) -> dict[str, Any]:
    """main_l2_vit_3keep_senet.py in the image; its console log, log.txt and checkpoints are kept."""
    work, commit = _prepare(step, run)
    weights = run.outputs.get(f"weights:{ARCH}")
    if not weights:
        raise Blocked(f"no {ARCH} weights in this run", f"let weights:{ARCH} complete")
    if "data:synthetic" in run.outputs:
        data = Path(run.outputs["data:synthetic"]["path"])
    else:
        given = run.env.imagenet
        if not given:
            raise Blocked(
                "PackViT training in measure mode needs ImageNet (train/ and val/ ImageFolder)",
                f"set {IMAGENET_ENV}=/path/to/imagenet",
            )
        data = Path(str(given))
    out = _host(work, OUTPUT_DIR)
    if out.exists():
        shutil.rmtree(out)
    _host(work, RUN_DIR).mkdir(parents=True, exist_ok=True)
    rc, log = run_training(run, step, step.argv, work=work, data=data, cwd=RUN_DIR)
    if rc != 0:
        why = _crash(log)
        raise StepFailed(f"PackViT training exited {rc}" + (f": {why}" if why else ""), log=run.rel(log))
    best = out / "checkpoint_best.pth"
    ckpt = best if best.is_file() else out / "checkpoint.pth"
    if not ckpt.is_file():
        raise StepFailed("PackViT training wrote no checkpoint_best.pth or checkpoint.pth", log=run.rel(log))
    return {
        "log": str(log),
        "log_txt": str(out / "log.txt"),
        "checkpoint": str(ckpt),
        "work": str(work),
        "source_commit": commit,
        "argv": list(step.argv),
        "weights": weights.get("origin", ""),
        "image": train_image(run).get("tag", ""),
    }


def exec_convert(step: Step, run: Run) -> dict[str, Any]:
    """convert:tflite: always BLOCKED, with the reason."""
    raise Blocked(TFLITE_BLOCKED, TFLITE_FIX)


def exec_measure(step: Step, run: Run) -> dict[str, Any]:
    """One timed model on x86_64 in the image; other targets measure a TFLite model that does not exist."""
    if step.where != "image":
        raise Blocked(f"{step.id}: {TFLITE_BLOCKED}", TFLITE_FIX)
    train = run.outputs.get("train:packvit")
    if not train:
        raise Blocked(f"{step.id}: no PackViT checkpoint in this run", "let train:packvit complete")
    work = Path(train["work"])
    ckpt = Path(train["checkpoint"])
    # The plan names checkpoint_best.pth; a run that kept only checkpoint.pth is timed on that.
    argv = [str(a) for a in step.argv]
    if "--checkpoint" in argv:
        argv[argv.index("--checkpoint") + 1] = f"/work/{ckpt.relative_to(work)}"
    out = _host(work, argv[argv.index("--out") + 1])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    rc, log = run_training(run, step, argv, work=work, data=None)
    if rc != 0 or not out.is_file():
        why = _crash(log)
        raise StepFailed(
            f"vit_throughput_bench.py ({step.variant}) exited {rc}" + (f": {why}" if why else ""), log=run.rel(log)
        )
    ident = train_identity(run)
    return {
        "json": str(out),
        "log": str(log),
        "argv": argv,
        "identity": ident,
        "source_commit": train.get("source_commit", ""),
    }


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def throughput_row(run: Run, step: Step, outputs: dict[str, Any]) -> Row:
    """The throughput row (images/s) of one bench run."""
    common: dict[str, Any] = dict(
        metric="throughput",
        workload=step.workload or WORKLOAD,
        target=step.target,
        unit="images/s",
        **measured_fields(run, step, outputs),
    )
    try:
        doc = json.loads(Path(outputs["json"]).read_text(encoding="utf-8"))
        ips = float(doc["images_per_s"])
        toks = [round(t) for t in doc.get("tokens_per_block", []) if t is not None]
        note = (
            f"{doc['class']}: batch {doc['batch']}, {doc['warmup']} warm-up + {doc['iters']} timed forwards, "
            f"median {doc['median_iteration_s'] * 1e3:.1f} ms, {doc['threads']} thread(s), {doc['device']}, "
            f"PyTorch {doc['torch']} eager (not TFLite); tokens per block {toks}"
        )
        sha = str(doc.get("checkpoint_sha256", ""))
    except (OSError, ValueError, KeyError, TypeError) as e:
        return train_row(run, KPI, value=float("nan"), status="failed", note=f"unreadable bench output: {e}", **common)
    if not ips > 0:
        return train_row(
            run,
            KPI,
            value=float("nan"),
            status="failed",
            artefact_sha256=sha,
            note=f"non-positive throughput {ips}",
            **common,
        )
    return train_row(run, KPI, value=ips, status="ok", artefact_sha256=sha, note=note, **common)


def top1_row(run: Run, train: dict[str, Any]) -> Row:
    """The packed model's accuracy: the run's `Max accuracy` (log.txt when the console log lacks it)."""
    log = Path(train["log"])
    smoke = run.mode == "smoke"
    common: dict[str, Any] = dict(
        metric="top1",
        variant="packvit",
        workload="synthetic" if smoke else "imagenet",
        fidelity="host",
        unit="%",
        log=run.rel(log),
        argv=[str(a) for a in train.get("argv", ())],
        source_commit=str(train.get("source_commit", "")),
    )
    try:
        parsed: PackVitLog = parse_packvit_file(log)
    except BadInput as e:
        return train_row(run, KPI, value=float("nan"), status="failed", note=e.one_line(), **common)
    top1 = parsed.top1
    which = "'Max accuracy' of the console log"
    if top1 is None and Path(train.get("log_txt", "")).is_file():
        stats = parse_log_txt(Path(train["log_txt"]).read_text(encoding="utf-8"), source=train["log_txt"])
        top1, which = max(s.test_acc1 for s in stats), "best test_acc1 of log.txt"
    if parsed.error or top1 is None:
        return train_row(
            run, KPI, value=float("nan"), status="failed", note=parsed.error or "no accuracy line", **common
        )
    spars = parsed.evaluations[-1].sparsity if parsed.evaluations else ()
    data = (
        (
            "2 classes x 8 random images, 1 epoch from random DeiT-S weights (smoke: proves the run, says "
            "nothing of accuracy)"
        )
        if smoke
        else "ImageNet val"
    )
    note = (
        f"{which}; tokens dropped at blocks 3/6/9 during evaluation: "
        f"{', '.join(f'{s:.2f}' for s in spars) or 'not printed'}; {data}"
    )
    return train_row(run, KPI, value=top1, status="ok", note=note, **common)


def exec_parse(step: Step, run: Run) -> dict[str, Any]:
    """parse:train → the top1 row; parse:throughput → a throughput row per completed bench run."""
    if step.id == "parse:train":
        train = run.outputs.get("train:packvit")
        if not train or not train.get("log"):
            raise Blocked("no PackViT training log in this run", "let train:packvit complete")
        append_row_journal(run.run_dir, top1_row(run, train))
        return {"rows": 1}
    return {
        "rows": journal_measurements(
            run, step.params.get("measures", ()), lambda r, s, o: [throughput_row(r, s, o)], "json"
        )
    }


EXECUTORS: dict[str, Executor] = {
    "fetch": exec_fetch,
    "train": exec_train,
    "convert": exec_convert,
    "measure": exec_measure,
    "parse": exec_parse,
}
