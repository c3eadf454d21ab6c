"""The step runner: resume by key, blocked dependencies, one lock per runs directory."""

from __future__ import annotations

import errno
import multiprocessing
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness.core.fsio import LockBusy, atomic_write_text, exclusive_lock
from harness.core.manifest import load_manifest
from harness.core.plan import KpiPlan
from harness.core.runner import Run, StepRunner, open_run
from harness.core.steps import Step, step_key
from harness.errors import BadInput, Blocked, StepFailed
from harness.kpis.common.executors import _check_output_arch

ROOT = Path(__file__).resolve().parent.parent
M = load_manifest(ROOT / "kpis.toml")


def _plan(*steps: Step) -> KpiPlan:
    return KpiPlan(kpi=M.kpi("js_memory"), mode="smoke", targets=("x86_64",), steps=steps)


def _step(sid: str, kind: str = "measure", depends: tuple[str, ...] = (), salt: str = "") -> Step:
    return Step(
        id=sid,
        kpi="js_memory",
        kind=kind,
        where="host",
        description=sid,  # type: ignore[arg-type]
        depends=depends,
        key=step_key(sid, salt),
    )


def _run(tmp_path: Path, run_id: str = "r1") -> Run:
    return open_run(
        manifest=M,
        project_root=ROOT,
        mode="smoke",
        runs_dir=tmp_path / "runs",
        run_id=run_id,
        cache_dir=tmp_path / "cache",
    )


def test_completed_steps_are_skipped_on_resume_and_redone_when_their_key_changes(tmp_path: Path) -> None:
    calls: list[str] = []

    def work(step: Step, run: Run) -> dict[str, Any]:
        calls.append(step.id)
        return {"n": len(calls)}

    plan = _plan(_step("a"), _step("b", depends=("a",)))
    StepRunner(_run(tmp_path), {"measure": work}).execute(plan)
    assert calls == ["a", "b"]
    run = _run(tmp_path)
    StepRunner(run, {"measure": work}).execute(plan)
    assert calls == ["a", "b"]
    assert run.outputs["b"] == {"n": 2}  # outputs of skipped steps are restored for later steps
    StepRunner(_run(tmp_path), {"measure": work}).execute(_plan(_step("a"), _step("b", depends=("a",), salt="new")))
    assert calls == ["a", "b", "b"]


def test_a_blocked_step_blocks_its_dependants_but_not_independent_steps(tmp_path: Path) -> None:
    def work(step: Step, run: Run) -> dict[str, Any]:
        if step.id == "a":
            raise Blocked("no board", "add one to boards.toml")
        if step.id == "c":
            raise StepFailed("benchmark crashed", log="logs/c.log")
        return {}

    seen: list[tuple[str, str]] = []
    states = StepRunner(
        _run(tmp_path), {"measure": work}, on_blocked=lambda s, r, st: seen.append((s.id, st.status))
    ).execute(_plan(_step("a"), _step("b", depends=("a",)), _step("c"), _step("d")))
    assert {k: v.status for k, v in states.items()} == {"a": "blocked", "b": "blocked", "c": "failed", "d": "ok"}
    assert "depends on a" in states["b"].message
    assert "fix: add one to boards.toml" in states["a"].message
    assert seen == [("a", "blocked"), ("b", "blocked"), ("c", "failed")]


def test_a_blocked_reason_is_printed_once_and_its_dependants_refer_to_it(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    def work(step: Step, run: Run) -> dict[str, Any]:
        raise Blocked("no TFLite export of the model exists (a long reason)", "export it by hand")

    run = _run(tmp_path)
    out = io.StringIO()
    run.console = Console(file=out, width=400, emoji=False)
    chain = (_step("a"), _step("b", depends=("a",)), _step("c", depends=("b",)), _step("d", depends=("a",)))
    states = StepRunner(run, {"measure": work}).execute(_plan(*chain))
    printed = out.getvalue()
    assert printed.count("a long reason") == 1  # the cause, once
    assert "BLOCKED b: depends on a (blocked, see above)" in printed
    assert "BLOCKED c: depends on a (blocked, see above)" in printed  # the cause, not the chain
    assert {states[x].cause for x in "bcd"} == {"a"} and states["a"].cause == ""
    # The state (and so a dependant's row) still carries the reason and its fix, once.
    reason = "no TFLite export of the model exists (a long reason) — fix: export it by hand"
    assert states["c"].message == f"depends on a: {reason}"


def test_a_step_ordered_after_a_blocked_one_still_runs_and_sees_what_exists(tmp_path: Path) -> None:
    def work(step: Step, run: Run) -> dict[str, Any]:
        if step.id == "fetch":
            raise Blocked("no network", "give a local copy")
        return {"saw_fetch": "fetch" in run.outputs, "saw_convert": "convert" in run.outputs}

    deploy = Step(
        id="deploy",
        kpi="js_memory",
        kind="measure",
        where="host",
        description="deploy",  # type: ignore[arg-type]
        after=("fetch", "convert"),
        key=step_key("deploy"),
    )
    states = StepRunner(_run(tmp_path), {"measure": work}).execute(_plan(_step("fetch"), _step("convert"), deploy))
    assert {k: v.status for k, v in states.items()} == {"fetch": "blocked", "convert": "ok", "deploy": "ok"}
    assert states["deploy"].outputs == {"saw_fetch": False, "saw_convert": True}


def test_ml_deploy_waits_for_the_baseline_and_the_conversion_without_being_blocked_by_them() -> None:
    from harness.kpis import plan_kpi

    plan = plan_kpi(M, M.kpi("ml_latency"), mode="smoke", targets=("x86_64",))
    dep = next(s for s in plan.steps if s.id == "deploy:x86_64")
    assert "fetch:baseline" not in dep.depends
    assert not dep.depends
    assert set(dep.after) == {"fetch:baseline", "source:ant:test/mlbench", "convert:tflite"} and dep.always
    measured = {s.variant for s in plan.steps if s.kind == "measure"}
    assert measured == {"mobilenet_v2_1.0_224", "mbv1_0.9_v4u", "mbv1_0.9_v4u.harness"}


def test_a_step_without_an_executor_is_blocked_not_faked(tmp_path: Path) -> None:
    states = StepRunner(_run(tmp_path), {}).execute(_plan(_step("x", kind="train")))
    assert states["x"].status == "blocked"
    assert "cannot run it yet" in states["x"].message


def _hold_lock(path: str, ready: Any, release: Any) -> None:
    with exclusive_lock(path):
        ready.set()
        release.wait(10)


def test_a_second_holder_is_refused_and_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold_lock, args=(str(lock), ready, release))
    p.start()
    assert ready.wait(10)
    with pytest.raises(LockBusy, match="another run"), exclusive_lock(lock):
        pass
    p.kill()  # SIGKILL: no cleanup code runs, the kernel drops the flock
    p.join()
    with exclusive_lock(lock):
        pass


def test_a_full_disk_keeps_the_previous_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "results.csv"
    atomic_write_text(target, "old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(BadInput, match=r"cannot write .*No space left on device.*previous contents kept"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_build_output_for_the_wrong_architecture_is_a_failed_step(tmp_path: Path) -> None:
    src = tmp_path / "h.c"
    src.write_text("int main(void){return 0;}\n")
    out = tmp_path / "h"
    subprocess.run(["gcc", "-o", str(out), str(src)], check=True)
    _check_output_arch(out, "x86_64", "build h", "logs/h.log")
    with pytest.raises(StepFailed, match="not an armhf binary"):
        _check_output_arch(out, "armhf", "build h", "logs/h.log")


def test_a_measurement_records_the_machine_load_and_one_under_load_is_flagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.core import runner as runner_mod
    from harness.report.text import load_lines

    readings = iter([[0.4, 0.5, 0.6], [0.7, 0.5, 0.6], [3.1, 1.2, 0.8], [3.6, 1.5, 0.9]])
    monkeypatch.setattr(runner_mod, "machine_load", lambda: next(readings))  # two measurements, quiet then busy
    monkeypatch.setattr(runner_mod.os, "cpu_count", lambda: 2)
    run = _run(tmp_path)
    states = StepRunner(run, {"measure": lambda s, r: {}, "build": lambda s, r: {}}).execute(
        _plan(_step("build:x", kind="build"), _step("quiet"), _step("busy"))
    )
    assert states["build:x"].load == {}  # only measurements carry it
    assert states["quiet"].load == {"before": [0.4, 0.5, 0.6], "after": [0.7, 0.5, 0.6], "cpus": 2}
    assert not runner_mod.under_load(states["quiet"].load) and runner_mod.under_load(states["busy"].load)
    # The report reads it back from the stored states and names the step.
    assert load_lines(run.run_dir, "js_memory") == ["busy: 1-min load 3.1 before, 3.6 after, on 2 CPUs"]


def test_the_real_load_reading_is_three_averages() -> None:
    from harness.core.runner import machine_load

    load = machine_load()
    assert len(load) == 3 and all(x >= 0 for x in load)


def test_a_board_measurement_records_no_load_of_this_machine(tmp_path: Path) -> None:
    import dataclasses

    board = dataclasses.replace(_step("on-board"), where="board")
    states = StepRunner(_run(tmp_path), {"measure": lambda s, r: {}}).execute(_plan(board, _step("here")))
    assert states["on-board"].load == {}  # the board's own load is not this machine's
    assert set(states["here"].load) == {"before", "after", "cpus"}
