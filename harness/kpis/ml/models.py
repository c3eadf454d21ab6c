"""The model files KPIs 3 and 4 compare: the baseline, the model shipped with ANT, and this run's own conversion."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness.core.runner import Run
from harness.kpis.common.tflite_files import lfs_pointer

KPI_LATENCY: Final = "ml_latency"
KPI_MEMORY: Final = "ml_memory"
BASELINE: Final = "mobilenet_v2_1.0_224"
SHIPPED: Final = "mbv1_0.9_v4u"
# The harness's own conversion of the KPI 3 training output, reported beside the shipped model.
ARTEFACT: Final = "mbv1_0.9_v4u.harness"
# The dense model KPI 3's pruning starts from (its Top-1 is the reference of the accuracy loss).
DENSE: Final = "mbv1_1.0_dense"
CONVERT_STEP: Final = "convert:tflite"
BENCHMARK_TOOL: Final = "benchmark_model_aarch64"
TRAIN_IMAGE: Final = "cuda-train"
BASELINE_ENV: Final = "ANT_KPI_BASELINE_TFLITE"
DENSE_TOP1_ENV: Final = "ANT_KPI_DENSE_TOP1"
DOWNLOAD_TIMEOUT_S: Final = 60.0
_COMPLETE_CLONE_FIX: Final = (
    "check out a complete clone of ANT (mirrors may omit files of 4 MB and more) and pass --source ant=PATH"
)


# --------------------------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ModelFile:
    """A model a KPI measures: its file, or why it is not available here."""

    name: str
    path: Path | None = None
    reason: str = ""
    fix: str = ""
    source_commit: str = ""
    origin: str = ""
    image_digest: str = ""  # the image that produced the file (the harness's conversion)

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form, as step outputs hold it."""
        return {
            "path": str(self.path) if self.path else "",
            "reason": self.reason,
            "fix": self.fix,
            "source_commit": self.source_commit,
            "origin": self.origin,
            "image_digest": self.image_digest,
        }

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> ModelFile:
        """Inverse of to_dict."""
        return cls(
            name=name,
            path=Path(d["path"]) if d.get("path") else None,
            reason=str(d.get("reason", "")),
            fix=str(d.get("fix", "")),
            source_commit=str(d.get("source_commit", "")),
            origin=str(d.get("origin", "")),
            image_digest=str(d.get("image_digest", "")),
        )


def _ant_source(run: Run) -> dict[str, Any] | None:
    return next((out for sid, out in run.outputs.items() if sid.startswith("source:ant")), None)


def _ant_source_problem(run: Run) -> tuple[str, str]:
    """Why this run has no ANT checkout, from the source step's own state, and its fix."""
    # KPIs 3 and 4 plan the same source step; whichever ran has the state.
    for sid in dict.fromkeys(s for s in run.steps if s.startswith("source:ant")):
        for kpi in (KPI_LATENCY, KPI_MEMORY):
            try:
                state = json.loads(run.state_path(kpi, sid).read_text())
            except (OSError, ValueError):
                continue
            message = str(state.get("message", "")) if isinstance(state, dict) else ""
            if message:
                what, _, fix = message.partition(" — fix: ")
                return f"{sid} did not complete ({what})", fix or _COMPLETE_CLONE_FIX
    return "the ANT source is not checked out in this run", "let the source:ant step complete, or --source ant=PATH"


def _file_in_ant(run: Run, name: str, rel: str, what: str) -> ModelFile:
    src = _ant_source(run)
    if src is None:
        why, fix = _ant_source_problem(run)
        return ModelFile(
            name=name,
            reason=f"ANT's {rel} ({what}) is not available: {why}",
            fix=fix,
        )
    commit = str(src.get("commit", ""))
    path = Path(src["path"]) / rel
    at = f" at {commit[:12]}" if commit else ""
    if not path.is_file():
        return ModelFile(
            name=name,
            reason=f"{rel} ({what}) is absent from the ANT checkout{at}",
            fix=_COMPLETE_CLONE_FIX,
            source_commit=commit,
        )
    if lfs_pointer(path):
        return ModelFile(
            name=name,
            reason=f"{rel} in the ANT checkout{at} is a Git LFS pointer, not the file",
            fix="git lfs pull in a complete clone, then --source ant=PATH",
            source_commit=commit,
        )
    return ModelFile(name=name, path=path, source_commit=commit, origin=f"ANT {rel}{at}")


def shipped_model(run: Run) -> ModelFile:
    """ANT's compressed model, test/mlbench/mbv1_0.9_v4u.tflite, from the ANT checkout."""
    return _file_in_ant(run, SHIPPED, run.manifest.workloads[SHIPPED].path, "the KPI 3 model shipped with ANT")


def baseline_model(run: Run) -> ModelFile:
    """The baseline .tflite that fetch:baseline produced."""
    out = run.outputs.get("fetch:baseline")
    if not out or not out.get("path"):
        url = run.manifest.workloads[BASELINE].url
        return ModelFile(
            name=BASELINE,
            reason=f"the baseline {BASELINE}.tflite was not fetched from {url}",
            fix=f"set {BASELINE_ENV}=/path/to/{BASELINE}.tflite (or the .tgz) and run again",
        )
    return ModelFile(name=BASELINE, path=Path(out["path"]), origin=str(out.get("origin", "")))


def _stored_outputs(run: Run, kpi: str, step_id: str) -> dict[str, Any]:
    """The outputs of a step completed earlier in this run (a KPI resumed or run on its own)."""
    try:
        state = json.loads(run.state_path(kpi, step_id).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(state, dict) or state.get("status") != "ok":
        return {}
    out = state.get("outputs")
    return out if isinstance(out, dict) else {}


def artefact_model(run: Run) -> ModelFile | None:
    """The harness's conversion of the KPI 3 training output, when this run produced one (in this
    command or earlier in the same run directory)."""
    out = run.outputs.get(CONVERT_STEP) or _stored_outputs(run, KPI_LATENCY, CONVERT_STEP)
    if not out or not out.get("path") or not Path(out["path"]).is_file():
        return None
    prov = out.get("provenance", {})
    return ModelFile(
        name=ARTEFACT,
        path=Path(out["path"]),
        origin="this run's KPI 3 training output, converted by the harness (convert:tflite)",
        source_commit=str(out.get("source_commit", "")),
        image_digest=str(prov.get("image_id", "")) if isinstance(prov, dict) else "",
    )
