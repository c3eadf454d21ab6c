"""KPI 3 (ML latency) and KPI 4 (ML memory = .tflite size) execution.

What runs here: the baseline fetch (a local copy, or the manifest URL with its sha256 pinned on
first download), the synthetic ImageFolder of the smoke run, .tflite sizes (fidelity `static`) and
host reference latencies through `harness.payload.litert_bench` (LiteRT Python runtime, fidelity `host`).
The ANT `benchmark_model_aarch64` runs under QEMU user mode when the ANT checkout holds it (fidelity
`emulated`), and on a board in measure runs; --num_threads follows the target's cores. ADMM training,
the dense validation and the PyTorch → TFLite conversion need the cuda-train image (train.py); the
accuracy rows are in accuracy.py, the KPI 4 sizes in size.py."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any, Final

from harness.core.runner import Executor, Run
from harness.core.steps import Step
from harness.env import qemu
from harness.env.identity import host_identity
from harness.errors import BadInput, Blocked, StepFailed
from harness.kpis.common.executors import evaluate_kpi, measured_fields
from harness.kpis.common.tflite_files import size_and_sha256
from harness.kpis.ml.accuracy import accuracy_rows
from harness.kpis.ml.fetch import exec_fetch
from harness.kpis.ml.models import (
    _COMPLETE_CLONE_FIX,
    ARTEFACT,
    BENCHMARK_TOOL,
    KPI_LATENCY,
    KPI_MEMORY,
    ModelFile,
    _file_in_ant,
    artefact_model,
    baseline_model,
    shipped_model,
)
from harness.kpis.ml.plan_latency import THREADS_ARG
from harness.kpis.ml.rows import _row, _write
from harness.kpis.ml.size import exec_measure_size
from harness.kpis.ml.train import DENSE_STEP, exec_convert, exec_train
from harness.options import SOURCE_ROOT
from harness.parsers.benchmark_model import describe, parse_benchmark_file
from harness.results.rows import Row

# --------------------------------------------------------------------------------------------
# KPI 4: model size (harness/kpis/ml/size.py)
# --------------------------------------------------------------------------------------------


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
    threads = _threads(deploy["identity"].get("cpus"))
    argv = [deploy["remote_tool"], f"--graph={deploy['remote_models'][step.variant]}", *_bench_flags(step, threads)]
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
        "identity": {**deploy["identity"], **_threads_identity(threads, "the board's online CPUs")},
        "tool": BENCHMARK_TOOL,
        "model": str(model.path),
        "model_sha256": sha,
        "source_commit": model.source_commit,
    }


def _threads(cpus: object) -> int:
    """--num_threads for a target with `cpus` online cores (1 when the target does not say)."""
    return cpus if isinstance(cpus, int) and not isinstance(cpus, bool) and cpus > 0 else 1


def _host_cpus() -> int:
    """The cores this process may run on (what QEMU user mode's guest threads run on, too)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _threads_identity(threads: int, source: str) -> dict[str, Any]:
    return {"num_threads": threads, "num_threads_from": source}


def _bench_flags(step: Step, threads: int) -> list[str]:
    """The step's benchmark flags, with the planned thread placeholder set to the target's cores."""
    flags = [a for a in step.argv if a.startswith("--") and not a.startswith("--graph")]
    return [f"--num_threads={threads}" if a == THREADS_ARG else a for a in flags]


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
    threads = _threads(_host_cpus())
    flags = _bench_flags(step, threads)
    graph = f"--graph={model.path}"
    identity = {**host_identity(), **_threads_identity(threads, "this host's usable CPUs (sched_getaffinity)")}
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
    runs = _runs_note(common["argv"], res.timed.count if res.timed is not None else None)
    return _row(run, KPI_LATENCY, value=res.inference_avg_us, status="ok", note=f"{note}{runs}", **common)


def _runs_note(argv: list[str], count: int | None) -> str:
    """Why the timed count differs from --num_runs: benchmark_model's rule, said beside the count."""
    asked = next((a.split("=", 1)[1] for a in argv if a.startswith("--num_runs=")), "")
    if count is None or not asked or str(count) == asked:
        return ""
    return (
        f" (--num_runs={asked} is a minimum: benchmark_model times at least that many runs and for at "
        f"least --min_secs, 1 s by default; {count} runs here)"
    )


def _measure_steps(run: Run, target: str) -> list[Step]:
    # The plan's parse steps list no dependencies: the measure steps come from the run's step table.
    steps = run.steps
    return [s for s in steps.values() if s.kpi == KPI_LATENCY and s.kind == "measure" and s.target == target]


def exec_parse_latency(step: Step, run: Run) -> dict[str, Any]:
    """parse:accuracy → top1/accuracy_loss rows; parse:<target> → one inference_avg row per measured run."""
    if step.id == "parse:accuracy":
        train = run.outputs.get("train:admm")
        if not train or not train.get("log"):
            raise Blocked("no ADMM training log in this run", "let train:admm complete")
        return {"rows": _write(run, accuracy_rows(run, step, train, run.outputs.get(DENSE_STEP)))}
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
