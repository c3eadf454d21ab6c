"""KPI 5 execution: patch-aware training (accuracy) and peak memory, plain model vs patch-aware model.

Training: Auto-Compression's tinyml/patch-aware-training/patch_aware_train.py in the cuda-train
image (the seed's patch_aware_trainer.sh calls a motiv_train.py that never existed). The script
needs torchvision's reference helpers, which the harness supplies as its own small stand-ins
(harness/shims/patch_aware), and one patch: the hard-coded CUDA_VISIBLE_DEVICES line goes.
`plain` is the same script with --num-per-patch-stage 0 (no layer replaced: torchvision's
EfficientNet-B0 as is); `patch` replaces the first five spatial layers with patch-wise ones.

Peak memory: the script prints none. harness/patch_memory.py runs in the image on each trained
checkpoint and follows one inference through the real model: the plain model layer by layer, the
patch-aware model with its patch-wise first stage executed tile by tile (checked to give the same
output). Rows have fidelity `host`: fp32 PyTorch tensors, not an MCU's SRAM. The MCU figure needs
an int8 TFLite export through the TinyEngine memory scheduler (tinyml/code_generator); the harness
has no such export, so that step ends BLOCKED and says so.
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
from harness.kpis.tinyml.spec import (
    CHECKPOINT,
    KPI,
    MEMORY_JSON,
    MEMORY_TOOL,
    MEMORY_WORKLOAD,
    PATCHES,
    SHIM_MODULES,
    SHIMS_DIR,
    TRAIN_DIR,
)
from harness.parsers.patch_aware import parse_patch_aware_file
from harness.results.journal import append_row_journal
from harness.results.rows import Row

MCU_BLOCKED: Final = (
    "the MCU peak SRAM comes from the TinyEngine memory scheduler (tinyml/code_generator) on an int8 TFLite "
    "model; patch-aware training writes PyTorch checkpoints and neither Auto-Compression nor this harness "
    "exports the patch-wise EfficientNet-B0 to int8 TFLite"
)
MCU_FIX: Final = (
    "export the trained checkpoint to int8 TFLite (per-patch zero padding included) and run "
    "tinyml/code_generator on it by hand; the host rows (fidelity host) show the PyTorch-side figure"
)


def shim_sources() -> dict[str, str]:
    """The torchvision reference stand-ins, by module file name, as prepare_tree writes them."""
    return {name: (SHIMS_DIR / name).read_text(encoding="utf-8") for name in SHIM_MODULES}


def _source(step: Step, run: Run) -> tuple[Path, str]:
    out = dep_output(step, run, "source:auto_compression")
    return Path(out["path"]) / TRAIN_DIR, str(out.get("commit", ""))


def _work(run: Run, variant: str) -> Path:
    return run.work_dir(f"tinyml-{variant}")


def _data(run: Run) -> Path:
    if "data:synthetic" in run.outputs:
        return Path(run.outputs["data:synthetic"]["path"])
    given = run.env.imagenet
    if not given:
        raise Blocked(
            "patch-aware training in measure mode needs ImageNet (train/ and val/ ImageFolder)",
            f"set {IMAGENET_ENV}=/path/to/imagenet",
        )
    return Path(str(given))


def _crash(log: Path) -> str:
    """The exception line of a traceback in `log` (training or patch_memory.py), or ''."""
    try:
        return parse_patch_aware_file(log).error
    except BadInput:  # neither an accuracy line nor a traceback
        return ""


# --------------------------------------------------------------------------------------------
# Executors
# --------------------------------------------------------------------------------------------


def exec_fetch(step: Step, run: Run) -> dict[str, Any]:
    """data:synthetic: the smoke run's tiny ImageFolder (2 classes x 8 random images per split)."""
    if step.id != "data:synthetic":
        raise Blocked(f"step {step.id}: this version knows no fetch of that name", "see `ant-kpi plan tinyml_memory`")
    return synthetic_imagefolder(run.work_dir("synth"))


def exec_train(step: Step, run: Run) -> dict[str, Any]:
    """patch_aware_train.py for one variant; its checkpoint and log stay in the variant's work directory."""
    src, commit = _source(step, run)
    work = _work(run, step.variant)
    prepare_tree(src, work, patches=PATCHES, stubs=shim_sources())
    rc, log = run_training(run, step, step.argv, work=work, data=_data(run))
    if rc != 0:
        why = _crash(log)
        raise StepFailed(
            f"patch_aware_train.py ({step.variant}) exited {rc}" + (f": {why}" if why else ""), log=run.rel(log)
        )
    parsed = parse_patch_aware_file(log)
    ckpt = work / "out" / Path(CHECKPOINT).name
    if not ckpt.is_file():
        raise StepFailed(f"patch_aware_train.py ({step.variant}) wrote no {Path(CHECKPOINT).name}", log=run.rel(log))
    # The variant must be what it claims: the plain model untouched, the patch model patched.
    want_patched = step.variant != "plain"
    if (parsed.patchwise_layers > 0) != want_patched:
        raise StepFailed(
            f"{step.variant}: zero_borderkernel reported {parsed.patchwise_layers} patch-wise layer(s)",
            log=run.rel(log),
        )
    return {
        "log": str(log),
        "work": str(work),
        "checkpoint": str(ckpt),
        "source_commit": commit,
        "patchwise_layers": parsed.patchwise_layers,
        "argv": list(step.argv),
        "image": train_image(run).get("tag", ""),
        "patches": [p.why for p in PATCHES],
    }


def exec_measure(step: Step, run: Run) -> dict[str, Any]:
    """measure:peak-memory: harness/patch_memory.py in the image; measure:peak-sram: BLOCKED (no TFLite export)."""
    if step.id.startswith("measure:peak-sram:"):
        raise Blocked(MCU_BLOCKED, MCU_FIX)
    train = run.outputs.get(f"train:{step.variant}")
    if not train:
        raise Blocked(
            f"{step.id}: no trained {step.variant} checkpoint in this run", f"let train:{step.variant} complete"
        )
    work = Path(train["work"])
    tools = work / "tools"
    tools.mkdir(exist_ok=True)
    shutil.copy2(MEMORY_TOOL, tools / MEMORY_TOOL.name)
    out = work / MEMORY_JSON
    out.unlink(missing_ok=True)
    rc, log = run_training(run, step, step.argv, work=work, data=None)
    if rc != 0:
        why = _crash(log)
        raise StepFailed(
            f"patch_memory.py ({step.variant}) exited {rc}" + (f": {why}" if why else ""), log=run.rel(log)
        )
    if not out.is_file():
        raise StepFailed(f"patch_memory.py ({step.variant}) wrote no {MEMORY_JSON}", log=run.rel(log))
    return {
        "json": str(out),
        "log": str(log),
        "argv": list(step.argv),
        "identity": train_identity(run),
        "source_commit": train.get("source_commit", ""),
    }


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def peak_memory_row(run: Run, step: Step, outputs: dict[str, Any]) -> Row:
    """The peak_memory row (KB) of one measure step: layer by layer for plain, patch-based for patch."""
    common: dict[str, Any] = dict(
        metric="peak_memory",
        workload=step.workload or MEMORY_WORKLOAD,
        unit="KB",
        **measured_fields(run, step, outputs),
    )
    try:
        doc = json.loads(Path(outputs["json"]).read_text(encoding="utf-8"))
        lbl = doc["layer_by_layer"]
        pb = doc.get("patch_based")
        sha = str(doc.get("checkpoint_sha256", ""))
    except (OSError, ValueError, KeyError, TypeError) as e:
        return train_row(
            run, KPI, value=float("nan"), status="failed", note=f"unreadable patch_memory output: {e}", **common
        )
    lbl_kb = lbl["peak_bytes"] / 1024
    if step.variant == "plain":
        note = (
            f"layer by layer: {lbl_kb:.1f} KB live at {lbl['at']}; fp32 tensors crossing module boundaries, "
            f"BatchNorm folded ({doc.get('bn_folded', 0)}); int8 equivalent {lbl['peak_elements'] / 1024:.1f} KB"
        )
        return train_row(run, KPI, value=lbl_kb, status="ok", artefact_sha256=sha, note=note, **common)
    if pb is None:
        why = doc.get("patch_based_reason", "no patch-based schedule")
        return train_row(
            run,
            KPI,
            value=float("nan"),
            status="failed",
            artefact_sha256=sha,
            note=f"the patch-aware model has no patch-wise stage to run tile by tile: {why}",
            **common,
        )
    stage = pb["stage_units"]
    note = (
        f"patch-based: {pb['grid']}x{pb['grid']} tiles of {pb['tile'][0]}x{pb['tile'][1]} through "
        f"{stage[0]}..{stage[-1]}, peak in the {pb['phase']} ({pb['at']}); outputs equal the whole network's "
        f"(max rel. diff {pb['max_rel_diff']:.1e}); int8 equivalent {pb['peak_elements'] / 1024:.1f} KB; "
        f"the same model layer by layer: {lbl_kb:.1f} KB"
    )
    return train_row(run, KPI, value=pb["peak_bytes"] / 1024, status="ok", artefact_sha256=sha, note=note, **common)


def top1_row(run: Run, step: Step, train: dict[str, Any]) -> Row:
    """The top1 row of one training run: its last `Test:  Acc@1` (the script keeps no best)."""
    log = Path(train["log"])
    smoke = run.mode == "smoke"
    common: dict[str, Any] = dict(
        metric="top1",
        variant=step.variant,
        workload="synthetic" if smoke else "imagenet",
        fidelity="host",
        unit="%",
        log=run.rel(log),
        argv=[str(a) for a in train.get("argv", ())],
        source_commit=str(train.get("source_commit", "")),
    )
    try:
        parsed = parse_patch_aware_file(log)
    except BadInput as e:
        return train_row(run, KPI, value=float("nan"), status="failed", note=e.one_line(), **common)
    if parsed.error or parsed.top1 is None:
        return train_row(
            run, KPI, value=float("nan"), status="failed", note=parsed.error or "no 'Test:  Acc@1' line", **common
        )
    n = sum(1 for e in parsed.evaluations if not e.suffix)
    data = (
        "2 classes x 8 random images, 1 epoch (smoke: proves the run, says nothing of accuracy)"
        if smoke
        else "ImageNet val"
    )
    note = (
        f"last of {n} 'Test:  Acc@1' line(s) (Acc@5 {parsed.top5:g}); {parsed.patchwise_layers} patch-wise "
        f"layer(s); {data}"
    )
    return train_row(run, KPI, value=parsed.top1, status="ok", note=note, **common)


def exec_parse(step: Step, run: Run) -> dict[str, Any]:
    """parse:<variant>: the top1 row of its training and the peak_memory row of its measurement."""
    n = 0
    train = run.outputs.get(f"train:{step.variant}")
    if train and train.get("log"):
        append_row_journal(run.run_dir, top1_row(run, step, train))
        n += 1
    measures = step.params.get("measures", ())
    n += journal_measurements(run, measures, lambda r, s, o: [peak_memory_row(r, s, o)], "json")
    return {"rows": n}


EXECUTORS: dict[str, Executor] = {
    "fetch": exec_fetch,
    "train": exec_train,
    "measure": exec_measure,
    "parse": exec_parse,
}
