"""Parsers of the ML KPIs: TFLite benchmark_model output (every format version) and ADMM_baseline logs."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import BadInput
from harness.parsers import admm, benchmark_model
from harness.parsers.admm import parse_admm_text
from harness.parsers.benchmark_model import parse_benchmark_text
from harness.payload.litert_bench import RunStats

FIXTURES = Path(__file__).parent / "fixtures" / "ml"
GOLDEN = sorted(FIXTURES.glob("*.expected.json"))


def _fixture_text(expected: Path) -> tuple[Path, str]:
    txt = expected.with_name(expected.name.removesuffix(".expected.json") + ".txt")
    return txt, txt.read_text(encoding="utf-8")


def _jsonable(obj: Any) -> Any:
    # asdict keeps tuples; the golden files hold JSON lists.
    return json.loads(json.dumps(obj))


def test_every_ml_fixture_has_a_golden_file() -> None:
    texts = sorted(FIXTURES.glob("*.txt"))
    assert texts, "no fixtures"
    for t in texts:
        assert t.with_name(t.name.removesuffix(".txt") + ".expected.json").is_file(), t.name
    assert all(".captured." in t.name or ".handwritten." in t.name for t in texts)


@pytest.mark.parametrize("expected", GOLDEN, ids=lambda p: p.name.removesuffix(".expected.json"))
def test_parser_matches_golden_file(expected: Path) -> None:
    golden = json.loads(expected.read_text(encoding="utf-8"))
    path, text = _fixture_text(expected)
    parse = parse_admm_text if golden["parser"] == "admm" else parse_benchmark_text
    if golden.get("bad_input"):
        with pytest.raises(BadInput):
            parse(text, source=path.name)
        return
    assert _jsonable(asdict(parse(text, source=path.name))) == golden["result"]


# ---- benchmark_model ----------------------------------------------------------------------------


def test_current_format_reads_all_four_timings() -> None:
    r = parse_benchmark_text(
        "INFO: Inference timings in us: Init: 2144, First inference: 31474, Warmup (avg): 24958.8, "
        "Inference (avg): 24556.3\n"
    )
    assert (r.format, r.init_us, r.first_inference_us, r.warmup_avg_us, r.inference_avg_us) == (
        "current",
        2144.0,
        31474.0,
        24958.8,
        24556.3,
    )


def test_average_format_of_tf_1_14() -> None:
    r = parse_benchmark_text("Average inference timings in us: Warmup: 1234, Init: 567, Inference (avg): 89\n")
    assert (r.format, r.warmup_avg_us, r.init_us, r.inference_avg_us) == ("average", 1234.0, 567.0, 89.0)
    assert r.first_inference_us is None


def test_no_stats_format_of_the_oldest_builds_is_the_inference_average() -> None:
    r = parse_benchmark_text("Average inference timings in us: Warmup: 1234, Init: 567, no stats: 89")
    assert (r.format, r.inference_avg_us, r.warmup_avg_us) == ("no_stats", 89.0, 1234.0)


def test_scientific_notation_of_slow_runs_is_read() -> None:
    r = parse_benchmark_text(
        "Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): 2.29988e+06"
    )
    assert r.inference_avg_us == pytest.approx(2_299_880.0)


def test_last_timing_summary_wins_and_is_counted() -> None:
    text = (
        "Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): 10\n"
        "Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): 20\n"
    )
    r = parse_benchmark_text(text)
    assert (r.inference_avg_us, r.summaries) == (20.0, 2)


def test_stats_lines_split_into_warmup_and_timed_phases() -> None:
    text = (
        "count=3 first=10 curr=8 min=8 max=10 avg=9 std=1\n"
        "count=50 first=7 curr=7 min=6 max=9 avg=7.1 std=0\n"
        "Inference timings in us: Init: 1, First inference: 10, Warmup (avg): 9, Inference (avg): 7.1\n"
    )
    r = parse_benchmark_text(text)
    assert r.warmup is not None and r.timed is not None
    assert (r.warmup.count, r.timed.count, r.timed.min, r.timed.max, r.timed.std) == (3, 50, 6.0, 9.0, 0.0)


def test_single_run_and_all_same_stats_forms() -> None:
    text = (
        "INFO: count=1 curr=1234\nINFO: count=5 curr=99(all same)\n"
        "Inference timings in us: Init: 1, First inference: 1234, Warmup (avg): 1234, Inference (avg): 99\n"
    )
    r = parse_benchmark_text(text)
    assert r.warmup == benchmark_model.PhaseStats(count=1, curr=1234.0, avg=1234.0)
    assert r.timed == benchmark_model.PhaseStats(count=5, curr=99.0, avg=99.0)


def test_op_profiling_summaries_are_not_taken_for_phases() -> None:
    text = (
        "INFO: count=50 first=7 curr=7 min=6 max=9 avg=7.1 std=0\n"
        "Inference timings in us: Init: 1, First inference: 10, Warmup (avg): 9, Inference (avg): 7.1\n"
        "INFO: Timings (microseconds): count=50 first=1 curr=1 min=1 max=1 avg=1 std=0\n"
        "INFO: Memory (bytes): count=0\n"
    )
    r = parse_benchmark_text(text)
    assert r.timed is not None and r.timed.avg == 7.1
    assert r.warmup is None


def test_delegate_lines_with_and_without_total() -> None:
    text = (
        "INFO: Replacing 66 out of 66 node(s) with delegate (TfLiteXNNPackDelegate) node, "
        "yielding 1 partitions for the whole graph.\n"
        "Replacing 12 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 3 partitions.\n"
        "Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): 4\n"
    )
    r = parse_benchmark_text(text)
    assert r.delegates == (
        benchmark_model.DelegateReplacement(name="TfLiteXNNPackDelegate", replaced=66, total=66, partitions=1),
        benchmark_model.DelegateReplacement(name="TfLiteGpuDelegateV2", replaced=12, total=None, partitions=3),
    )


def test_memory_footprint_lines() -> None:
    text = (
        "Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): 4\n"
        "INFO: Memory footprint delta from the start of the tool (MB): init=15.8125 overall=29.6914\n"
        "INFO: Peak memory footprint (MB): init=6.25 overall=9.75\n"
        "INFO: Overall peak memory footprint (MB) via periodic monitoring: 35.2773\n"
    )
    r = parse_benchmark_text(text)
    assert (r.memory_delta_init_mb, r.memory_delta_overall_mb) == (15.8125, 29.6914)
    assert (r.peak_memory_init_mb, r.peak_memory_overall_mb, r.monitored_peak_memory_mb) == (6.25, 9.75, 35.2773)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "hello world",
        "count=50 first=1 curr=1 min=1 max=1 avg=1 std=0",
        "Inference timings in us: Init: 1, First inference: 2",
        "Inference timings in us: Inference (avg): nan",
    ],
)
def test_text_without_a_timing_summary_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match="no benchmark_model timing summary"):
        parse_benchmark_text(text)


def test_bad_input_names_the_first_error_line() -> None:
    _, text = _fixture_text(FIXTURES / "benchmark_model_failed.handwritten.expected.json")
    with pytest.raises(BadInput, match="Didn't find op for builtin opcode 'CONV_2D'") as e:
        parse_benchmark_text(text, source="run.log")
    assert "\n" not in e.value.one_line()


def test_measurements_entry_gives_inference_avg_in_us(tmp_path: Path) -> None:
    src = FIXTURES / "benchmark_model_tf2_linux.handwritten.txt"
    [m] = benchmark_model.measurements(src)
    assert (m["metric"], m["value"], m["unit"]) == ("inference_avg", 24556.3, "us")
    assert "TfLiteXNNPackDelegate: 66 of 66 nodes" in m["note"]
    with pytest.raises(BadInput, match="cannot read"):
        benchmark_model.measurements(tmp_path / "missing.log")


def test_litert_bench_stats_lines_round_trip_through_the_parser() -> None:
    for times in ((), (5,), (7, 7, 7), (10, 20, 30, 2_000_000)):
        line = RunStats(times_us=times).line()
        summary = "Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): 4"
        text = f"INFO: {line}\n{summary}"
        timed = parse_benchmark_text(text).timed
        assert timed is not None and timed.count == len(times)
        if len(set(times)) > 1:
            assert timed.min == min(times) and timed.max == max(times)
            assert timed.avg == pytest.approx(sum(times) / len(times), rel=1e-5)


# ---- ADMM_baseline ------------------------------------------------------------------------------


def test_admm_top1_is_the_last_best_accuracy() -> None:
    log = parse_admm_text(
        " * Acc@1 10.000 Acc@5 50.000\nBest accuracy: 10.000\n"
        " * Acc@1 30.500 Acc@5 60.000\nBest accuracy: 30.500\n * Acc@1 20.000 Acc@5 55.000\n"
        "Best accuracy: 30.500\n"
    )
    assert (log.top1, log.best_lines, len(log.accuracies)) == (30.5, 3, 3)
    assert log.accuracies[-1] == admm.Accuracy(line=5, top1=20.0, top5=55.0)


def test_admm_without_fine_tuning_falls_back_to_the_last_validation() -> None:
    log = parse_admm_text(" * Acc@1 41.250 Acc@5 70.000\n")
    assert (log.best_accuracy, log.top1) == (None, 41.25)


def test_admm_total_nonzero_line() -> None:
    log = parse_admm_text("total nonzero parameters after pruning: 1406352 / 4231976 (66.7684%)\nBest accuracy: 1.0\n")
    assert (log.nonzero, log.total_params, log.nonzero_pct) == (1406352, 4231976, 66.7684)


def test_admm_crash_is_reported_and_measurements_refuse_it() -> None:
    path = FIXTURES / "admm_crash_best_acc1.handwritten.txt"
    assert admm.parse_admm_file(path).error.startswith("UnboundLocalError: cannot access local variable 'best_acc1'")
    with pytest.raises(BadInput, match="the run crashed: UnboundLocalError"):
        admm.measurements(path)


def test_admm_measurements_entry() -> None:
    [m] = admm.measurements(FIXTURES / "admm_smoke_1_1_epochs.handwritten.txt")
    assert (m["metric"], m["value"], m["unit"]) == ("top1", 62.5, "%")


@pytest.mark.parametrize("text", ["", "Epoch: [0][0/4]\tAcc@1 1.0", "Test: [0/4]\tAcc@1  50.00 ( 50.00)"])
def test_admm_text_without_accuracy_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match="not an ADMM_baseline log"):
        parse_admm_text(text)


# ---- property: arbitrary text never escapes as anything but BadInput -----------------------------

_FRAGMENTS = [
    "Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3, Inference (avg): 4",
    "Average inference timings in us: Warmup: 1e999, Init: -0, no stats: .5",
    "count=1e999 first=1 curr=",
    "count=3 first=1e-999 curr=2 min=1 max=9e9999 avg=nan std=",
    "Replacing 99999999999999999999 out of 1 node(s) with delegate () node, yielding 0 partitions",
    "Memory footprint delta from the start of the tool (MB): init=1 overall=2",
    "Peak memory footprint (MB): init=1e400 overall=2",
    "Num threads: [-99999999999999999999]",
    " * Acc@1 1e999 Acc@5 -1",
    "Best accuracy: 99.9",
    "total nonzero parameters after pruning: 1 / 0 (1e999%)",
    "Traceback (most recent call last):",
    "ValueError: x",
]
_TEXT = st.lists(st.one_of(st.text(max_size=60), st.sampled_from(_FRAGMENTS)), max_size=12).map("\n".join)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_benchmark_parser_raises_only_bad_input(text: str) -> None:
    try:
        r = parse_benchmark_text(text)
    except BadInput as e:
        assert "\n" not in e.one_line()
    else:
        assert isinstance(r.inference_avg_us, float)


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_admm_parser_raises_only_bad_input(text: str) -> None:
    try:
        log = parse_admm_text(text)
    except BadInput:
        pass
    else:
        assert log.top1 is not None or log.error
