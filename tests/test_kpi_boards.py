"""KPI 6 pieces that need no upstream code: the derived streaming.js, the client, rows and the evaluation."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from harness.core.manifest import load_manifest
from harness.core.runner import Run, open_run
from harness.core.steps import Step
from harness.errors import Blocked, StepFailed
from harness.kpis import plan_kpi
from harness.kpis.streaming_boards.execute import client_argv, derive_streaming, rows_for
from harness.results.journal import append_row_journal
from harness.results.judgement import Verdict
from harness.results.runs import collect
from harness.results.verdicts import evaluate

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "ant"
M = load_manifest(ROOT / "kpis.toml")
STANDIN = (FIX / "streaming_standin.js").read_text()


def test_the_derived_copy_sets_the_source_type_and_leaves_the_comparisons_alone() -> None:
    out = derive_streaming(STANDIN, "test")
    assert "settings.sourceType = 'test';" in out
    assert "if (settings.sourceType == 'nvidia')" in out
    assert "'/dev/video0';" in derive_streaming(STANDIN, "/dev/video0")


def test_the_derived_copy_refuses_a_changed_script_or_a_source_type_that_is_code() -> None:
    with pytest.raises(StepFailed, match="found 0"):
        derive_streaming("var settings = {};\n", "test")
    with pytest.raises(StepFailed, match="found 2"):
        derive_streaming(STANDIN + STANDIN, "test")
    with pytest.raises(StepFailed, match="plain name"):
        derive_streaming(STANDIN, "x'; evil(); '")


def test_the_derived_copy_serves_on_the_board_s_interface() -> None:
    text = "settings.sourceType = 'nvidia';\nsettings.my_ip_address = ant.companion.getMyIPAddress('eth0');\n"
    out = derive_streaming(text, "rpi", interface="wlan0")
    assert "getMyIPAddress('wlan0')" in out and "eth0" not in out
    assert derive_streaming(text, "rpi") == text.replace("'nvidia'", "'rpi'")  # eth0 is upstream's own
    with pytest.raises(StepFailed, match="interface name"):
        derive_streaming(text, "rpi", interface="eth0'); evil(); ('")
    with pytest.raises(StepFailed, match="getMyIPAddress"):
        derive_streaming("settings.sourceType = 'x';\n", "rpi", interface="wlan0")


def test_the_client_stops_after_n_buffers_and_is_bounded_by_a_timeout() -> None:
    argv = client_argv("172.17.0.2", 5000, frames=30, timeout_s=7)
    assert argv[:3] == ["timeout", "7", "gst-launch-1.0"]
    assert "host=172.17.0.2" in argv and "port=5000" in argv
    assert "eos-after=30" in argv and argv[-1] == "fakesink"


def _run(tmp_path: Path) -> Run:
    return open_run(manifest=M, project_root=ROOT, mode="smoke", runs_dir=tmp_path / "runs", run_id="t",
                    cache_dir=tmp_path / "cache")  # fmt: skip


def _measure_step(run: Run) -> Step:
    plan = plan_kpi(M, M.kpi("boards"), mode="smoke", targets=("x86_64",))
    return next(s for s in plan.steps if s.kind == "measure")


@pytest.mark.parametrize(
    ("log", "client", "passed"),
    [
        ("streaming_pass.x86_64.captured.log", 0, 1.0),
        ("streaming_pass.x86_64.captured.log", 1, 0.0),
        ("streaming_critical.handwritten.log", 0, 0.0),
        ("streaming_no_ready.handwritten.log", None, 0.0),
    ],
)
def test_one_passed_row_per_run_with_the_app_log_as_evidence(
    tmp_path: Path, log: str, client: int | None, passed: float
) -> None:
    run = _run(tmp_path)
    app_log = run.run_dir / "raw" / "app.log"
    app_log.parent.mkdir(parents=True)
    shutil.copy(FIX / log, app_log)
    step = _measure_step(run)
    rows = rows_for(run, step, {"app_log": str(app_log), "client_exit": client, "started_at": time.time()})
    assert len(rows) == 1
    r = rows[0]
    assert (r.metric, r.value, r.status, r.fidelity, r.target) == ("passed", passed, "ok", "host", "x86_64")
    assert r.log == "raw/app.log"
    assert r.note.startswith("pass" if passed else "fail")


def test_a_smoke_pass_is_shown_but_never_counts_toward_the_nine_boards(tmp_path: Path) -> None:
    run = _run(tmp_path)
    app_log = run.run_dir / "raw" / "app.log"
    app_log.parent.mkdir(parents=True)
    shutil.copy(FIX / "streaming_pass.x86_64.captured.log", app_log)
    for row in rows_for(run, _measure_step(run), {"app_log": str(app_log), "client_exit": 0, "started_at": 0.0}):
        append_row_journal(run.run_dir, row)
    ev = evaluate(M.kpi("boards"), collect(run.run_dir))
    assert ev.verdict == Verdict.NO_VERDICT
    assert "x86_64" in ev.reason
    assert ev.with_evidence == ()


def test_arm_builds_end_blocked_naming_what_the_image_lacks(tmp_path: Path) -> None:
    from harness.kpis.common.ant_build import _check_image_supports

    run = _run(tmp_path)
    image = {"tag": "ant-kpi/ant-build:x", "provenance": {"tool_versions": {"gcc": "12.2.0"}}}
    with pytest.raises(Blocked, match="aarch64-linux-gnu-gcc") as e:
        _check_image_supports(run, "arm64", image)
    assert "libtar" in str(e.value)
    with pytest.raises(Blocked, match="armhf"):
        _check_image_supports(run, "rpi2", image)
    _check_image_supports(run, "x86_64", image)
    _check_image_supports(run, "arm64", {"provenance": {"tool_versions": {"aarch64-linux-gnu-gcc": "12.2.0"}}})


@pytest.mark.parametrize(("source", "marked"), [("test", True), ("rpi", False)])
def test_a_pass_on_the_test_pattern_says_it_passed_without_a_camera(tmp_path: Path, source: str, marked: bool) -> None:
    from harness.results.counts import not_counted_reason

    run = _run(tmp_path)
    app_log = run.run_dir / "raw" / "app.log"
    app_log.parent.mkdir(parents=True)
    shutil.copy(FIX / "streaming_pass.x86_64.captured.log", app_log)
    outputs = {"app_log": str(app_log), "client_exit": 0, "started_at": time.time(), "source_type": source}
    (r,) = rows_for(run, _measure_step(run), outputs)
    assert r.value == 1.0
    reason = not_counted_reason({"note": r.note, "fidelity": "board", "target_identity": "{}"})
    assert reason.startswith("passed without a camera") is marked
