"""The Vela smoke of KPI 7 (runs here): a generated int8 model compiled for the Ethos-U55; static
fidelity (a compile with estimates, evidence tier "compiled"), never counted."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.core.runner import Run
from harness.core.steps import Step
from harness.env.identity import host_identity
from harness.errors import BadInput, Blocked, StepFailed
from harness.kpis.common.tflite_writer import tiny_mobilenet_like
from harness.kpis.npus.rows import (
    ETHOSU_CUSTOM_CODE,
    SMOKE_MODEL,
    VELA_ACCELERATOR,
    VELA_CONFIG,
    VELA_FIX,
    VELA_MEMORY_MODE,
    VELA_SYSTEM_CONFIG,
    VELA_TIMEOUT_S,
    VELA_VERSION,
    _row,
    _write,
)
from harness.kpis.npus.rules import judge_vela
from harness.parsers.vela import (
    describe,
    parse_vela_csv,
    parse_vela_file,
    summary_measurements,
    with_csv_estimates,
)

# --------------------------------------------------------------------------------------------
# The Vela smoke (runs here)
# --------------------------------------------------------------------------------------------


def vela_command() -> list[str]:
    """How to start Vela: the `vela` of this Python environment, else one on PATH; Blocked if none."""
    beside = Path(sys.executable).parent / "vela"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("vela")
    if found:
        return [found]
    raise Blocked("Arm Vela (ethos-u-vela) is not installed, so the Ethos-U55 compile path cannot run", VELA_FIX)


def vela_version(cmd: list[str]) -> str:
    """`vela --version`, or '' when it prints none."""
    try:
        out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    m = re.search(r"[0-9]+\.[0-9]+\.[0-9]+\S*", out.stdout or out.stderr)
    return m.group(0) if m else ""


def vela_argv(cmd: list[str], model: Path, out_dir: Path) -> list[str]:
    """The Vela command line of the smoke: explicit configuration, cycle estimate, operator list."""
    return [
        *cmd,
        "--accelerator-config",
        VELA_ACCELERATOR,
        "--config",
        VELA_CONFIG,
        "--system-config",
        VELA_SYSTEM_CONFIG,
        "--memory-mode",
        VELA_MEMORY_MODE,
        "--verbose-cycle-estimate",
        "--show-cpu-operations",
        "--output-dir",
        str(out_dir),
        str(model),
    ]


def ethosu_custom_ops(path: Path) -> int | None:
    """Operators of a Vela output model that run on the NPU (custom code 'ethos-u'); None if unreadable."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        return None
    try:
        model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    except Exception:  # a truncated flatbuffer raises anything from struct.error to IndexError
        return None
    codes = [c.customCode for c in (model.operatorCodes or [])]
    return sum(
        1
        for sg in (model.subgraphs or [])
        for op in (sg.operators or [])
        if op.opcodeIndex < len(codes) and codes[op.opcodeIndex] == ETHOSU_CUSTOM_CODE
    )


def exec_vela(step: Step, run: Run) -> dict[str, Any]:
    """Compile the harness's int8 model with Vela for an Ethos-U55; rows: passed plus Vela's estimates."""
    common: dict[str, Any] = {"workload": SMOKE_MODEL, "unit": "count"}
    try:
        cmd = vela_command()
        work = run.work_dir("npus-vela")
        model = tiny_mobilenet_like(work / SMOKE_MODEL, int8=True)
    except Blocked as e:
        _write(
            run,
            [
                _row(
                    run,
                    step,
                    metric="passed",
                    value=float("nan"),
                    status="blocked",
                    note=f"Vela compile path: {e}",
                    **common,
                )
            ],
        )
        raise
    version = vela_version(cmd)
    out_dir = work / "out"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    argv = vela_argv(cmd, model.path, out_dir)
    log = run.raw_path(step.id, ".log")
    try:
        with log.open("wb") as f:
            proc = subprocess.run(
                argv, stdout=f, stderr=subprocess.STDOUT, cwd=work, timeout=VELA_TIMEOUT_S, check=False
            )
    except subprocess.TimeoutExpired:
        raise StepFailed(f"Vela took longer than {VELA_TIMEOUT_S:g} s", log=run.rel(log)) from None
    identity = {
        **host_identity(),
        "kind": "compiler-estimate",
        "tool": "ethos-u-vela",
        "version": version,
        "pinned": VELA_VERSION,
        "accelerator": VELA_ACCELERATOR,
        "system_config": VELA_SYSTEM_CONFIG,
        "memory_mode": VELA_MEMORY_MODE,
    }
    prov: dict[str, Any] = {
        "argv": [str(a) for a in argv],
        "target_identity": identity,
        "log": run.rel(log),
        "artefact_sha256": model.sha256,
    }
    pin_note = (
        "" if version == VELA_VERSION else f" (Vela {version or 'of unknown version'}; the harness pins {VELA_VERSION})"
    )
    try:
        summary = parse_vela_file(log)
    except BadInput as e:
        _write(
            run,
            [
                _row(
                    run,
                    step,
                    metric="passed",
                    value=float("nan"),
                    status="failed",
                    note=f"Vela compile path: {e.one_line()}",
                    **common,
                    **prov,
                )
            ],
        )
        raise StepFailed(f"Vela exited {proc.returncode} without a summary", log=run.rel(log)) from None
    stem = model.path.stem
    table = out_dir / f"{stem}_summary_{VELA_SYSTEM_CONFIG}.csv"
    if table.is_file():
        # A CSV the parser rejects changes nothing: the printed summary holds every figure, rounded.
        with contextlib.suppress(BadInput):
            summary = with_csv_estimates(summary, parse_vela_csv(table))
    compiled = out_dir / f"{stem}_vela.tflite"
    custom = ethosu_custom_ops(compiled) if compiled.is_file() else 0
    verdict = judge_vela(summary, exit_status=proc.returncode, npu_custom_ops=custom)
    if proc.returncode != 0 or summary.error:
        _write(
            run,
            [
                _row(
                    run,
                    step,
                    metric="passed",
                    value=float("nan"),
                    status="failed",
                    note=f"Vela compile path: {verdict.reason}",
                    **common,
                    **prov,
                )
            ],
        )
        raise StepFailed(verdict.reason, log=run.rel(log))
    note = (
        "not counted: a compile with Vela's estimates (evidence tier: compiled), not a run on a simulator; "
        f"Vela compile path (not the seed's test_ethosu.py on the Corstone-300 FVP): {verdict.reason}; "
        f"{describe(summary)}; estimates from Vela's performance model{pin_note}"
    )
    rows = [
        _row(run, step, metric="passed", value=1.0 if verdict.passed else 0.0, status="ok", note=note, **common, **prov)
    ]
    for m in summary_measurements(summary):
        rows.append(
            _row(
                run,
                step,
                metric=m["metric"],
                value=m["value"],
                unit=m["unit"],
                status="ok",
                workload=SMOKE_MODEL,
                note=m.get("note", "Vela estimate"),
                **prov,
            )
        )
    _write(run, rows)
    return {
        "log": str(log),
        "passed": verdict.passed,
        "reason": verdict.reason,
        "vela_version": version,
        "model": str(model.path),
        "model_sha256": model.sha256,
        "compiled": str(compiled) if compiled.is_file() else "",
        "ethosu_custom_ops": custom,
        "npu_ops": summary.npu_ops,
        "cpu_ops": summary.cpu_ops,
        "npu_cycles": summary.npu_cycles,
        "summary_csv": str(table) if table.is_file() else "",
    }
