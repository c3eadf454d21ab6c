"""Parsers of ANT's KPI 2 and KPI 6 output, on hand-written fixtures of the documented formats."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.errors import BadInput
from harness.parsers import resourcebench, streaming

FIX = Path(__file__).resolve().parent / "fixtures" / "ant"


def _read(name: str) -> str:
    return (FIX / name).read_text()


def test_resourcebench_reads_every_result_line_and_skips_runtime_chatter() -> None:
    samples = resourcebench.parse(FIX / "legacy_persend.handwritten.log")
    assert [s.index for s in samples] == list(range(1, 11))
    assert {s.mode for s in samples} == {"Legacy"}
    assert [s.ms for s in samples][:3] == [9.0, 4.0, 5.0]
    assert samples[0].line == 6


def test_resourcebench_drops_the_first_sample_as_warm_up() -> None:
    kept = resourcebench.without_warmup(resourcebench.parse(FIX / "legacy_persend.handwritten.log"))
    assert len(kept) == 9
    assert kept[0].index == 2


def test_resourcebench_keeps_nan_and_negative_values_and_tolerates_surrounding_blanks() -> None:
    samples = resourcebench.parse(FIX / "resource_nan.handwritten.log")
    assert [s.index for s in samples] == [1, 2, 3, 4, 5]
    assert math.isnan(samples[1].ms)
    assert samples[4].ms == -1.0


def test_resourcebench_reads_time_since_load_figures_as_printed() -> None:
    samples = resourcebench.parse(FIX / "resource_raw.handwritten.log")
    assert [s.ms for s in samples] == [4016.0, 6019.0, 8021.0, 10020.0]
    assert {s.mode for s in samples} == {"Resource API"}


def test_resourcebench_rejects_a_log_mixing_both_apis() -> None:
    text = "(1)Legacy mode elapsed time: 3ms\n(1)Resource API mode elapsed time: 4ms\n"
    with pytest.raises(BadInput, match="both modes"):
        resourcebench.parse_text(text)


def test_resourcebench_ignores_lines_that_only_look_alike() -> None:
    text = "(1)Legacy mode elapsed time: 3 ms\nx(2)Legacy mode elapsed time: 3ms\n(3)Legacy mode elapsed time: 3.5ms\n"
    assert resourcebench.parse_text(text) == []


def test_resourcebench_measurements_are_rtt_rows_after_warm_up() -> None:
    rows = resourcebench.measurements(FIX / "legacy_persend.handwritten.log")
    assert len(rows) == 9
    assert {r["metric"] for r in rows} == {"rtt"}
    assert rows[0]["note"].startswith("sample 2")


def test_resourcebench_measurements_of_a_log_without_results_is_bad_input(tmp_path: Path) -> None:
    p = tmp_path / "empty.log"
    p.write_text("onInitialize\nonStop\n")
    with pytest.raises(BadInput, match="no"):
        resourcebench.measurements(p)


def test_streaming_pass_needs_ready_line_clean_log_client_frames_and_final_pss_line() -> None:
    c = streaming.check(_read("streaming_pass.handwritten.log"), 0)
    assert c.passed, c.reasons
    assert c.address == "172.17.0.2:5000"
    assert c.pss_kb == 21670.50
    assert c.summary().startswith("pass")


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
    log = _read("streaming_pass.handwritten.log")
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
    log = _read("streaming_pass.handwritten.log").replace("21670.50 KB\n", "21670.50 KB\nonStop\n")
    assert not streaming.check(log, 0).passed


def test_streaming_ready_address_and_client_exit_code() -> None:
    assert streaming.ready_address(_read("streaming_pass.handwritten.log")) == ("172.17.0.2", 5000)
    assert streaming.ready_address(_read("streaming_no_ready.handwritten.log")) is None
    assert streaming.client_exit_code(_read("client_ok.handwritten.log")) == 0
    assert streaming.client_exit_code("no trailer\n") is None


def test_streaming_measurements_read_the_client_log_beside_the_app_log(tmp_path: Path) -> None:
    app = tmp_path / "measure_streaming.log"
    app.write_text(_read("streaming_pass.handwritten.log"))
    assert streaming.measurements(app)[0]["value"] == 0.0  # no client log: no evidence of frames
    (tmp_path / "measure_streaming.client.log").write_text(_read("client_ok.handwritten.log"))
    rows = streaming.measurements(app)
    assert rows == [{"metric": "passed", "value": 1.0, "unit": "count", "note": rows[0]["note"]}]
