"""KPI 4: the .tflite file size (static fidelity) of each model, one step per model."""

from __future__ import annotations

from typing import Any, Final

from harness.core.runner import Run
from harness.core.steps import Step
from harness.errors import BadInput, Blocked, StepFailed
from harness.kpis.common.tflite_files import looks_like_tflite, size_and_sha256
from harness.kpis.ml.models import (
    ARTEFACT,
    BASELINE,
    KPI_MEMORY,
    SHIPPED,
    ModelFile,
    artefact_model,
    baseline_model,
    shipped_model,
)
from harness.kpis.ml.rows import _row, _write
from harness.results.rows import Row

ARTEFACT_NOTE: Final = (
    "this run's own KPI 3 training output, converted by the harness to a float32 TFLite file that stores "
    "every weight (the pruned ones as zeros): its own variant, never pooled with ANT's shipped "
    f"{SHIPPED}.tflite and not part of the verdict"
)


def size_row(run: Run, step: Step, m: ModelFile) -> Row:
    """The model_size row (bytes, fidelity static) of a readable TFLite file; StepFailed otherwise."""
    assert m.path is not None
    size, sha = size_and_sha256(m.path)
    if not looks_like_tflite(m.path):
        raise StepFailed(f"{m.path} ({m.name}) is not a TFLite flatbuffer")
    note = f"file size of {m.origin or m.path}"
    if m.name == ARTEFACT:
        note = f"file size of {ARTEFACT_NOTE}"
    return _row(
        run,
        KPI_MEMORY,
        metric="model_size",
        variant=m.name,
        workload=m.name,
        target=step.target,
        fidelity="static",
        repeat=0,
        unit="bytes",
        value=float(size),
        status="ok",
        source_commit=m.source_commit,
        image_digest=m.image_digest,
        artefact_sha256=sha,
        target_identity={"kind": "static", "file": str(m.path), "origin": m.origin},
        note=note,
    )


def _model_to_size(run: Run, name: str) -> ModelFile | None:
    if name == BASELINE:
        return baseline_model(run)
    if name == SHIPPED:
        return shipped_model(run)
    if name == ARTEFACT:
        return artefact_model(run)
    raise BadInput(f"KPI 4 has no model {name!r} to size")


def exec_measure_size(step: Step, run: Run) -> dict[str, Any]:
    """KPI 4: the model_size row of one model (the step's variant).

    A missing baseline or shipped model blocks its own step (its row names the fix); this run's
    KPI 3 conversion is sized when the run has one and is otherwise simply not part of the run."""
    m = _model_to_size(run, step.variant)
    if m is None:
        return {"rows": 0, "not_in_run": f"no KPI 3 conversion in this run (`ant-kpi run 3 4` sizes {ARTEFACT})"}
    if m.path is None:
        raise Blocked(m.reason, m.fix)
    row = size_row(run, step, m)
    _write(run, [row])
    return {"rows": 1, "size": row.value, "sha256": row.artefact_sha256}
