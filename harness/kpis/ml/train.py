"""KPI 3's training (Auto-Compression's ADMM_baseline) and the harness's conversion of its output
to TFLite, in the cuda-train image."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Final

from harness import payload
from harness.core.runner import Run
from harness.core.steps import Step
from harness.errors import BadInput, Blocked, StepFailed
from harness.kpis.common.datasets import IMAGENET_ENV
from harness.kpis.common.training import (
    ENGINE_DATA_ENV,
    WORK_MOUNT,
    Patch,
    prepare_tree,
    run_training,
    train_image,
    train_image_tag,
)
from harness.kpis.ml.models import ARTEFACT, TRAIN_IMAGE
from harness.parsers.admm import parse_admm_file

DENSE_STEP: Final = "validate:dense"

# --------------------------------------------------------------------------------------------
# Training (ADMM_baseline) and conversion: in the cuda-train image
# --------------------------------------------------------------------------------------------

AUTO_AUGMENT_STUB: Final = '''"""Stand-in for auto_augment: ADMM_baseline imports it but never ships or uses it."""


class AutoAugment:
    def __call__(self, img):
        return img


class Cutout:
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, img):
        return img
'''
GLUONCV_STUB: Final = '''"""Stand-in for gluoncv, which will not import under torch >= 2; only --pretrained needs it."""


def __getattr__(name):
    raise ImportError("gluoncv is stubbed by the ANT KPI harness: --pretrained needs a pre-converted checkpoint")
'''
ADMM_DIR: Final = "pruning/UVP/ADMM_baseline"
ADMM_PATCHES: Final = (
    Patch(
        file="main.py",
        old="    args = parser.parse_args()\n",
        new="    args = parser.parse_args()\n"
        "    best_acc1 = 0  # ANT KPI harness: assigned before the first checkpoint\n",
        why="main() assigns best_acc1 only after the ADMM epochs but saves it at the first ADMM checkpoint "
        "(UnboundLocalError: best_acc1): it is initialised right after argument parsing",
    ),
)
ADMM_STUBS: Final = {"auto_augment.py": AUTO_AUGMENT_STUB, "gluoncv.py": GLUONCV_STUB}


def _require_train_image(run: Run, what: str) -> None:
    img = run.manifest.images[TRAIN_IMAGE]
    if not (run.project_root / img.context).is_dir():
        raise Blocked(
            f"image {TRAIN_IMAGE} is not in this version ({img.context} is missing), so {what} cannot run",
            f"add the {TRAIN_IMAGE} build context ({img.purpose or 'PyTorch'}); until then run "
            "Auto-Compression by hand on a GPU host",
        )


def prepare_admm_tree(src: Path, work: Path) -> tuple[Path, Path]:
    """Copy ADMM_baseline to work/src with the best_acc1 fix, stubs in work/stubs; (src, stubs)."""
    return prepare_tree(src, work, patches=ADMM_PATCHES, stubs=ADMM_STUBS)


def _admm_run(step: Step, run: Run, what: str, work_name: str) -> tuple[int, Path, Path, dict[str, Any]]:
    """Run the step's `python3 main.py DATA ARGS…` in cuda-train from a fresh patched tree.

    Returns (exit code, log, output directory, provenance: argv, image, source commit and digest)."""
    _require_train_image(run, what)
    src_out = next((o for sid, o in run.outputs.items() if sid.startswith("source:auto_compression")), None)
    if src_out is None:
        raise Blocked(f"{step.id}: the Auto-Compression checkout is missing", "let the source step complete")
    tag = train_image_tag(run)
    data: Path | None
    if "data:synthetic" in run.outputs:
        data = Path(run.outputs["data:synthetic"]["path"])
    else:
        given = run.env.imagenet
        if not given and not run.env.engine_data:
            raise Blocked(
                f"{what} in measure mode needs ImageNet (train/ and val/ ImageFolder)",
                f"set {IMAGENET_ENV}=/path/to/imagenet (or, on a remote engine, "
                f"{ENGINE_DATA_ENV}=<its path on the engine's machine>)",
            )
        data = Path(str(given)) if given else None
    work = run.work_dir(work_name)
    prepare_admm_tree(Path(src_out["path"]) / ADMM_DIR, work)
    out_dir = work / "output"
    # A checkpoint left by an earlier attempt must not be taken for this run's.
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    # The plan's argv is `python3 main.py DATA ARGS…`; the data placeholder becomes the mount.
    argv = ["python3", "/work/src/main.py", "/data", *step.argv[3:]]
    # main.py writes its run folder relative to the working directory: run it from output/.
    rc, log = run_training(run, step, argv, work=work, data=data, cwd="/work/output")
    img = train_image(run)
    prov = {
        "argv": argv,
        "image": tag,
        "image_digest": str(img.get("digest") or img.get("id") or ""),
        "source_commit": str(src_out.get("commit", "")),
    }
    return rc, log, out_dir, prov


def exec_train(step: Step, run: Run) -> dict[str, Any]:
    """ADMM_baseline in the cuda-train image (stubs, best_acc1 fix, run from output/); Blocked without it.

    The step `validate:dense` runs the same command with --evaluate (see exec_validate_dense)."""
    if step.id == DENSE_STEP:
        return exec_validate_dense(step, run)
    rc, log, out_dir, prov = _admm_run(step, run, "ADMM training", "admm")
    parsed = parse_admm_file(log) if log.is_file() else None
    if rc != 0:
        why = f": {parsed.error}" if parsed is not None and parsed.error else ""
        raise StepFailed(f"ADMM training exited {rc}{why}", log=run.rel(log))
    best = sorted(out_dir.glob("*/model_best.pth.tar"))
    if not best:
        raise StepFailed("ADMM training wrote no */model_best.pth.tar", log=run.rel(log))
    return {"log": str(log), "checkpoint": str(best[-1]), **prov}


def exec_validate_dense(step: Step, run: Run) -> dict[str, Any]:
    """The dense Top-1: main.py --evaluate, i.e. ADMM_baseline's validate() on the model its pruning
    starts from (smoke: the seed-42 initialisation; measure: the --pretrained checkpoint), same data.

    With ANT_KPI_DENSE_TOP1 set nothing runs: the given figure is used and marked as an override."""
    if run.env.dense_top1:
        return {"override": run.env.dense_top1}
    rc, log, _, prov = _admm_run(step, run, "the dense validation", "admm-dense")
    try:
        parsed = parse_admm_file(log)
    except BadInput:
        parsed = None
    if rc != 0 or parsed is None or not parsed.accuracies:
        why = f": {parsed.error}" if parsed is not None and parsed.error else ""
        raise StepFailed(f"the dense validation (main.py --evaluate) exited {rc}{why}", log=run.rel(log))
    return {"log": str(log), "top1": parsed.accuracies[-1].top1, **prov}


_INPUT_SIZES: Final = {"imagenet": 224, "cifar10": 32, "cifar100": 32}
_EXPORT_SCRIPT: Final = "admm_export.py"
_EXPORT_MOUNT: Final = WORK_MOUNT
_UPSTREAM_MODEL: Final = "pruning/UVP/ADMM_baseline/models/mobilenet_v1.py"


def _flag(argv: list[str], *names: str, default: str = "") -> str:
    """The value of the last `--name V` / `--name=V` in argv (argparse's last-wins rule)."""
    value = default
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                value = argv[i + 1]
            elif a.startswith(f"{n}="):
                value = a.split("=", 1)[1]
    return value


def export_argv(train_argv: list[str], checkpoint: str, out: str, *, model_dir: str = "") -> list[str]:
    """admm_export.py's command for a checkpoint of the training run whose argv is `train_argv`."""
    if not train_argv:
        raise Blocked(
            "train:admm recorded no command line, so the architecture, width and input size are unknown",
            "run train:admm again in this version",
        )
    arch = _flag(train_argv, "-a", "--arch", default="resnet18")  # main.py's own default
    if arch != "mobilenet_v1":
        raise Blocked(
            f"the harness converts ADMM_baseline's mobilenet_v1 only; this run trained {arch}",
            "train with -a mobilenet_v1, or convert the checkpoint by hand",
        )
    dataset = _flag(train_argv, "--dataset", default="imagenet")
    if dataset not in _INPUT_SIZES:
        raise BadInput(f"train:admm --dataset {dataset}: not one of {', '.join(_INPUT_SIZES)}")
    argv = [
        "python3",
        f"{_EXPORT_MOUNT}/{_EXPORT_SCRIPT}",
        checkpoint,
        out,
        "--arch",
        arch,
        "--width-mult",
        _flag(train_argv, "--width-mult", default="1.0"),
        "--input-size",
        str(_INPUT_SIZES[dataset]),
        "--seed",
        "0",
    ]
    return [*argv, "--model-dir", model_dir] if model_dir else argv


def exec_convert(step: Step, run: Run) -> dict[str, Any]:
    """PyTorch → TFLite of train:admm's checkpoint: export in cuda-train, write and verify on the host, store."""
    _require_train_image(run, "the PyTorch → TFLite conversion")
    from harness.core.artefacts import ArtefactStore
    from harness.kpis.ml import convert as admm_convert

    train = run.outputs.get("train:admm")
    if not train or not train.get("checkpoint"):
        raise Blocked(f"{step.id}: no ADMM checkpoint in this run", "let train:admm complete")
    tag = train_image_tag(run)
    ckpt = Path(train["checkpoint"])
    if not ckpt.is_file():
        raise StepFailed(f"{step.id}: the checkpoint {ckpt} named by train:admm is gone")
    # One directory holds everything the export reads and writes: run_training mounts it at /work
    # (or copies it in and back for a remote engine).
    work = run.work_dir("convert")
    shutil.copy2(payload.path(_EXPORT_SCRIPT), work / _EXPORT_SCRIPT)
    # A copy, not a link: a remote engine's /work is copied back over this directory.
    (work / "checkpoint").mkdir(exist_ok=True)
    shutil.copy2(ckpt, work / "checkpoint" / ckpt.name)
    npz = work / "export.npz"
    npz.unlink(missing_ok=True)
    # Upstream's own models/mobilenet_v1.py, from the checkout, is PyTorch's reference when present.
    src_out = next((o for sid, o in run.outputs.items() if sid.startswith("source:auto_compression")), None)
    upstream = Path(src_out["path"]) / _UPSTREAM_MODEL if src_out else None
    model_dir = ""
    if upstream is not None and upstream.is_file():
        (work / "upstream" / "models").mkdir(parents=True, exist_ok=True)
        shutil.copy2(upstream, work / "upstream" / "models" / upstream.name)
        model_dir = f"{_EXPORT_MOUNT}/upstream"
    argv = export_argv(
        [str(a) for a in train.get("argv", ())],
        f"{_EXPORT_MOUNT}/checkpoint/{ckpt.name}",
        f"{_EXPORT_MOUNT}/{npz.name}",
        model_dir=model_dir,
    )
    rc, log = run_training(
        run, step, argv, work=work, data=None, env={"PYTHONDONTWRITEBYTECODE": "1"}, cwd=_EXPORT_MOUNT
    )
    if rc != 0 or not npz.is_file():
        raise StepFailed(f"admm_export.py exited {rc} in {tag}", log=run.rel(log))
    name = f"{ARTEFACT}.tflite"
    try:
        ver = admm_convert.verify(admm_convert.convert(npz, work / name), npz)
    except StepFailed as e:
        raise StepFailed(e.what, log=run.rel(log)) from None
    meta = admm_convert.load_export(npz).meta
    prov = {
        "converter": "harness.kpis.ml.convert (BatchNorm folded, the harness's TFLite writer, LiteRT-verified)",
        "checkpoint": str(ckpt),
        "checkpoint_sha256": meta["checkpoint"]["sha256"],
        "best_acc1": meta["checkpoint"]["best_acc1"],
        "export_argv": argv,
        "image": tag,
        "image_id": run.outputs.get(f"image:{TRAIN_IMAGE}", {}).get("id", ""),
        "reference": meta["reference"],
        "torch": meta["torch"],
        "width_mult": meta["width_mult"],
        "input_size": meta["input_size"],
        "masks_applied": meta["masks_applied"],
        "nonzero_under_mask": meta["nonzero_under_mask"],
        "verification": {k: v for k, v in ver.to_dict().items() if k != "path"},
        "log": run.rel(log),
    }
    art = ArtefactStore(run.cache_dir / "artefacts").put(work / name, name=name, kind="tflite", provenance=prov)
    return {
        "path": str(art.path),
        "sha256": art.sha256,
        "size": art.size,
        "max_abs_diff": ver.max_abs_diff,
        "tolerance": ver.tolerance,
        "pruned_fraction": ver.pruned_fraction,
        "ops": ver.ops,
        "log": str(log),
        # The model is this run's training output: its source is the training's pinned commit.
        "source_commit": str(train.get("source_commit", "")),
        "provenance": prov,
    }
