"""Parsers of ANT's KPI 2 and KPI 6 output: on output captured from the harness's own runs of the real
scripts (`*.captured.*`), and on hand-written fixtures only for cases no run here can produce."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from harness.errors import BadInput
from harness.parsers import resourcebench, streaming

FIX = Path(__file__).resolve().parent / "fixtures" / "ant"


def _read(name: str) -> str:
    return (FIX / name).read_text()


def test_resourcebench_reads_every_result_line_and_skips_runtime_chatter() -> None:
    # A per-send legacy session captured on x86_64 (ANT at 223a9ea3, the loopback companion).
    log = FIX / "legacy_persend.x86_64.captured.log"
    samples = resourcebench.parse(log)
    assert [s.index for s in samples] == list(range(1, 11))
    assert {s.mode for s in samples} == {"Legacy"}
    lines = log.read_text().splitlines()
    assert all(lines[s.line - 1].startswith(f"({s.index})Legacy mode elapsed time: {s.ms:g}ms") for s in samples)
    # The armhf build under QEMU user mode, captured the same way.
    arm = resourcebench.parse(FIX / "legacy_persend.armhf-qemu.captured.log")
    assert [s.index for s in arm] == list(range(1, 11)) and {s.mode for s in arm} == {"Legacy"}
    per_send = resourcebench.parse(FIX / "resource_persend.x86_64.captured.log")
    assert {s.mode for s in per_send} == {"Resource API"} and len(per_send) == 10
    assert all(0 < s.ms < 100 for s in per_send)  # per-send round trips, not time since load


def test_resourcebench_drops_the_first_sample_as_warm_up() -> None:
    kept = resourcebench.without_warmup(resourcebench.parse(FIX / "legacy_persend.x86_64.captured.log"))
    assert len(kept) == 9
    assert kept[0].index == 2


def test_resourcebench_keeps_nan_and_negative_values_and_tolerates_surrounding_blanks() -> None:
    samples = resourcebench.parse(FIX / "resource_nan.handwritten.log")
    assert [s.index for s in samples] == [1, 2, 3, 4, 5]
    assert math.isnan(samples[1].ms)
    assert samples[4].ms == -1.0


def test_resourcebench_reads_time_since_load_figures_as_printed() -> None:
    # The upstream-stamped resource-api.js, captured: time since load, ≈ 2000·n ms + a round trip.
    samples = resourcebench.parse(FIX / "resource_raw.x86_64.captured.log")
    assert [s.ms for s in samples][:3] == [4014.0, 6017.0, 8019.0]
    assert {s.mode for s in samples} == {"Resource API"} and len(samples) == 10
    steps = [b.ms - a.ms for a, b in itertools.pairwise(samples)]
    assert all(1990 < d < 2100 for d in steps)


def test_resourcebench_rejects_a_log_mixing_both_apis() -> None:
    text = "(1)Legacy mode elapsed time: 3ms\n(1)Resource API mode elapsed time: 4ms\n"
    with pytest.raises(BadInput, match="both modes"):
        resourcebench.parse_text(text)


def test_resourcebench_ignores_lines_that_only_look_alike() -> None:
    text = "(1)Legacy mode elapsed time: 3 ms\nx(2)Legacy mode elapsed time: 3ms\n(3)Legacy mode elapsed time: 3.5ms\n"
    assert resourcebench.parse_text(text) == []


def test_resourcebench_measurements_are_rtt_rows_after_warm_up() -> None:
    rows = resourcebench.measurements(FIX / "legacy_persend.x86_64.captured.log")
    assert len(rows) == 9
    assert {r["metric"] for r in rows} == {"rtt"}
    assert rows[0]["note"].startswith("sample 2")


def test_resourcebench_measurements_of_a_log_without_results_is_bad_input(tmp_path: Path) -> None:
    p = tmp_path / "empty.log"
    p.write_text("onInitialize\nonStop\n")
    with pytest.raises(BadInput, match="no"):
        resourcebench.measurements(p)


def test_streaming_pass_needs_ready_line_clean_log_client_frames_and_final_pss_line() -> None:
    # streaming.js with videotestsrc, captured from the harness's x86_64 run (ANT 223a9ea3 in ant-build).
    c = streaming.check(_read("streaming_pass.x86_64.captured.log"), 0)
    assert c.passed, c.reasons
    assert c.address == "172.17.0.2:5000"
    assert c.pss_kb == 22802.30
    assert c.summary().startswith("pass")
    # The armhf build under QEMU user mode, captured the same way: the same pass rule holds.
    arm = streaming.check(_read("streaming_pass.armhf-qemu.captured.log"), 0)
    assert arm.passed, arm.reasons
    assert arm.pss_kb == 70970.40


def test_streaming_critical_lines_fail_even_with_a_ready_line_and_client_frames() -> None:
    c = streaming.check(_read("streaming_critical.handwritten.log"), 0)
    assert not c.passed
    assert c.pipeline_ready
    assert len(c.errors) == 2
    assert any("GStreamer error" in r for r in c.reasons)


def test_streaming_element_error_fails() -> None:
    c = streaming.check(_read("streaming_v4l2_error.handwritten.log"), 0)
    assert not c.passed
    assert "v4l2src0" in c.errors[0]


def test_streaming_without_client_frames_fails() -> None:
    log = _read("streaming_pass.x86_64.captured.log")
    refused = streaming.client_exit_code(_read("client_refused.handwritten.log"))
    assert refused == 1
    c = streaming.check(log, refused)
    assert not c.passed
    assert any("client exited 1" in r for r in c.reasons)
    assert not streaming.check(log, None).passed


def test_streaming_without_ready_line_fails_with_every_missing_criterion_named() -> None:
    c = streaming.check(_read("streaming_no_ready.handwritten.log"), None)
    assert not c.passed
    assert not c.pipeline_ready
    text = "; ".join(c.reasons)
    assert "Pipeline ready" in text
    assert "no GDP client" in text
    assert "NNN.NN KB" in text


def test_streaming_final_line_must_be_the_pss_line() -> None:
    log = _read("streaming_pass.x86_64.captured.log").replace("22802.30 KB\n", "22802.30 KB\nonStop\n")
    assert not streaming.check(log, 0).passed


def test_streaming_ready_address_and_client_exit_code() -> None:
    assert streaming.ready_address(_read("streaming_pass.x86_64.captured.log")) == ("172.17.0.2", 5000)
    assert streaming.ready_address(_read("streaming_no_ready.handwritten.log")) is None
    assert streaming.client_exit_code(_read("client_ok.x86_64.captured.log")) == 0
    assert streaming.client_exit_code("no trailer\n") is None


def test_streaming_measurements_read_the_client_log_beside_the_app_log(tmp_path: Path) -> None:
    app = tmp_path / "measure_streaming.log"
    app.write_text(_read("streaming_pass.x86_64.captured.log"))
    assert streaming.measurements(app)[0]["value"] == 0.0  # no client log: no evidence of frames
    (tmp_path / "measure_streaming.client.log").write_text(_read("client_ok.x86_64.captured.log"))
    rows = streaming.measurements(app)
    assert rows == [{"metric": "passed", "value": 1.0, "unit": "count", "note": rows[0]["note"]}]


def test_streaming_names_the_runtimes_own_crash_under_qemu_armhf() -> None:
    # Captured from the harness's armhf run under QEMU with two busy loops beside it (1 of 3 such
    # runs; 0 of 7 quiet runs): ANT's runtime stops on a JerryScript assertion after "GDBus server
    # is not set!", before the pipeline is ready.
    c = streaming.check(_read("streaming_ice.armhf-qemu.captured.log"), None)
    assert not c.passed and not c.pipeline_ready
    assert c.reasons[0].startswith(
        "the runtime stopped on a JerryScript internal assertion (ICE: Assertion 'lit_is_valid_cesu8_string"
    )
    assert "no 'Pipeline ready!' line" in c.reasons
