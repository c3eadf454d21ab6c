"""KPI 3 (ML latency) and KPI 4 (ML memory = .tflite size) execution.

What runs here: the baseline fetch (a local copy, or the manifest URL with its sha256 pinned on
first download), the synthetic ImageFolder of the smoke run, .tflite sizes (fidelity `static`) and
host reference latencies through `harness.payload.litert_bench` (LiteRT Python runtime, fidelity `host`).
The ANT `benchmark_model_aarch64` runs under QEMU user mode when the ANT checkout holds it (fidelity
`emulated`). ADMM training and the PyTorch → TFLite conversion need the cuda-train image: without
its build context those steps end BLOCKED and say so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

from harness.core.runner import Executor, Run
from harness.core.steps import Step
from harness.env import qemu
from harness.env.identity import host_identity
from harness.errors import BadInput, Blocked, StepFailed
from harness.kpis.common.executors import evaluate_kpi, measured_fields
from harness.kpis.common.tflite_files import looks_like_tflite, size_and_sha256
from harness.kpis.ml.fetch import exec_fetch
from harness.kpis.ml.models import (
    _COMPLETE_CLONE_FIX,
    ARTEFACT,
    BENCHMARK_TOOL,
    DENSE_TOP1_ENV,
    KPI_LATENCY,
    KPI_MEMORY,
    SHIPPED,
    ModelFile,
    _file_in_ant,
    artefact_model,
    baseline_model,
    shipped_model,
)
from harness.kpis.ml.train import exec_convert, exec_train
from harness.options import SOURCE_ROOT
from harness.parsers.admm import parse_admm_file
from harness.parsers.benchmark_model import describe, parse_benchmark_file
from harness.results.journal import append_row_journal
from harness.results.rows import Row

# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def _row(run: Run, kpi: str, **kw: Any) -> Row:
    fields: dict[str, Any] = {"run_id": run.run_id, "kpi": kpi, "mode": run.mode, **run.provenance_base(), **kw}
    return Row(**fields)


def _write(run: Run, rows: list[Row]) -> int:
    for r in rows:
        append_row_journal(run.run_dir, r)
    return len(rows)


# --------------------------------------------------------------------------------------------
# KPI 4: model size
# --------------------------------------------------------------------------------------------


def size_rows(run: Run, step: Step, models: list[ModelFile]) -> list[Row]:
    """model_size rows (bytes, fidelity static): ok for readable TFLite files, blocked otherwise."""
    rows = []
    for m in models:
        common: dict[str, Any] = dict(
            metric="model_size",
            variant=m.name,
            workload=m.name,
            target=step.target,
            fidelity="static",
            repeat=0,
            unit="bytes",
            source_commit=m.source_commit,
        )
        if m.path is None:
            rows.append(
                _row(run, KPI_MEMORY, value=float("nan"), status="blocked", note=f"{m.reason} — fix: {m.fix}", **common)
            )
            continue
        size, sha = size_and_sha256(m.path)
        ident = {"kind": "static", "file": str(m.path), "origin": m.origin}
        if not looks_like_tflite(m.path):
            rows.append(
                _row(
                    run,
                    KPI_MEMORY,
                    value=float("nan"),
                    status="failed",
                    artefact_sha256=sha,
                    target_identity=ident,
                    note=f"{m.path} is not a TFLite flatbuffer",
                    **common,
                )
            )
            continue
        rows.append(
            _row(
                run,
                KPI_MEMORY,
                value=float(size),
                status="ok",
                artefact_sha256=sha,
                target_identity=ident,
                note=f"file size of {m.origin or m.path}",
                **common,
            )
        )
    return rows


def exec_measure_size(step: Step, run: Run) -> dict[str, Any]:
    """KPI 4 rows for the baseline, the shipped model and (if present) the KPI 3 artefact."""
    models = [baseline_model(run), shipped_model(run)]
    art = artefact_model(run)
    if art is not None:
        models.append(art)
    if step.variant:
        models = [m for m in models if m.name == step.variant]
    rows = size_rows(run, step, models)
    if not any(r.status == "ok" for r in rows):
        # One blocked row for the step is written by the runner; the reasons go into its message.
        missing = [m for m in models if m.path is None]
        raise Blocked(
            "; ".join(m.reason for m in missing) or "no model file to size",
            "; ".join(dict.fromkeys(m.fix for m in missing)) or "see the step log",
        )
    _write(run, rows)
    return {
        "rows": len(rows),
        "sizes": {r.variant: r.value for r in rows if r.status == "ok"},
        "not_sized": {r.variant: r.note for r in rows if r.status != "ok"},
    }


def exec_evaluate_memory(step: Step, run: Run) -> dict[str, Any]:
    """KPI 4 verdict."""
    return evaluate_kpi(run, KPI_MEMORY)


# --------------------------------------------------------------------------------------------
# KPI 3: latency
# --------------------------------------------------------------------------------------------


def _arch(run: Run, target: str) -> str:
    return run.manifest.targets[target].arch


def exec_deploy(step: Step, run: Run) -> dict[str, Any]:
    """Locate the models (and the ANT benchmark tool for ARM targets); missing ones keep their reason."""
    arch = _arch(run, step.target)
    models = [baseline_model(run), shipped_model(run)]
    art = artefact_model(run)
    if art is not None:
        models.append(art)
    info: dict[str, Any] = {"models": {m.name: m.to_dict() for m in models}, "arch": arch}
    if arch != "x86_64":
        tool = _file_in_ant(
            run,
            BENCHMARK_TOOL,
            run.manifest.workloads[BENCHMARK_TOOL].path,
            "the ANT benchmark_model build for aarch64",
        )
        info["benchmark_model"] = tool.to_dict()
    if step.where == "board":
        return _deploy_board(step, run, info, models)
    return info


REMOTE_DIR: Final = "kpi3"


def _deploy_board(step: Step, run: Run, info: dict[str, Any], models: list[ModelFile]) -> dict[str, Any]:
    """Copy the benchmark tool and every model that exists to the board (sha256 checked there)."""
    from harness.env.lab import session as boardrun
    from harness.env.transport import deploy

    tool = ModelFile.from_dict(BENCHMARK_TOOL, info.get("benchmark_model", {}))
    if tool.path is None:
        raise Blocked(tool.reason or f"{BENCHMARK_TOOL} is not available", tool.fix or _COMPLETE_CLONE_FIX)
    board, transport = boardrun.session(run, step.target)
    files = {tool.path: f"{REMOTE_DIR}/{BENCHMARK_TOOL}"}
    files.update({m.path: f"{REMOTE_DIR}/{m.name}.tflite" for m in models if m.path is not None})
    sums = deploy(transport, files)
    # git keeps the tool as 0644 in a checkout: make it executable on the board.
    res = transport.run(["chmod", "+x", transport.remote_path(f"{REMOTE_DIR}/{BENCHMARK_TOOL}")], timeout=60)
    if not res.ok:
        raise StepFailed(f"cannot make {BENCHMARK_TOOL} executable on board {board.name}: {res.stderr[:200]}")
    return {
        **info,
        "board": board.name,
        "remote_tool": transport.remote_path(f"{REMOTE_DIR}/{BENCHMARK_TOOL}"),
        "remote_models": {
            m.name: transport.remote_path(f"{REMOTE_DIR}/{m.name}.tflite") for m in models if m.path is not None
        },
        "sha256": sums,
        "identity": boardrun.public_identity(board, transport),
    }


def _measure_board(step: Step, run: Run, deploy: dict[str, Any], model: ModelFile) -> dict[str, Any]:
    """benchmark_model on the board; its stdout and stderr (where it logs the timings) in one raw log."""
    from harness.env.lab import session as boardrun

    _, transport = boardrun.session(run, step.target)
    argv = [deploy["remote_tool"], f"--graph={deploy['remote_models'][step.variant]}", *_bench_flags(step)]
    log = run.raw_path(step.id, ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    res = transport.run(argv, timeout=run.manifest.defaults.timeout_s, stdout_path=log)
    with log.open("a", encoding="utf-8") as f:
        f.write(res.stderr)
    if res.timed_out:
        raise StepFailed(f"{BENCHMARK_TOOL} on {model.name} timed out on board {transport.name}", log=run.rel(log))
    if res.exit_code != 0:
        raise StepFailed(
            f"{BENCHMARK_TOOL} on {model.name} exited {res.exit_code} on board {transport.name}", log=run.rel(log)
        )
    _, sha = size_and_sha256(model.path) if model.path is not None else (0, "")
    return {
        "log": str(log),
        "argv": argv,
        "identity": deploy["identity"],
        "tool": BENCHMARK_TOOL,
        "model": str(model.path),
        "model_sha256": sha,
        "source_commit": model.source_commit,
    }


def _bench_flags(step: Step) -> list[str]:
    return [a for a in step.argv if a.startswith("--") and not a.startswith("--graph")]


def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(SOURCE_ROOT)
    # The measured process imports harness even when it is not installed (a source checkout).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def exec_measure_latency(step: Step, run: Run) -> dict[str, Any]:
    """One benchmark run: litert_bench on x86_64, the ANT benchmark_model under QEMU on ARM; raw log kept."""
    arch = _arch(run, step.target)
    deploy = run.outputs.get(f"deploy:{step.target}")
    if deploy is None:
        raise Blocked(f"{step.id}: nothing deployed for {step.target}", "run the deploy step first")
    entry = deploy.get("models", {}).get(step.variant)
    if entry is None and step.variant == ARTEFACT:
        raise Blocked(
            "this run's training produced no converted model to time",
            "let train:admm and convert:tflite complete (the cuda-train image)",
        )
    if entry is None:
        raise Blocked(f"{step.id}: model {step.variant} is not among the deployed models", "see deploy output")
    model = ModelFile.from_dict(step.variant, entry)
    if model.path is None:
        raise Blocked(model.reason, model.fix)
    if step.where == "board":
        return _measure_board(step, run, deploy, model)
    flags = _bench_flags(step)
    graph = f"--graph={model.path}"
    identity = host_identity()
    if arch == "x86_64":
        argv = [sys.executable, "-m", "harness.payload.litert_bench", graph, *flags]
        tool = "harness.payload.litert_bench"
    else:
        bm = ModelFile.from_dict(BENCHMARK_TOOL, deploy.get("benchmark_model", {}))
        if bm.path is None:
            raise Blocked(bm.reason or f"{BENCHMARK_TOOL} is not available", bm.fix or _COMPLETE_CLONE_FIX)
        # qemu-user reads the guest binary itself, so git's 0644 mode for it does not matter.
        argv = qemu.qemu_command(bm.path, [graph, *flags], arch=arch)
        tool = BENCHMARK_TOOL
        identity = {**identity, "kind": "qemu-user", "emulator": argv[0], "guest_arch": arch}
    log = run.raw_path(step.id, ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("wb") as f:
            proc = subprocess.run(
                argv,
                stdout=f,
                stderr=subprocess.STDOUT,
                cwd=run.work_dir("ml-bench"),
                env=_python_env(),
                timeout=run.manifest.defaults.timeout_s,
                check=False,
            )
    except subprocess.TimeoutExpired:
        raise StepFailed(
            f"{tool} on {model.name} timed out after {run.manifest.defaults.timeout_s:g} s", log=run.rel(log)
        ) from None
    if proc.returncode != 0:
        raise StepFailed(f"{tool} on {model.name} exited {proc.returncode}", log=run.rel(log))
    _, sha = size_and_sha256(model.path)
    return {
        "log": str(log),
        "argv": [str(a) for a in argv],
        "identity": identity,
        "tool": tool,
        "model": str(model.path),
        "model_sha256": sha,
        "source_commit": model.source_commit,
    }


def latency_row(run: Run, step: Step, outputs: dict[str, Any]) -> Row:
    """The inference_avg row of one measure step's log (failed when the log has no timing)."""
    common: dict[str, Any] = dict(
        metric="inference_avg",
        workload=step.workload or step.variant,
        target=step.target,
        unit="us",
        artefact_sha256=str(outputs.get("model_sha256", "")),
        **measured_fields(run, step, outputs),
    )
    try:
        res = parse_benchmark_file(outputs["log"])
    except BadInput as e:
        return _row(run, KPI_LATENCY, value=float("nan"), status="failed", note=e.one_line(), **common)
    note = f"{outputs.get('tool', '')}: {describe(res)}".lstrip(": ")
    return _row(run, KPI_LATENCY, value=res.inference_avg_us, status="ok", note=note, **common)


def _measure_steps(run: Run, target: str) -> list[Step]:
    # The plan's parse steps list no dependencies: the measure steps come from the run's step table.
    steps = run.steps
    return [s for s in steps.values() if s.kpi == KPI_LATENCY and s.kind == "measure" and s.target == target]


def accuracy_rows(run: Run, step: Step, log: Path) -> list[Row]:
    """top1 (last 'Best accuracy') and accuracy_loss (dense Top-1 minus it, when the dense Top-1 is given)."""
    parsed = parse_admm_file(log)
    common: dict[str, Any] = dict(
        variant=SHIPPED,
        workload="imagenet" if run.mode == "measure" else "synthetic",
        fidelity=step.fidelity or "host",
        unit="%",
        log=run.rel(log),
    )
    top1 = parsed.top1
    if parsed.error or top1 is None:
        why = parsed.error or "no accuracy line"
        return [_row(run, KPI_LATENCY, metric="top1", value=float("nan"), status="failed", note=why, **common)]
    rows = [
        _row(
            run,
            KPI_LATENCY,
            metric="top1",
            value=top1,
            status="ok",
            note=f"last of {parsed.best_lines} 'Best accuracy' line(s)",
            **common,
        )
    ]
    dense = run.env.dense_top1 or None
    loss_common = {**common, "unit": "%p"}
    if dense is None:
        rows.append(
            _row(
                run,
                KPI_LATENCY,
                metric="accuracy_loss",
                value=float("nan"),
                status="blocked",
                note=f"the dense model's Top-1 is not given — fix: set {DENSE_TOP1_ENV}=<percent>",
                **loss_common,
            )
        )
    else:
        try:
            d = float(dense)
        except ValueError:
            raise BadInput(f"{DENSE_TOP1_ENV}={dense!r} is not a number") from None
        rows.append(
            _row(
                run,
                KPI_LATENCY,
                metric="accuracy_loss",
                value=d - top1,
                status="ok",
                note=f"dense Top-1 {d:g} % minus pruned Top-1 {top1:g} %",
                **loss_common,
            )
        )
    return rows


def exec_parse_latency(step: Step, run: Run) -> dict[str, Any]:
    """parse:accuracy → top1/accuracy_loss rows; parse:<target> → one inference_avg row per measured run."""
    if step.id == "parse:accuracy":
        train = run.outputs.get("train:admm")
        if not train or not train.get("log"):
            raise Blocked("no ADMM training log in this run", "let train:admm complete")
        return {"rows": _write(run, accuracy_rows(run, step, Path(train["log"])))}
    rows = []
    for ms in _measure_steps(run, step.target):
        out = run.outputs.get(ms.id)
        if out and out.get("log"):
            rows.append(latency_row(run, ms, out))
    return {"rows": _write(run, rows)}


def exec_evaluate_latency(step: Step, run: Run) -> dict[str, Any]:
    """KPI 3 verdict."""
    return evaluate_kpi(run, KPI_LATENCY)


EXECUTORS_ML_LATENCY: dict[str, Executor] = {
    "fetch": exec_fetch,
    "train": exec_train,
    "convert": exec_convert,
    "deploy": exec_deploy,
    "measure": exec_measure_latency,
    "parse": exec_parse_latency,
    "evaluate": exec_evaluate_latency,
}

EXECUTORS_ML_MEMORY: dict[str, Executor] = {
    "fetch": exec_fetch,
    "measure": exec_measure_size,
    "evaluate": exec_evaluate_memory,
}
