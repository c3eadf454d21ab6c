"""Comparing two runs: medians, change %, Mann-Whitney U, and when there are too few samples."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness.cli import main
from harness.report.compare import compare_runs, mann_whitney_p, render_table
from harness.results.rows import Row
from harness.results.store import Results


def _rows(run_id: str, values: dict[tuple[str, str], list[float]], **kw: Any) -> list[Row]:
    out = []
    for (metric, workload), vals in values.items():
        for i, v in enumerate(vals):
            out.append(
                Row(
                    run_id=run_id,
                    kpi="js_memory",
                    metric=metric,
                    variant="iotjs_plus",
                    workload=workload,
                    target="x86_64",
                    fidelity="host",
                    mode="smoke",
                    repeat=i,
                    value=v,
                    unit="KB",
                    time="2026-01-01T00:00:00+00:00",
                    **kw,
                )
            )
    return out


Values = dict[tuple[str, str], list[float]]

A: Values = {
    ("peak_pss", "small"): [1000, 1002, 998, 1001, 999, 1003],
    ("peak_pss", "large"): [2000, 2001],
    ("final_pss", "small"): [500, 500, 500],
    ("wall_time", "small"): [1.0, 1.1, 0.9, 1.05],
}
B: Values = {
    ("peak_pss", "small"): [1100, 1102, 1098, 1101, 1099, 1103],
    ("peak_pss", "large"): [1500, 1501],
    ("final_pss", "small"): [500, 500, 500],
    ("wall_time", "small"): [1.02, 0.95, 1.08, 0.98],
    ("peak_pss", "only-b"): [1.0],
}
DIRECTIONS = {
    ("js_memory", "peak_pss"): "lower",
    ("js_memory", "final_pss"): "lower",
    ("js_memory", "wall_time"): "lower",
}


def _changes() -> dict[tuple[str, str], Any]:
    a = Results.from_rows(_rows("a", A))
    b = Results.from_rows(_rows("b", B))
    return {(c.metric, c.workload): c for c in compare_runs(a, b, directions=DIRECTIONS)}


def test_a_shift_with_six_samples_a_side_is_significant_and_marked_worse_for_lower_is_better() -> None:
    c = _changes()[("peak_pss", "small")]
    assert c.median_a == 1000.5 and c.median_b == 1100.5
    assert c.change_pct == pytest.approx(9.995, abs=1e-3)
    assert c.p_value < 0.01
    assert (c.finding, c.trend) == ("significant", "worse")


def test_two_samples_a_side_are_too_few_whatever_the_change() -> None:
    c = _changes()[("peak_pss", "large")]
    assert c.change_pct == pytest.approx(-25.0, abs=0.1)
    assert c.finding == "too few samples" and c.trend == ""


def test_identical_samples_have_p_1_and_no_change() -> None:
    c = _changes()[("final_pss", "small")]
    assert c.p_value == 1.0 and c.change_pct == 0.0 and c.finding == "no significant change"


def test_overlapping_samples_are_no_significant_change() -> None:
    c = _changes()[("wall_time", "small")]
    assert c.p_value >= 0.05 and c.finding == "no significant change"


def test_cells_in_one_run_only_are_left_out_unless_asked() -> None:
    a = Results.from_rows(_rows("a", A))
    b = Results.from_rows(_rows("b", B))
    assert ("peak_pss", "only-b") not in _changes()
    every = {(c.metric, c.workload): c for c in compare_runs(a, b, include_one_sided=True)}
    assert every[("peak_pss", "only-b")].finding == "only in B"
    assert math.isnan(every[("peak_pss", "only-b")].change_pct)


def test_blocked_rows_are_not_samples() -> None:
    a = Results.from_rows(_rows("a", A))
    blocked = _rows("b", {("peak_pss", "small"): [math.nan] * 6}, status="blocked")
    b = Results.from_rows(_rows("b", B) + blocked)
    c = {(x.metric, x.workload): x for x in compare_runs(a, b)}[("peak_pss", "small")]
    assert c.n_b == 6


def test_mann_whitney_matches_scipy_on_a_known_case() -> None:
    import numpy as np
    import scipy.stats

    x, y = np.array([1.0, 2, 3, 4, 5]), np.array([6.0, 7, 8, 9, 10])
    assert mann_whitney_p(x, y) == pytest.approx(scipy.stats.mannwhitneyu(x, y).pvalue)


def test_the_table_shows_findings_and_a_summary_line() -> None:
    console = Console(record=True, width=220, color_system=None)
    render_table(list(_changes().values()), console, name_a="a", name_b="b")
    out = console.export_text()
    assert "significant: worse" in out and "too few samples" in out
    assert "+10.00 %" in out and "1 significant change(s)" in out


def test_compare_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    Results.from_rows(_rows("a", A)).save(runs / "a")
    Results.from_rows(_rows("b", B)).save(runs / "b")
    assert main(["--runs-dir", str(runs), "compare", "a", "b", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["a"] == "a" and doc["b"] == "b" and doc["alpha"] == 0.05
    by = {(c["metric"], c["workload"]): c for c in doc["changes"]}
    assert by[("peak_pss", "small")]["finding"] == "significant"
    assert by[("peak_pss", "large")]["finding"] == "too few samples"
    assert main(["--runs-dir", str(runs), "compare", "a", "b"]) == 0
    assert "Mann-Whitney" in capsys.readouterr().out


def test_compare_an_unknown_run_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--runs-dir", str(tmp_path), "compare", "nope", "nada"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_fidelities_and_modes_are_never_compared_with_each_other() -> None:
    import dataclasses

    small = {("peak_pss", "small"): A[("peak_pss", "small")]}
    board = [dataclasses.replace(r, fidelity="board", mode="measure") for r in _rows("b", B)]
    a = Results.from_rows(_rows("a", small))
    b = Results.from_rows(board)
    # Run A is a host smoke run, run B a board measurement: no cell pairs them up ...
    assert compare_runs(a, b) == []
    # ... and, when asked for one-sided cells, each keeps its own fidelity and mode, printed.
    cells = compare_runs(a, b, include_one_sided=True)
    small_cells = {(c.fidelity, c.mode, c.finding) for c in cells if (c.metric, c.workload) == ("peak_pss", "small")}
    assert small_cells == {("host", "smoke", "only in A"), ("board", "measure", "only in B")}
    console = Console(record=True, width=240, color_system=None)
    render_table(cells, console, name_a="a", name_b="b")
    out = console.export_text()
    assert "fidelity" in out and "mode" in out and "board" in out and "measure" in out
