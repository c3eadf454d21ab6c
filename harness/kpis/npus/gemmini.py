"""KPI 7, Gemmini on Spike: the gemmini-sim image, Spike with Gemmini built from its pinned source,
and the fork's Gemmini tutorials run on it.

The fork's Gemmini release is v0.7.0 (see kpis.toml, source gemmini); its functional model is the
esp-isa-sim fork of Spike at the commit v0.7.0's SPIKE.hash names. Spike is built the way v0.7.0's
scripts/build-spike.sh builds it: gemmini-rocc-tests' gemmini_params.h copied over the simulator's,
then configure, make, make install.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Final

from harness import payload
from harness.core.fsio import atomic_write_text
from harness.core.runner import Run
from harness.core.steps import Step
from harness.errors import Blocked, StepFailed
from harness.kpis.common.executors import container_for, docker_for
from harness.kpis.npus.names import GEMMINI_TUTORIALS, PAYLOAD_DIR, SIM_IMAGE, SPIKE_STEP, TUTORIAL_METRIC
from harness.kpis.npus.rows import KPI, _write, check_row
from harness.kpis.npus.rules import judge_gemmini_tutorial
from harness.kpis.npus.tvm import fork_env, fresh_work, run_on_fork, source_output
from harness.parsers.npu_sim import GemminiRun, parse_gemmini_run

PARAMS_FROM: Final = "include/gemmini_params.h"  # of gemmini-rocc-tests
PARAMS_TO: Final = "gemmini/gemmini_params.h"  # of esp-isa-sim


def exec_sim_image(step: Step, run: Run) -> dict[str, Any]:
    """gemmini-sim, built on the tvm-npu image this run uses, with the tool versions it records."""
    from harness.env.images import read_tool_versions
    from harness.kpis.common.executors import exec_image

    out = exec_image(step, run)
    versions = read_tool_versions(docker_for(run), out["id"])
    return {**out, "tool_versions": versions, "provenance": {**out["provenance"], "tool_versions": versions}}


def exec_spike(step: Step, run: Run) -> dict[str, Any]:
    """Spike with Gemmini (esp-isa-sim), built once per step key in the gemmini-sim image."""
    img = run.outputs.get(f"image:{SIM_IMAGE}")
    spike_src = source_output(run, "esp_isa_sim")
    rocc = source_output(run, "gemmini_rocc_tests")
    if img is None or spike_src is None or rocc is None:
        raise Blocked(
            f"{step.id}: the {SIM_IMAGE} image or the esp_isa_sim / gemmini_rocc_tests source is missing",
            "let those steps complete",
        )
    tree = run.cache_dir / "spike-gemmini" / step.key
    done = tree / ".ant-kpi-build.json"
    if done.is_file():
        return {**json.loads(done.read_text()), "reused": True}
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(spike_src["path"], tree, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    # As Gemmini v0.7.0's scripts/build-spike.sh: the simulator takes the parameters the programs use.
    shutil.copy2(Path(rocc["path"]) / PARAMS_FROM, tree / PARAMS_TO)
    log = run.log_path(step.id)
    with container_for(run, img["tag"], mounts={str(tree): "/spike"}, workdir="/spike") as c:
        rc = c.run(list(step.argv), cwd="/spike", log_path=log)
    if rc != 0:
        raise StepFailed(f"the Spike (esp-isa-sim) build exited {rc}", log=run.rel(log))
    binary = tree / "install" / "bin" / "spike"
    if not binary.is_file():
        raise StepFailed("the Spike build produced no install/bin/spike", log=run.rel(log))
    out = {
        "path": str(tree),
        "spike": str(binary),
        "source_commit": str(spike_src.get("commit", "")),
        "params_from": f"gemmini-rocc-tests {str(rocc.get('commit', ''))[:12]} {PARAMS_FROM}",
        "image": img["tag"],
        "log": run.rel(log),
    }
    atomic_write_text(done, json.dumps(out, indent=1))
    return {**out, "reused": False}


def spike_label(spike: dict[str, Any]) -> str:
    """The simulator a Gemmini row ran on, with the commit it was built from."""
    return f"Spike (esp-isa-sim {str(spike.get('source_commit', ''))[:8]}) --extension=gemmini"


TUTORIAL_CHECK: Final = "the program's element-by-element comparison with the TFLite reference, counted by the harness"


def _tier(passed: bool, facts: GemminiRun) -> str:
    """The furthest a tutorial got: passed, ran on Spike, compiled to a program, or none."""
    if passed:
        return "passed"
    if facts.spike_exit is not None:
        return "ran on simulator"
    return "compiled" if facts.facts.get("elf_sha256") else "none"


def exec_tutorial(step: Step, run: Run) -> dict[str, Any]:
    """measure:Gemmini:<tutorial>: one tutorial on Spike; one `passed` row at simulator fidelity."""
    build = run.outputs.get("build:tvm-fork")
    spike = run.outputs.get(SPIKE_STEP)
    img = run.outputs.get(f"image:{SIM_IMAGE}")
    if build is None or spike is None or img is None:
        raise Blocked(
            f"{step.id}: the fork build, Spike or the {SIM_IMAGE} image is missing",
            f"let build:tvm-fork, {SPIKE_STEP} and image:{SIM_IMAGE} complete",
        )
    if "Gemmini" in build.get("not_built", {}):
        raise Blocked(build["not_built"]["Gemmini"], "let the sources gemmini and gemmini_rocc_tests complete")
    work = fresh_work(run, "gemmini-runs", step.workload.removesuffix(".py"))
    log = run.raw_path(step.id, ".log")
    read_only = {
        spike["path"]: "/spike",
        str(payload.path("gemmini_tutorial.py")): f"{PAYLOAD_DIR}/gemmini_tutorial.py",
    }
    rc, text = run_on_fork(run, img["tag"], build, work, list(step.argv), log, read_only=read_only, env=fork_env())
    verdict = judge_gemmini_tutorial(text, rc)
    facts = parse_gemmini_run(text)
    simulator = spike_label(spike)
    row = check_row(
        run,
        step,
        passed=verdict.passed,
        build=build,
        image=img,
        metric=TUTORIAL_METRIC,
        workload=step.workload,
        argv=list(step.argv),
        log=run.rel(log),
        artefact_sha256=str(facts.facts.get("elf_sha256", "")),
        target_identity={"simulator": simulator, "check": TUTORIAL_CHECK, "tier": _tier(verdict.passed, facts)},
        note=f"fork tutorial on {simulator}: {verdict.reason}",
    )
    _write(run, [row])
    return {"log": str(log), "exit_status": rc, "passed": verdict.passed, "reason": verdict.reason}


# The fork's own words for a layer it does not vouch for (micro_gemmini_add.py's docstring).
_EXPERIMENTAL: Final = re.compile(r"This is an \*\*experimental\*\* layer", re.IGNORECASE)


def is_experimental(tutorial: Path) -> bool:
    """Whether the fork marks this tutorial's layer experimental (a missing file is not)."""
    try:
        return bool(_EXPERIMENTAL.search(tutorial.read_text(encoding="utf-8", errors="replace")))
    except OSError:
        return False


def exec_all_tutorials(step: Step, run: Run) -> dict[str, Any]:
    """measure:Gemmini:all: Gemmini's `passed` row, 1 only when every tutorial the fork does not mark
    experimental passed on Spike (the experimental ones run and are shown beside it)."""
    from harness.results.runs import collect

    df = collect(run.run_dir).filter(kpi=KPI).df
    df = df[(df["metric"] == TUTORIAL_METRIC) & (df["status"] == "ok")]
    results = {str(r["workload"]): float(r["value"]) >= 1.0 for r in df.to_dict("records")}
    wanted = [f"micro_gemmini_{t}.py" for t in GEMMINI_TUTORIALS]
    absent = [w for w in wanted if w not in results]
    if absent:
        raise Blocked(f"no result for {', '.join(absent)}", "let the measure:Gemmini:<tutorial> steps complete")
    build = run.outputs.get("build:tvm-fork") or {}
    experimental = [w for w in wanted if is_experimental(Path(str(build.get("path", ""))) / "gallery" / "tutorial" / w)]
    required = [w for w in wanted if w not in experimental]
    failed = [w for w in required if not results[w]]
    passed = bool(required) and not failed
    spike = run.outputs.get(SPIKE_STEP) or {}
    simulator = spike_label(spike)
    reason = (
        f"all {len(required)} download-free tutorials the fork does not mark experimental passed on {simulator}"
        if passed
        else f"{len(failed)} of {len(required)} tutorials failed on {simulator}: {', '.join(failed) or 'none to run'}"
    )
    shown = ", ".join(f"{w} {'passed' if results[w] else 'failed'}" for w in experimental)
    if experimental:
        reason += f"; marked experimental by the fork, run and shown, not required: {shown}"
    log = run.raw_path(step.id, ".log")
    atomic_write_text(log, "\n".join(f"{w}: {'passed' if results[w] else 'failed'}" for w in wanted) + "\n")
    check = f"the fork's tutorials {', '.join(GEMMINI_TUTORIALS)}, each by {TUTORIAL_CHECK}; " + (
        f"required: {', '.join(required)}; experimental by the fork's word, not required: {shown}"
        if experimental
        else "all required"
    )
    row = check_row(
        run,
        step,
        passed=passed,
        build=build,
        image=run.outputs.get(f"image:{SIM_IMAGE}") or {},
        workload="gemmini tutorials",
        argv=list(step.argv),
        log=run.rel(log),
        target_identity={"simulator": simulator, "check": check, "tier": "passed" if passed else "ran on simulator"},
        note=f"fork tutorials on Spike: {reason}",
    )
    _write(run, [row])
    return {"passed": passed, "reason": reason, "tutorials": results}
