"""The model files KPIs 3 and 4 compare: the baseline, the model shipped with ANT, and this run's own conversion."""

from __future__ import annotations

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

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form, as step outputs hold it."""
        return {
            "path": str(self.path) if self.path else "",
            "reason": self.reason,
            "fix": self.fix,
            "source_commit": self.source_commit,
            "origin": self.origin,
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
        )


def _ant_source(run: Run) -> dict[str, Any] | None:
    return next((out for sid, out in run.outputs.items() if sid.startswith("source:ant")), None)


def _file_in_ant(run: Run, name: str, rel: str, what: str) -> ModelFile:
    src = _ant_source(run)
    if src is None:
        return ModelFile(
            name=name,
            reason=f"the ANT source ({rel}) is not checked out in this run",
            fix="let the source:ant step complete, or pass --source ant=PATH",
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


def artefact_model(run: Run) -> ModelFile | None:
    """The harness's conversion of the KPI 3 training output, when this run produced one."""
    out = run.outputs.get("convert:tflite")
    if not out or not out.get("path"):
        return None
    return ModelFile(name=ARTEFACT, path=Path(out["path"]), origin="convert:tflite of this run")
