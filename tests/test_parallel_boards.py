"""Boards measured in parallel: one worker per board, this machine's steps one at a time.

The concurrency is shown by rendezvous, not by timing: each board's measurement waits for the
other board's to have started, which can only happen when both run at the same time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from harness.core.manifest import load_manifest
from harness.core.plan import KpiPlan
from harness.core.runner import Run, StepRunner, open_run, plan_lanes
from harness.core.steps import Step, step_key
from harness.errors import Blocked

ROOT = Path(__file__).resolve().parent.parent
M = load_manifest(ROOT / "kpis.toml")
BOARDS = {"rpi2": "pi-a", "arm64": "tx2-b"}
RENDEZVOUS_S = 60.0


def _step(sid: str, kind: str, target: str = "", where: str = "host", depends: tuple[str, ...] = ()) -> Step:
    return Step(
        id=sid,
        kpi="boards",
        kind=kind,  # type: ignore[arg-type]
        where=where,  # type: ignore[arg-type]
        target=target,
        description=sid,
        depends=depends,
        key=step_key(sid),
    )


def _plan() -> KpiPlan:
    """KPI 6's shape over two boards: per target build (here), deploy + measure (board), parse."""
    steps: list[Step] = []
    for t in ("rpi2", "arm64"):
        steps += [
            _step(f"build:ant:{t}", "build", t, "image"),
            _step(f"deploy:{t}", "deploy", t, "board", depends=(f"build:ant:{t}",)),
            _step(f"measure:streaming:{t}", "measure", t, "board", depends=(f"deploy:{t}",)),
            _step(f"parse:{t}", "parse", t, "host", depends=(f"measure:streaming:{t}",)),
        ]
    steps.append(_step("evaluate", "evaluate", depends=("parse:rpi2", "parse:arm64")))
    return KpiPlan(kpi=M.kpi("boards"), mode="measure", targets=("rpi2", "arm64"), steps=tuple(steps))


def _run(tmp_path: Path) -> Run:
    return open_run(
        manifest=M, project_root=ROOT, mode="measure", runs_dir=tmp_path / "runs", run_id="r", cache_dir=tmp_path / "c"
    )


def test_a_board_s_deploy_measure_and_parse_are_its_lane_builds_and_the_evaluation_stay_here() -> None:
    lanes = plan_lanes(_plan().steps, BOARDS)
    assert [s.id for s in lanes[""]] == ["build:ant:rpi2", "build:ant:arm64", "evaluate"]
    assert [s.id for s in lanes["pi-a"]] == ["deploy:rpi2", "measure:streaming:rpi2", "parse:rpi2"]
    assert [s.id for s in lanes["tx2-b"]] == ["deploy:arm64", "measure:streaming:arm64", "parse:arm64"]
    # A target measured here (no board) keeps every step on this machine's lane.
    assert set(plan_lanes(_plan().steps, {"rpi2": "pi-a"})) == {"", "pi-a"}


def test_two_boards_measure_at_the_same_time_and_the_evaluation_waits_for_both(tmp_path: Path) -> None:
    started = {t: threading.Event() for t in BOARDS}
    order: list[str] = []
    lock = threading.Lock()

    def work(step: Step, run: Run) -> dict[str, Any]:
        with lock:
            order.append(step.id)
        if step.kind == "measure":
            started[step.target].set()
            other = next(t for t in BOARDS if t != step.target)
            # Returns True only if the other board's measurement runs at the same time.
            return {"met": started[other].wait(RENDEZVOUS_S), "thread": threading.current_thread().name}
        return {"thread": threading.current_thread().name}

    kinds = ("build", "deploy", "measure", "parse", "evaluate")
    run = _run(tmp_path)
    states = StepRunner(run, dict.fromkeys(kinds, work), lanes=BOARDS).execute(_plan())
    assert all(st.status == "ok" for st in states.values())
    assert run.outputs["measure:streaming:rpi2"]["met"] and run.outputs["measure:streaming:arm64"]["met"]
    assert run.outputs["measure:streaming:rpi2"]["thread"] == "board-pi-a"
    assert run.outputs["measure:streaming:arm64"]["thread"] == "board-tx2-b"
    assert run.outputs["build:ant:arm64"]["thread"] == threading.current_thread().name
    assert order[-1] == "evaluate"
    assert list(states) == [s.id for s in _plan().steps]  # states in plan order, whatever ran first


def test_one_worker_runs_every_step_in_plan_order(tmp_path: Path) -> None:
    order: list[str] = []

    def work(step: Step, run: Run) -> dict[str, Any]:
        order.append(step.id)
        return {"thread": threading.current_thread().name}

    kinds = ("build", "deploy", "measure", "parse", "evaluate")
    run = _run(tmp_path)
    StepRunner(run, dict.fromkeys(kinds, work), lanes=BOARDS, board_workers=1).execute(_plan())
    assert order == [s.id for s in _plan().steps]
    assert {o["thread"] for o in run.outputs.values()} == {threading.current_thread().name}


def test_a_board_that_goes_away_blocks_its_own_rows_and_the_other_board_goes_on(tmp_path: Path) -> None:
    def work(step: Step, run: Run) -> dict[str, Any]:
        if step.target == "rpi2" and step.kind == "deploy":
            raise Blocked("board pi-a unreachable (connection refused)", "check the board")
        return {}

    kinds = ("build", "deploy", "measure", "parse", "evaluate")
    states = StepRunner(_run(tmp_path), dict.fromkeys(kinds, work), lanes=BOARDS).execute(_plan())
    assert states["deploy:rpi2"].status == "blocked"
    assert states["measure:streaming:rpi2"].status == "blocked"
    assert states["measure:streaming:rpi2"].cause == "deploy:rpi2"
    assert states["measure:streaming:arm64"].status == "ok" and states["parse:arm64"].status == "ok"
    assert states["evaluate"].status == "blocked"  # it depends on parse:rpi2, which depends on the lost board


def test_two_board_threads_appending_rows_leave_every_line_whole(tmp_path: Path) -> None:
    from harness.results.journal import append_row_journal
    from harness.results.rows import Row
    from harness.results.store import Results

    def row(i: int, target: str) -> Row:
        return Row(
            run_id="r",
            kpi="boards",
            metric="passed",
            variant="ant",
            workload="streaming",
            target=target,
            fidelity="board",
            mode="measure",
            repeat=i,
            value=1.0,
            unit="count",
            status="ok",
            note="x" * 2000,  # long lines: a torn write would show
        )

    def writer(target: str) -> None:
        for i in range(100):
            append_row_journal(tmp_path, row(i, target))

    threads = [threading.Thread(target=writer, args=(t,)) for t in BOARDS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = Results.from_journal(tmp_path).rows()
    assert len(rows) == 200
    assert sorted((r.target, r.repeat) for r in rows) == sorted((t, i) for t in BOARDS for i in range(100))
