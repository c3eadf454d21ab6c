"""Statistics and verdicts: hand-computed medians and CIs, comparison values, every verdict rule."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import scipy.stats

from harness.core.manifest import Compare, Kpi, KpiTarget, Metric, Variant, load_manifest
from harness.results.comparisons import evaluate_per_workload
from harness.results.judgement import Verdict
from harness.results.rows import Row
from harness.results.statistics import compare, order_statistic_ci_indices, side_of, summarize
from harness.results.store import Results
from harness.results.verdicts import evaluate

TIME = "2024-05-01T12:00:00+00:00"


def row(**kw: Any) -> Row:
    base: dict[str, Any] = {
        "run_id": "r1",
        "kpi": "mem",
        "metric": "peak_pss",
        "variant": "base",
        "workload": "app1",
        "target": "rpi2",
        "fidelity": "board",
        "mode": "measure",
        "value": 100.0,
        "unit": "KB",
        "time": TIME,
    }
    base.update(kw)
    return Row(**base)


def kpi_mem(
    *,
    kind: str = "better_than_baseline",
    statistic: str = "reduction_pct",
    fidelity: tuple[str, ...] = ("board",),
    direction: str = "lower",
) -> Kpi:
    return Kpi(
        id="mem",
        number=1,
        session="kpi_mem",
        title_ko="메모리",
        title_en="Memory",
        procedure="mem",
        metrics=(Metric(name="peak_pss", unit="KB", direction=direction),),  # type: ignore[arg-type]
        target=KpiTarget(kind=kind),  # type: ignore[arg-type]
        verdict_fidelity=fidelity,  # type: ignore[arg-type]
        variants=(Variant(name="base"), Variant(name="cand")),
        workloads=("app1", "app2"),
        targets=("rpi2",),
        compare=Compare(metric="peak_pss", baseline="base", candidate="cand", statistic=statistic),  # type: ignore[arg-type]
    )


def kpi_bound(kind: str, value: float, *, fidelity: tuple[str, ...] = ("board",)) -> Kpi:
    return Kpi(
        id="acc",
        number=3,
        session="kpi_acc",
        title_ko="정확도",
        title_en="Accuracy",
        procedure="acc",
        metrics=(Metric(name="accuracy_loss", unit="%p", direction="lower"),),
        target=KpiTarget(kind=kind, metric="accuracy_loss", value=value, unit="%p"),  # type: ignore[arg-type]
        verdict_fidelity=fidelity,  # type: ignore[arg-type]
        variants=(Variant(name="pruned"),),
        workloads=(),
        targets=("x86_64",),
    )


def kpi_npus() -> Kpi:
    return Kpi(
        id="npus",
        number=7,
        session="kpi_npu",
        title_ko="NPU 수",
        title_en="NPUs",
        procedure="npus",
        metrics=(Metric(name="passed", unit="count", direction="higher"),),
        target=KpiTarget(kind="count_at_least", value=3, of=("VTA", "Ethos-U55", "Gemmini")),
        verdict_fidelity=("simulator", "board"),
        variants=(Variant(name="VTA"), Variant(name="Ethos-U55"), Variant(name="Gemmini")),
        workloads=(),
        targets=("x86_64",),
    )


def ab_rows(base: list[float], cand: list[float], **kw: Any) -> list[Row]:
    out = []
    for i, (b, c) in enumerate(zip(base, cand, strict=True)):
        out.append(row(variant="base", value=b, repeat=i, **kw))
        out.append(row(variant="cand", value=c, repeat=i, **kw))
    return out


BASE6 = [100.0, 101.0, 99.0, 100.5, 100.2, 99.8]
LOW6 = [80.0, 81.0, 79.0, 80.5, 80.2, 79.8]
HIGH6 = [120.0, 121.0, 119.0, 120.5, 120.2, 119.8]
SPREAD6 = [60.0, 140.0, 70.0, 130.0, 100.0, 95.0]


# ---- summarize ---------------------------------------------------------------------------------


def test_summarize_ten_values_uses_the_2nd_and_9th_order_statistics() -> None:
    s = summarize([10, 1, 9, 2, 8, 3, 7, 4, 6, 5])
    assert s.n == 10
    assert s.median == 5.5
    assert (s.ci_low, s.ci_high) == (2.0, 9.0)
    assert s.ci_exact and s.method == "order statistic"
    assert s.mean == 5.5 and s.min == 1.0 and s.max == 10.0
    assert s.stdev == pytest.approx(3.0276503540974917)


def test_order_statistic_indices_match_binomial_coverage() -> None:
    assert order_statistic_ci_indices(5) is None
    assert order_statistic_ci_indices(6) == (0, 5)
    assert order_statistic_ci_indices(10) == (1, 8)
    assert order_statistic_ci_indices(20) == (5, 14)
    for n in range(6, 120):
        idx = order_statistic_ci_indices(n)
        assert idx is not None
        k = idx[0] + 1
        coverage = 1 - 2 * scipy.stats.binom.cdf(k - 1, n, 0.5)
        tighter = 1 - 2 * scipy.stats.binom.cdf(k, n, 0.5)
        assert coverage >= 0.95 > tighter
        assert idx[1] == n - k


def test_summarize_single_sample_has_no_interval() -> None:
    s = summarize([42.0])
    assert s.median == 42.0 and math.isnan(s.ci_low) and math.isnan(s.ci_high)
    assert not s.ci_exact
    assert s.note == "n=1: no interval"
    assert math.isnan(s.stdev)


def test_summarize_small_n_bootstrap_is_reproducible_and_inside_the_range() -> None:
    a = summarize([3.0, 1.0, 4.0, 2.0])
    b = summarize([3.0, 1.0, 4.0, 2.0])
    assert a == b
    assert a.method == "bootstrap" and not a.ci_exact
    assert a.median == 2.5
    assert 1.0 <= a.ci_low <= a.median <= a.ci_high <= 4.0


def test_summarize_identical_small_sample_does_not_bootstrap() -> None:
    s = summarize([7.0, 7.0, 7.0])
    assert (s.ci_low, s.ci_high) == (7.0, 7.0)


def test_summarize_rejects_empty_and_nan() -> None:
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([1.0, math.nan])


# ---- compare -----------------------------------------------------------------------------------


def test_reduction_overhead_and_speedup_from_medians() -> None:
    assert compare([100.0], [80.0], "reduction_pct", "lower").value == pytest.approx(20.0)
    assert compare([100.0], [120.0], "overhead_pct", "lower").value == pytest.approx(20.0)
    assert compare([10.0], [5.0], "speedup", "lower").value == pytest.approx(2.0)
    assert compare([10.0], [20.0], "speedup", "higher").value == pytest.approx(2.0)
    c = compare([100.0, 50.0, 200.0], [40.0], "reduction_pct", "lower")
    assert c.median_baseline == 100.0 and c.value == pytest.approx(60.0)


def test_compare_with_one_sample_on_a_side_has_no_interval_and_no_side() -> None:
    c = compare([100.0, 102.0, 98.0], [80.0], "reduction_pct", "lower")
    assert c.value == pytest.approx(20.0)
    assert math.isnan(c.ci_low) and math.isnan(c.ci_high) and not c.has_interval
    assert (c.n_baseline, c.n_candidate) == (3, 1)
    assert side_of(c) == "no interval"
    # A static value (a file's size) is read, not sampled: the point value decides.
    assert side_of(c, exact=True) == "good"


def test_compare_bootstrap_is_deterministic_and_brackets_the_point() -> None:
    a = compare(BASE6, LOW6, "reduction_pct", "lower")
    b = compare(BASE6, LOW6, "reduction_pct", "lower")
    assert a == b
    assert a.value == pytest.approx((1 - 80.1 / 100.1) * 100)
    assert 0 < a.ci_low <= a.value <= a.ci_high
    assert side_of(a) == "good"


def test_side_of_follows_the_statistic_and_direction() -> None:
    assert side_of(compare(BASE6, HIGH6, "reduction_pct", "lower")) == "bad"
    assert side_of(compare(BASE6, LOW6, "overhead_pct", "lower")) == "good"
    assert side_of(compare(BASE6, HIGH6, "overhead_pct", "lower")) == "bad"
    assert side_of(compare(BASE6, SPREAD6, "reduction_pct", "lower")) == "straddles"
    # Throughput: a higher candidate is better, speed-up > 1.
    assert side_of(compare(BASE6, HIGH6, "speedup", "higher")) == "good"
    assert side_of(compare(BASE6, HIGH6, "speedup", "lower")) == "bad"


# ---- verdicts ----------------------------------------------------------------------------------


def test_better_than_baseline_passes_when_every_workload_ci_is_good() -> None:
    rows = ab_rows(BASE6, LOW6, workload="app1") + ab_rows(BASE6, LOW6, workload="app2")
    ev = evaluate(kpi_mem(), Results.from_rows(rows))
    assert ev.verdict is Verdict.PASS
    assert ev.value == pytest.approx((1 - 80.1 / 100.1) * 100)
    assert ev.unit == "%" and ev.statistic == "reduction_pct"
    assert ev.fidelity == ("board",)
    assert [c.workload for c in ev.per_workload] == ["app1", "app2"]
    assert ev.n == 24


def test_better_than_baseline_fails_when_one_workload_is_wholly_worse() -> None:
    rows = ab_rows(BASE6, LOW6, workload="app1") + ab_rows(BASE6, HIGH6, workload="app2")
    ev = evaluate(kpi_mem(), Results.from_rows(rows))
    assert ev.verdict is Verdict.FAIL
    assert "app2@rpi2" in ev.reason


def test_straddling_ci_is_inconclusive() -> None:
    rows = ab_rows(BASE6, LOW6, workload="app1") + ab_rows(BASE6, SPREAD6, workload="app2")
    ev = evaluate(kpi_mem(), Results.from_rows(rows))
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert "straddles" in ev.reason and "app2" in ev.reason


def test_missing_candidate_on_a_workload_is_inconclusive() -> None:
    rows = [*ab_rows(BASE6, LOW6, workload="app1"), row(variant="base", workload="app2")]
    ev = evaluate(kpi_mem(), Results.from_rows(rows))
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert "missing" in ev.reason


def test_emulated_rows_give_no_verdict_but_a_value() -> None:
    rows = ab_rows(BASE6, LOW6, fidelity="emulated")
    ev = evaluate(kpi_mem(), Results.from_rows(rows))
    assert ev.verdict is Verdict.NO_VERDICT
    assert "emulated fidelity proves the steps run; a verdict needs board" in ev.reason
    assert ev.value == pytest.approx((1 - 80.1 / 100.1) * 100)
    assert ev.fidelity == ("emulated",)


def test_smoke_rows_give_no_verdict_even_at_board_fidelity() -> None:
    rows = ab_rows(BASE6, LOW6, mode="smoke")
    ev = evaluate(kpi_mem(), Results.from_rows(rows))
    assert ev.verdict is Verdict.NO_VERDICT
    assert "smoke" in ev.reason
    assert math.isfinite(ev.value)


def test_board_rows_decide_and_emulated_smoke_rows_are_left_out() -> None:
    rows = ab_rows(BASE6, LOW6) + ab_rows(BASE6, HIGH6, fidelity="emulated", mode="smoke", target="x86_64")
    ev = evaluate(kpi_mem(), Results.from_rows(rows))
    assert ev.verdict is Verdict.PASS
    assert "not used" in ev.reason
    assert ev.fidelity == ("board",)


def test_all_rows_blocked_is_blocked_and_names_their_notes() -> None:
    rows = [
        row(variant="base", value=math.nan, status="blocked", note="Docker is not reachable"),
        row(variant="cand", value=math.nan, status="failed", note="build.py exited 1", log="logs/build.log"),
    ]
    ev = evaluate(kpi_mem(), Results.from_rows(rows))
    assert ev.verdict is Verdict.BLOCKED
    assert "Docker is not reachable" in ev.reason and "build.py exited 1" in ev.reason
    assert ev.blocked == 2
    assert ev.evidence == ("logs/build.log",)
    assert math.isnan(ev.value)


def test_no_rows_is_blocked() -> None:
    ev = evaluate(kpi_mem(), Results())
    assert ev.verdict is Verdict.BLOCKED
    assert "no result rows" in ev.reason


def test_workload_equal_to_variant_is_compared_across_workloads() -> None:
    # KPI 4: each model is both the variant and the workload; one static row each.
    rows = [
        row(variant="base", workload="base", fidelity="static", value=14_000_000.0, unit="bytes"),
        row(variant="cand", workload="cand", fidelity="static", value=7_000_000.0, unit="bytes"),
    ]
    ev = evaluate(kpi_mem(fidelity=("static",)), Results.from_rows(rows))
    assert ev.verdict is Verdict.PASS
    assert ev.value == pytest.approx(50.0)
    assert [c.workload for c in ev.per_workload] == [""]


def test_report_kind_gives_no_verdict_with_the_compare_value() -> None:
    rows = ab_rows(BASE6, HIGH6)
    ev = evaluate(kpi_mem(kind="report", statistic="overhead_pct"), Results.from_rows(rows))
    assert ev.verdict is Verdict.NO_VERDICT
    assert ev.value == pytest.approx((120.1 / 100.1 - 1) * 100)
    assert "no numeric target" in ev.reason


def bound_rows(values: list[float], **kw: Any) -> list[Row]:
    return [
        row(
            kpi="acc",
            metric="accuracy_loss",
            variant="pruned",
            workload="",
            target="x86_64",
            value=v,
            unit="%p",
            repeat=i,
            **kw,
        )
        for i, v in enumerate(values)
    ]


@pytest.mark.parametrize(
    ("values", "verdict"),
    [
        ([1.0, 1.2, 0.8, 1.1, 0.9, 1.0], Verdict.PASS),
        ([4.0, 4.2, 3.8, 4.1, 3.9, 4.0], Verdict.FAIL),
        ([2.0, 4.0, 2.5, 3.5, 2.8, 3.2], Verdict.INCONCLUSIVE),
    ],
)
def test_at_most_compares_the_median_ci_with_the_bound(values: list[float], verdict: Verdict) -> None:
    ev = evaluate(kpi_bound("at_most", 3.0), Results.from_rows(bound_rows(values)))
    assert ev.verdict is verdict
    assert ev.unit == "%p"


def test_at_least_passes_only_when_the_whole_ci_is_above() -> None:
    k = kpi_bound("at_least", 3.0)
    assert evaluate(k, Results.from_rows(bound_rows([4.0, 4.2, 3.8, 4.1, 3.9, 4.0]))).verdict is Verdict.PASS
    assert evaluate(k, Results.from_rows(bound_rows([1.0, 1.2, 0.8, 1.1, 0.9, 1.0]))).verdict is Verdict.FAIL


def test_at_most_from_host_rows_is_no_verdict_when_board_is_required() -> None:
    rows = bound_rows([1.0, 1.2, 0.8, 1.1, 0.9, 1.0], fidelity="host")
    ev = evaluate(kpi_bound("at_most", 3.0), Results.from_rows(rows))
    assert ev.verdict is Verdict.NO_VERDICT
    assert ev.value == pytest.approx(1.0)


# ---- KPI 3's rule: the accuracy bound AND board timings of both models ----------------------------

KPI3 = load_manifest(Path(__file__).resolve().parent.parent / "kpis.toml").kpi("ml_latency")
LOSS = [1.0, 1.2, 0.8, 1.1, 0.9, 1.0]  # wholly ≤ 3 %p


def kpi3_rows(*, timings: str = "both", mode: str = "measure") -> list[Row]:
    rows = [
        r
        for r in bound_rows(LOSS, fidelity="host", mode=mode)
        for r in [dataclasses.replace(r, kpi="ml_latency", variant="mbv1_0.9_v4u.harness", workload="imagenet")]
    ]
    timed = {"both": ("mobilenet_v2_1.0_224", "mbv1_0.9_v4u"), "baseline": ("mobilenet_v2_1.0_224",), "none": ()}
    for i in range(3):
        for model, us in (("mobilenet_v2_1.0_224", 60_000.0 + i), ("mbv1_0.9_v4u", 30_000.0 + i)):
            ok = model in timed[timings]
            rows.append(
                row(kpi="ml_latency", metric="inference_avg", variant=model, workload=model, target="arm64",
                    fidelity="board", mode=mode, unit="us", repeat=i, value=us if ok else math.nan,
                    status="ok" if ok else "blocked", note="" if ok else "board pi4 went away")
            )  # fmt: skip
    return rows


def test_kpi3_passes_only_with_the_accuracy_bound_and_board_timings_of_both_models() -> None:
    ev = evaluate(KPI3, Results.from_rows(kpi3_rows()))
    assert ev.verdict is Verdict.PASS
    assert "speedup at board: 2 x on arm64" in ev.reason  # the speed-up is shown beside the bound
    assert [c.fidelity for c in ev.per_workload] == ["board"]
    assert "board inference_avg of both" in ev.target


def test_kpi3_accuracy_alone_is_not_a_pass() -> None:
    ev = evaluate(KPI3, Results.from_rows(kpi3_rows(timings="none")))
    assert ev.verdict is Verdict.BLOCKED  # the timings were attempted and blocked: the fix is in their rows
    assert "a PASS also needs board inference_avg" in ev.reason
    assert "none for mobilenet_v2_1.0_224, mbv1_0.9_v4u" in ev.reason
    only_accuracy = [r for r in kpi3_rows() if r.metric == "accuracy_loss"]
    ev = evaluate(KPI3, Results.from_rows(only_accuracy))
    assert ev.verdict is Verdict.INCONCLUSIVE and "none for mobilenet_v2_1.0_224, mbv1_0.9_v4u" in ev.reason


def test_kpi3_with_one_model_timed_is_not_a_pass() -> None:
    ev = evaluate(KPI3, Results.from_rows(kpi3_rows(timings="baseline")))
    assert ev.verdict is Verdict.BLOCKED and "none for mbv1_0.9_v4u" in ev.reason


def test_kpi3_smoke_rows_stay_no_verdict_and_say_what_a_pass_would_need() -> None:
    ev = evaluate(KPI3, Results.from_rows(kpi3_rows(timings="none", mode="smoke")))
    assert ev.verdict is Verdict.NO_VERDICT and "a PASS also needs board inference_avg" in ev.reason


def test_a_bound_kpi_says_how_its_judged_rows_were_obtained() -> None:
    rows = [dataclasses.replace(r, note="dense 71 % given by ANT_KPI_DENSE_TOP1 (an override, not measured)")
            for r in kpi3_rows()]  # fmt: skip
    ev = evaluate(KPI3, Results.from_rows(rows))
    assert ev.notes == ("dense 71 % given by ANT_KPI_DENSE_TOP1 (an override, not measured)",)


def test_variants_outside_the_compared_pair_are_shown_on_their_own() -> None:
    rows = ab_rows(BASE6, LOW6) + [row(variant="mine", value=v, repeat=i) for i, v in enumerate([50.0, 52.0, 51.0])]
    ev = evaluate(kpi_mem(), Results.from_rows(rows))
    pair_only = evaluate(kpi_mem(), Results.from_rows(rows[:12]))
    assert ev.verdict is Verdict.PASS and ev.value == pytest.approx(pair_only.value)  # never pooled
    [b] = ev.beside
    assert (b.variant, b.n, b.median, b.unit, b.fidelity) == ("mine", 3, 51.0, "KB", "board")
    assert ev.metric_unit == "KB" and ev.per_workload[0].unit == "KB"


def npu_row(variant: str, value: float, **kw: Any) -> Row:
    return row(
        kpi="npus",
        metric="passed",
        variant=variant,
        workload=f"test_{variant}.py",
        target="x86_64",
        fidelity="simulator",
        value=value,
        unit="count",
        log=f"logs/{variant}.log",
        **kw,
    )


def test_count_at_least_lists_which_have_evidence_and_fails_when_out_of_reach() -> None:
    rows = [
        npu_row("VTA", 1.0),
        npu_row("Ethos-U55", 0.0),
        npu_row("Gemmini", math.nan, status="blocked", note="Spike is not installed"),
    ]
    ev = evaluate(kpi_npus(), Results.from_rows(rows))
    assert ev.value == 1.0 and ev.unit == "count"
    assert ev.with_evidence == ("VTA",)
    assert ev.without_evidence == ("Ethos-U55", "Gemmini")
    assert ev.verdict is Verdict.FAIL
    assert "failed: Ethos-U55" in ev.reason and "no evidence: Gemmini" in ev.reason


def test_count_at_least_with_untested_entries_is_inconclusive() -> None:
    ev = evaluate(kpi_npus(), Results.from_rows([npu_row("VTA", 1.0), npu_row("Gemmini", 1.0)]))
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert ev.without_evidence == ("Ethos-U55",)


def test_count_at_least_passes_when_enough_pass() -> None:
    rows = [npu_row(n, 1.0) for n in ("VTA", "Ethos-U55", "Gemmini")]
    ev = evaluate(kpi_npus(), Results.from_rows(rows))
    assert ev.verdict is Verdict.PASS
    assert ev.value == 3.0 and ev.without_evidence == ()
    assert ev.evidence == ("logs/Ethos-U55.log", "logs/Gemmini.log", "logs/VTA.log")


def test_count_at_least_matches_board_names_loosely_and_gates_emulated_rows() -> None:
    boards = _boards_kpi(of=("Raspberry Pi 3", "Jetson TX2"))
    rows = [
        row(
            kpi="boards",
            metric="passed",
            variant="ant",
            workload="streaming",
            target="raspberry-pi-3",
            value=1.0,
            unit="count",
        ),
        row(
            kpi="boards",
            metric="passed",
            variant="ant",
            workload="streaming",
            target="arm64",
            value=1.0,
            unit="count",
            target_identity={"board": "Jetson TX2"},
        ),
    ]
    ev = evaluate(boards, Results.from_rows(rows))
    assert ev.verdict is Verdict.PASS
    assert ev.with_evidence == ("Raspberry Pi 3", "Jetson TX2")
    emulated = [Row(**{**r.__dict__, "fidelity": "emulated", "mode": "smoke"}) for r in rows]
    ev = evaluate(boards, Results.from_rows(emulated))
    assert ev.verdict is Verdict.NO_VERDICT
    assert ev.value == 2.0


def test_count_at_least_names_a_board_by_its_inventory_model_when_its_name_is_the_lab_s_own() -> None:
    boards = _boards_kpi(of=("Raspberry Pi 2", "Jetson TX2"))
    # What boardrun.public_identity records: the inventory name, the inventory model, the hardware's own.
    ident = {"name": "bench1-pi", "model": "Raspberry Pi 2", "hardware_model": "Raspberry Pi 2 Model B Rev 1.1"}
    rows = [
        row(
            kpi="boards",
            metric="passed",
            variant="ant",
            workload="streaming",
            target="rpi2",
            value=1.0,
            unit="count",
            target_identity=ident,
        )
    ]
    ev = evaluate(boards, Results.from_rows(rows))
    assert ev.with_evidence == ("Raspberry Pi 2",)
    assert ev.without_evidence == ("Jetson TX2",)
    assert ev.verdict is Verdict.INCONCLUSIVE


def test_evidence_per_entry_shows_passes_failures_uncounted_runs_and_gaps() -> None:
    from harness.results.counts import evidence_by_entity

    boards = Kpi(
        id="boards",
        number=6,
        session="kpi_boards",
        title_ko="보드 수",
        title_en="Boards",
        procedure="boards",
        metrics=(Metric(name="passed", unit="count", direction="higher"),),
        target=KpiTarget(kind="count_at_least", value=3, of=("Raspberry Pi 2", "Jetson TX2", "ODROID XU4")),
        verdict_fidelity=("board",),
        variants=(Variant(name="ant"),),
        workloads=("streaming",),
        targets=("rpi2", "arm64"),
    )
    rows = [
        row(
            kpi="boards",
            metric="passed",
            variant="ant",
            workload="streaming",
            target="rpi2",
            value=1.0,
            unit="count",
            target_identity={"name": "pi-a", "model": "Raspberry Pi 2"},
            log="raw/a.log",
        ),
        row(
            kpi="boards",
            metric="passed",
            variant="ant",
            workload="streaming",
            target="arm64",
            value=0.0,
            unit="count",
            target_identity={"name": "tx2", "model": "Jetson TX2"},
            log="raw/b.log",
        ),
        Row(
            **{
                **row(
                    kpi="boards",
                    metric="passed",
                    variant="ant",
                    workload="streaming",
                    target="x86_64",
                    value=1.0,
                    unit="count",
                ).__dict__,
                "fidelity": "host",
                "mode": "smoke",
            }
        ),
    ]
    ev = evaluate(boards, Results.from_rows(rows))
    got = {e.name: (e.result, e.where, e.log) for e in ev.entities}
    assert got["Raspberry Pi 2"] == ("passed", "pi-a", "raw/a.log")
    assert got["Jetson TX2"] == ("failed", "tx2", "raw/b.log")
    assert got["ODROID XU4"] == ("no evidence", "", "")
    assert got["x86_64"][0] == "passed, not counted"  # a smoke pass is shown, never counted
    assert [e.name for e in ev.entities][:3] == ["Raspberry Pi 2", "Jetson TX2", "ODROID XU4"]
    assert evidence_by_entity(boards, Results.from_rows(rows).df)[3].listed is False


def test_an_entity_blocked_in_its_check_shows_the_furthest_tier_another_row_reached() -> None:
    from harness.results.counts import evidence_by_entity

    npus = dataclasses.replace(
        _boards_kpi(of=("VTA", "Ethos-U55")),
        id="npus",
        verdict_fidelity=("simulator",),
        variants=(Variant(name="VTA"), Variant(name="Ethos-U55")),
    )

    def npu_row(variant: str, metric: str, value: float, **kw: Any) -> Row:
        fields = {"fidelity": "simulator", **kw}
        return row(kpi="npus", metric=metric, variant=variant, workload="m", target="x86_64", value=value, **fields)

    rows = [
        npu_row("VTA", "passed", 1.0, target_identity={"tier": "passed", "check": "agreement"}, log="raw/vta.log"),
        npu_row("Ethos-U55", "passed", math.nan, status="blocked", note="the Arm Corstone-300 FVP"),
        npu_row(
            "Ethos-U55",
            "compiled",
            1.0,
            fidelity="static",
            target_identity={"tier": "compiled", "check": "tvmc"},
            log="raw/compile.log",
        ),
        # A compile that failed reached no tier: it never lifts one.
        npu_row("VTA", "compiled", 0.0, fidelity="static", target_identity={"tier": "none", "check": "x"}),
    ]
    df = Results.from_rows(rows).df
    mrows = df[df["metric"] == "passed"]
    plain = {e.name: e for e in evidence_by_entity(npus, mrows)}
    assert (plain["Ethos-U55"].result, plain["Ethos-U55"].tier) == ("blocked", "")
    got = {e.name: e for e in evidence_by_entity(npus, mrows, df)}
    eu = got["Ethos-U55"]
    assert (eu.result, eu.tier, eu.log) == ("blocked", "compiled", "raw/compile.log")
    assert eu.check == "tvmc (a compiled row, static fidelity: not counted)"
    assert (got["VTA"].result, got["VTA"].tier, got["VTA"].check) == ("passed", "passed", "agreement")
    ev = evaluate(npus, Results.from_rows(rows))
    assert ev.value == 1 and {e.name: e.tier for e in ev.entities}["Ethos-U55"] == "compiled"


def test_evaluate_per_workload_separates_fidelities() -> None:
    rows = ab_rows(BASE6, LOW6) + ab_rows(BASE6, HIGH6, fidelity="emulated", mode="smoke")
    cells = evaluate_per_workload(kpi_mem(), Results.from_rows(rows))
    assert [(c.fidelity, c.mode, c.side) for c in cells] == [("board", "measure", "good"), ("emulated", "smoke", "bad")]
    assert cells[0].baseline_summary is not None and cells[0].baseline_summary.n == 6


def test_results_summary_and_compare_call_the_statistics() -> None:
    res = Results.from_rows(ab_rows(BASE6, LOW6))
    assert res.summary("peak_pss", variant="cand").median == 80.1
    c = res.compare("peak_pss", baseline="base", candidate="cand", statistic="reduction_pct")
    assert c == compare(BASE6, LOW6, "reduction_pct", "lower")


def test_verdict_is_a_string_enum() -> None:
    assert Verdict.FAIL == "FAIL"
    assert str(Verdict.NO_VERDICT) == "NO_VERDICT"


# ---- one fidelity per headline, honest intervals (no interval from n=1) ---------------------------


def test_n1_per_side_gives_a_value_but_no_interval_and_no_pass() -> None:
    rows = ab_rows([100.0], [80.0]) + ab_rows([100.0], [70.0], workload="app2")
    ev = evaluate(kpi_mem(), Results.from_rows(rows))
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert "fewer than two samples per side, so no interval" in ev.reason
    assert {c.side for c in ev.per_workload} == {"no interval"}
    assert all(math.isnan(c.comparison.ci_low) for c in ev.per_workload if c.comparison)
    # Two workloads: the KPI-level figure is their range, and says so; it is not called a CI.
    assert ev.interval == "range of 2 per-workload values, not a CI"
    assert (ev.value, ev.ci_low, ev.ci_high) == (pytest.approx(25.0), pytest.approx(20.0), pytest.approx(30.0))


def test_kpi_level_interval_is_a_named_bootstrap_over_five_or_more_workloads() -> None:
    rows: list[Row] = []
    for i, cand in enumerate([LOW6, [v - 2 for v in LOW6], [v + 3 for v in LOW6], [v - 5 for v in LOW6], LOW6]):
        rows += ab_rows(BASE6, cand, workload=f"app{i}")
    ev = evaluate(kpi_mem(), Results.from_rows(rows))
    assert ev.verdict is Verdict.PASS
    assert ev.interval == "95 % CI: percentile bootstrap of the median over 5 workloads"
    assert ev.ci_low <= ev.value <= ev.ci_high


def test_one_workload_keeps_its_own_bootstrap_ci() -> None:
    ev = evaluate(kpi_mem(), Results.from_rows(ab_rows(BASE6, LOW6)))
    cell = ev.per_workload[0].comparison
    assert cell is not None and (ev.ci_low, ev.ci_high) == (cell.ci_low, cell.ci_high)
    assert ev.interval.startswith("95 % CI: percentile bootstrap")


def test_the_headline_takes_the_highest_allowed_fidelity_and_shows_the_other_apart() -> None:
    rows = ab_rows(BASE6, LOW6) + ab_rows(BASE6, HIGH6, fidelity="simulator", target="sim")
    ev = evaluate(kpi_mem(fidelity=("board", "simulator")), Results.from_rows(rows))
    assert ev.fidelity == ("board",) and ev.verdict is Verdict.PASS
    assert ev.value == pytest.approx((1 - 80.1 / 100.1) * 100)
    assert "simulator shown apart, not pooled" in ev.reason
    assert [(t.fidelity, t.mode) for t in ev.tiers] == [("board", "measure"), ("simulator", "measure")]
    assert ev.tiers[1].value == pytest.approx((1 - 120.1 / 100.1) * 100)


def test_emulated_cells_compare_the_guest_only_metric() -> None:
    kpi = dataclasses.replace(
        kpi_mem(),
        metrics=(
            Metric(name="peak_pss", unit="KB", direction="lower"),
            Metric(name="guest_pss", unit="KB", direction="lower"),
        ),
        compare=Compare(
            metric="peak_pss", baseline="base", candidate="cand", statistic="reduction_pct", emulated_metric="guest_pss"
        ),
    )
    # Whole-process PSS includes the emulator's ~11 MB for both; the guest-only PSS isolates the runtime.
    rows = ab_rows([11_000.0 + v for v in BASE6], [11_000.0 + v for v in LOW6], fidelity="emulated", mode="smoke")
    rows += ab_rows(BASE6, LOW6, fidelity="emulated", metric="guest_pss", mode="smoke")
    rows += ab_rows(BASE6, HIGH6, fidelity="host", target="x86_64", mode="smoke")
    ev = evaluate(kpi, Results.from_rows(rows))
    emulated = [c for c in ev.per_workload if c.fidelity == "emulated"]
    assert [c.metric for c in emulated] == ["guest_pss"]
    assert emulated[0].comparison is not None
    assert emulated[0].comparison.value == pytest.approx((1 - 80.1 / 100.1) * 100)
    assert {t.fidelity: t.metric for t in ev.tiers} == {"host": "peak_pss", "emulated": "guest_pss"}
    assert ev.fidelity == ("host",)  # the headline: the best fidelity present, never pooled


def test_a_manifest_emulated_metric_must_be_a_metric_of_the_kpi(tmp_path: Path) -> None:
    from harness.core.manifest import ManifestError

    root = Path(__file__).resolve().parent.parent
    text = (root / "kpis.toml").read_text().replace('emulated_metric = "guest_pss"', 'emulated_metric = "guest_psss"')
    bad = tmp_path / "kpis.toml"
    bad.write_text(text)
    with pytest.raises(ManifestError, match="emulated_metric"):
        load_manifest(bad)
    assert load_manifest(root / "kpis.toml").kpi("js_memory").compare.emulated_metric == "guest_pss"  # type: ignore[union-attr]


# ---- KPI 6 counting rules ------------------------------------------------------------------------


def _boards_kpi(of: tuple[str, ...] = ("Raspberry Pi 2", "Jetson TX2")) -> Kpi:
    return Kpi(
        id="boards",
        number=6,
        session="kpi_boards",
        title_ko="보드 수",
        title_en="Boards",
        procedure="boards",
        metrics=(Metric(name="passed", unit="count", direction="higher"),),
        target=KpiTarget(kind="count_at_least", value=2, of=of),
        verdict_fidelity=("board",),
        variants=(Variant(name="ant"),),
        workloads=("streaming",),
        targets=("rpi2", "arm64"),
    )


def _board_row(ident: dict[str, str], note: str = "", target: str = "rpi2") -> Row:
    return row(
        kpi="boards",
        metric="passed",
        variant="ant",
        workload="streaming",
        target=target,
        value=1.0,
        unit="count",
        target_identity=ident,
        note=note,
    )


def test_a_board_whose_hardware_model_differs_from_the_inventory_is_shown_not_counted() -> None:
    rows = [
        _board_row({"name": "pi-a", "model": "Raspberry Pi 2", "hardware_model": "Raspberry Pi 4 Model B Rev 1.4"}),
        _board_row({"name": "tx2-a", "model": "Jetson TX2", "hardware_model": ""}, target="arm64"),
    ]
    ev = evaluate(_boards_kpi(), Results.from_rows(rows))
    assert ev.value == 0.0 and ev.with_evidence == ()
    assert "the board reports 'Raspberry Pi 4 Model B Rev 1.4', the inventory says 'Raspberry Pi 2'" in ev.reason
    assert "the board reports no model, the inventory says 'Jetson TX2'" in ev.reason
    by = {e.name: e for e in ev.entities}
    assert by["Raspberry Pi 2"].result == "passed, not counted"
    assert by["Raspberry Pi 2"].note.startswith("not counted: the board reports 'Raspberry Pi 4")


def test_a_pass_on_the_test_pattern_is_passed_without_a_camera_and_not_counted() -> None:
    ident = {"name": "pi-a", "model": "Raspberry Pi 2", "hardware_model": "Raspberry Pi 2 Model B Rev 1.1"}
    note = "Pipeline ready; 90 frames; not counted: passed without a camera (sourceType 'test', the test pattern)"
    ev = evaluate(_boards_kpi(), Results.from_rows([_board_row(ident, note)]))
    assert ev.value == 0.0
    assert {e.name: e.result for e in ev.entities}["Raspberry Pi 2"] == "passed without a camera"
    # The same board with its camera counts.
    ev = evaluate(_boards_kpi(), Results.from_rows([_board_row(ident, "Pipeline ready; 90 frames")]))
    assert ev.value == 1.0 and ev.with_evidence == ("Raspberry Pi 2",)


def test_each_board_says_how_many_of_its_runs_passed() -> None:
    ident = {"name": "pi-a", "model": "Raspberry Pi 2", "hardware_model": "Raspberry Pi 2 Model B Rev 1.1"}
    rows = [dataclasses.replace(_board_row(ident), repeat=i) for i in range(3)]
    rows.append(dataclasses.replace(_board_row(ident), repeat=3, value=0.0, note="fail: no Pipeline ready"))
    ev = evaluate(_boards_kpi(), Results.from_rows(rows))
    pi = {e.name: e for e in ev.entities}["Raspberry Pi 2"]
    assert (pi.result, pi.passes, pi.runs) == ("passed", 3, 4)
    assert {e.name: e.runs for e in ev.entities}["Jetson TX2"] == 0


def test_a_static_comparison_is_labelled_exact_not_a_range_or_a_ci() -> None:
    from harness.report.text import fmt_headline

    rows = [
        row(variant="base", workload="base", fidelity="static", value=14_000_000.0, unit="bytes"),
        row(variant="cand", workload="cand", fidelity="static", value=7_000_000.0, unit="bytes"),
    ]
    ev = evaluate(kpi_mem(fidelity=("static",)), Results.from_rows(rows))
    assert ev.interval == "exact: static values, read not sampled"
    assert fmt_headline(ev) == "50 (exact, read not sampled)"
    assert fmt_headline(ev, "ko") == "50 (정확값, 표본 아님)"
