"""KPI 7 execution: the NPUs whose compiler path passes (VTA, Ethos-U55, Gemmini).

The seed's path: build the ANT-Model-DB TVM fork with its NPU back ends in the tvm-npu image, then
run testcase/test_{vta,ethosu,gemmini}.py; each testcase log is judged by a rule of its own
(`judge_vta`, `judge_ethosu`, `judge_gemmini`), so a testcase that skips, falls back to the CPU or
classifies wrongly is not a pass. Whatever that path lacks here (the image, the fork's build, the
Corstone-300 FVP licence, the network for the testcases' model downloads) ends its steps BLOCKED,
naming it; a testcase that runs nothing is reported as inert.

Beside it: VTA's graph on seeded random weights against the CPU (tvm.py), the fork's Gemmini
tutorials on Spike (gemmini.py), and what test_ethosu.py describes, on a generated model, up to
the FVP (ethosu.py: evidence tier "compiled", static fidelity, never counted). In smoke runs Arm's
Vela compiles a small generated int8 model for an Ethos-U55 (vela_smoke.py): a compile with
Vela's estimates, static fidelity, never counted."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from harness.core.fsio import atomic_write_text
from harness.core.runner import Executor, Run
from harness.core.steps import Step
from harness.kpis.npus.ethosu import exec_ethosu_compile, exec_ethosu_fvp
from harness.kpis.npus.gemmini import exec_all_tutorials, exec_sim_image, exec_spike, exec_tutorial
from harness.kpis.npus.names import (
    ETHOSU_COMPILE_STEP,
    ETHOSU_FVP_STEP,
    ETHOSU_MODEL,
    SIM_IMAGE,
    SPIKE_STEP,
    TUTORIAL_METRIC,
)
from harness.kpis.npus.rows import IMAGE, KPI, NPUS, SMOKE_MODEL
from harness.kpis.npus.tvm import (
    exec_build,
    exec_convert,
    exec_image,
    exec_measure,
    inert_reason,
    testcase_requirements,
)
from harness.results.counts import parse_identity

# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _state(run: Run, step_id: str) -> dict[str, Any]:

    p = run.state_path(KPI, step_id)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _first_clause(message: str) -> str:
    """A blocked message without its fix and its chain of `depends on …:` prefixes."""
    what = message.split(" — fix:", 1)[0]
    while what.startswith("depends on ") and ": " in what:
        what = what.split(": ", 1)[1]
    return what


def seed_gaps(run: Run, npu: str) -> list[str]:
    """Everything the seed testcase of `npu` still lacks in this run, not only the first blocked step."""
    gaps = []
    steps = run.steps
    src_id = next((sid for sid in steps if sid.startswith("source:ant_model_db")), "source:ant_model_db:compiler")
    for sid, label in (
        (src_id, "ANT-Model-DB checkout"),
        (f"image:{IMAGE}", f"{IMAGE} image"),
        ("build:tvm-fork", "TVM fork build"),
    ):
        st = _state(run, sid)
        if st.get("status") == "ok":
            continue
        own = str(st.get("message", ""))
        if own.startswith("depends on "):
            gaps.append(f"{label} (not attempted: its inputs are missing)")
        else:
            gaps.append(f"{label} ({_first_clause(own) or 'not run'})")
    versions = dict((run.outputs.get(f"image:{IMAGE}") or {}).get("tool_versions", {}))
    if npu in ("Ethos-U55", "Gemmini"):
        gaps += [w for w, _ in testcase_requirements(npu, versions)]
    if gaps and npu != "VTA":  # VTA runs offline: on the given pretrained files or on random weights
        gaps.append("then network access for the models the testcase downloads at run time")
    return gaps


def _path(rec: Mapping[Any, Any]) -> str:
    workload = str(rec["workload"])
    if workload == SMOKE_MODEL:
        return "Vela compile (smoke)"
    if workload == ETHOSU_MODEL:
        return "tvmc compile, generated model" if rec["metric"] == "compiled" else "generated model on the FVP"
    if rec["metric"] == TUTORIAL_METRIC or workload.startswith("micro_gemmini_"):
        return f"tutorial {workload}"
    if workload == "gemmini tutorials":
        return "all Gemmini tutorials"
    return f"seed {workload}"


def npu_table(run: Run) -> list[dict[str, str]]:
    """Per NPU and path: status, the evidence tier reached (compiled / ran on simulator / passed),
    which check decided it, the simulator and its version, the reason and the log."""
    from harness.results.runs import collect

    df = collect(run.run_dir).filter(kpi=KPI).df
    df = df[df["metric"].isin(["passed", TUTORIAL_METRIC, "compiled"])]
    table = []
    for npu in NPUS:
        rows = df[df["variant"] == npu]
        if rows.empty:
            table.append(
                {
                    "npu": npu,
                    "status": "no evidence",
                    "path": "-",
                    "tier": "none",
                    "check": "",
                    "simulator": "",
                    "reason": "no row",
                    "log": "",
                }
            )
            continue
        for rec in rows.to_dict("records"):
            ident = parse_identity(rec.get("target_identity"))
            if rec["status"] != "ok":
                status = str(rec["status"])
            else:
                status = "passed" if float(rec["value"]) >= 1.0 else "failed"
            path = _path(rec)
            seed = path.startswith("seed ")
            tier = str(ident.get("tier") or ("passed" if status == "passed" else "none"))
            if path == "Vela compile (smoke)":
                tier = "compiled" if status == "passed" else "none"
                if status == "passed":
                    status = "compiled, not counted"  # Vela's compile and estimates: no simulator ran
            if rec["metric"] == "compiled" and status == "passed":
                status = "compiled, not counted"  # a compile: nothing ran on a simulator
            if rec["metric"] == TUTORIAL_METRIC and status == "passed":
                status = "passed (one tutorial)"  # counts only through the all-tutorials row
            reason = str(rec["note"] or "")
            inert = inert_reason(run, str(rec["workload"])) if seed else ""
            if inert:
                # Runs nothing: reported as such, never judged, never counted.
                status, reason, tier = "inert upstream testcase", inert, "none"
            gaps = list(((run.outputs.get("build:tvm-fork") or {}).get("gaps") or {}).get(npu, []))
            if seed and gaps:
                # Beyond the testcase: what the fork itself lacks for this NPU's compile path.
                reason += "; the fork itself cannot compile for it: it lacks " + "; ".join(gaps)
            elif seed and status == "blocked":
                reason = "missing: " + "; ".join(seed_gaps(run, npu))
            if status == "blocked":
                tier = "none"
            table.append(
                {
                    "npu": npu,
                    "status": status,
                    "path": path,
                    "tier": tier,
                    "check": str(ident.get("check") or ""),
                    "simulator": str(ident.get("simulator") or ""),
                    "reason": reason,
                    "log": str(rec["log"] or ""),
                }
            )
    return table


def exec_evaluate(step: Step, run: Run) -> dict[str, Any]:
    """KPI 7 verdict (stats.evaluate, count_at_least) and the per-NPU table."""
    from harness.kpis.common.executors import evaluate_kpi

    out = evaluate_kpi(run, KPI)
    table = npu_table(run)
    lines = ["| NPU | path | status | tier reached | check | simulator | reason |", "|---|---|---|---|---|---|---|"]
    lines += [
        "| "
        + " | ".join(t[k].replace("|", "/") for k in ("npu", "path", "status", "tier", "check", "simulator", "reason"))
        + " |"
        for t in table
    ]
    atomic_write_text(run.run_dir / "evaluations" / f"{KPI}-table.md", "\n".join(lines) + "\n")
    for t in table:
        run.console.print(f"    {t['npu']:10} {t['path']:34} {t['status']:8} [{t['tier']}] {t['reason'][:100]}")
    return {**out, "table": table}


def _image(step: Step, run: Run) -> dict[str, Any]:
    return exec_sim_image(step, run) if step.params.get("image") == SIM_IMAGE else exec_image(step, run)


def _build(step: Step, run: Run) -> dict[str, Any]:
    return exec_spike(step, run) if step.id == SPIKE_STEP else exec_build(step, run)


def _convert(step: Step, run: Run) -> dict[str, Any]:
    return exec_ethosu_compile(step, run) if step.id == ETHOSU_COMPILE_STEP else exec_convert(step, run)


def _measure(step: Step, run: Run) -> dict[str, Any]:
    if step.id == ETHOSU_FVP_STEP:
        return exec_ethosu_fvp(step, run)
    if step.id == "measure:Gemmini:all":
        return exec_all_tutorials(step, run)
    return exec_tutorial(step, run) if step.id.startswith("measure:Gemmini:") else exec_measure(step, run)


EXECUTORS: dict[str, Executor] = {
    "image": _image,
    "build": _build,
    "convert": _convert,
    "measure": _measure,
    "evaluate": exec_evaluate,
}
