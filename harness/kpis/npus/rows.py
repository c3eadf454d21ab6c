"""KPI 7's names and pins, and how its rows are made."""

from __future__ import annotations

from typing import Any, Final

from harness.core.runner import Run
from harness.core.steps import Step
from harness.results.journal import append_row_journal
from harness.results.rows import Row

KPI: Final = "npus"
IMAGE: Final = "tvm-npu"
NPUS: Final = ("VTA", "Ethos-U55", "Gemmini")
VELA_STEP: Final = "convert:vela:Ethos-U55"
VELA_VERSION: Final = "5.2.0"  # the ethos-u-vela release the harness pins (pip install ethos-u-vela==5.2.0)
VELA_FIX: Final = f"pip install ethos-u-vela=={VELA_VERSION}"
VELA_ACCELERATOR: Final = "ethos-u55-128"  # the Corstone-300 FVP's default Ethos-U55 configuration
VELA_CONFIG: Final = "Arm/vela.ini"
VELA_SYSTEM_CONFIG: Final = "Ethos_U55_High_End_Embedded"
VELA_MEMORY_MODE: Final = "Shared_Sram"
VELA_TIMEOUT_S: Final = 300.0
SMOKE_MODEL: Final = "tiny_mobilenet_like_int8.tflite"
ETHOSU_CUSTOM_CODE: Final = b"ethos-u"
# A hand-built tvm-npu image (e.g. with the FVP licence accepted) is named by this variable.
IMAGE_ENV: Final = "ANT_KPI_TVM_NPU_IMAGE"
# Building the tvm-npu image takes hours, so a KPI run only does it when asked to.
BUILD_IMAGE_ENV: Final = "ANT_KPI_BUILD_TVM_NPU_IMAGE"
ETHOSU_EXPECTED_LABEL: Final = "tabby"
_SEED_PATH_NOTE: Final = "seed testcase"


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def _row(run: Run, step: Step, **kw: Any) -> Row:
    fields: dict[str, Any] = {
        "run_id": run.run_id,
        "kpi": KPI,
        "mode": run.mode,
        "variant": step.variant,
        "target": step.target or "x86_64",
        "repeat": step.repeat or 0,
        # A step that names no fidelity claims none above a static reading (never a simulator run).
        "fidelity": step.fidelity or "static",
        **run.provenance_base(),
        **kw,
    }
    return Row(**fields)


def check_row(
    run: Run,
    step: Step,
    *,
    passed: bool,
    build: dict[str, Any],
    image: dict[str, Any],
    metric: str = "passed",
    **kw: Any,
) -> Row:
    """The row of one check that ran (a testcase, a tutorial, all of them): 1 passed, 0 failed,
    with the fork's commit and the image it ran in."""
    return _row(
        run,
        step,
        metric=metric,
        value=1.0 if passed else 0.0,
        unit="count",
        status="ok",
        source_commit=str(build.get("source_commit", "")),
        image_digest=str(image.get("id", "")),
        **kw,
    )


def _write(run: Run, rows: list[Row]) -> None:
    for r in rows:
        append_row_journal(run.run_dir, r)
