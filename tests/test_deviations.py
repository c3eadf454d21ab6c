"""Every departure from the seed that concerns a run's rows is printed next to its KPI's numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core.manifest import load_manifest
from harness.kpis.deviations import DEVIATIONS, deviations_for, ingested_lines
from harness.report.markdown import render_markdown
from harness.report.text import deviation_lines
from harness.results.rows import Row
from harness.results.store import Results
from harness.results.verdicts import evaluate

ROOT = Path(__file__).resolve().parent.parent
M = load_manifest(ROOT / "kpis.toml")


def _row(kpi: str, **kw: Any) -> Row:
    base: dict[str, Any] = {
        "run_id": "r",
        "kpi": kpi,
        "metric": "rtt",
        "variant": "legacy",
        "workload": "",
        "target": "x86_64",
        "fidelity": "host",
        "mode": "smoke",
        "value": 5.0,
        "unit": "ms",
        "time": "2026-01-01T00:00:00+00:00",
    }
    base.update(kw)
    return Row(**base)


def test_every_kpi_of_the_manifest_has_its_deviations() -> None:
    assert set(DEVIATIONS) == {k.id for k in M.kpis}


def test_the_eight_seed_defects_are_each_named() -> None:
    text = " ".join(d.en for ds in DEVIATIONS.values() for d in ds if d.kind == "seed defect corrected")
    for needle in (
        "${IOTJS-Plus}",
        "vminfo",
        "legacy.js",
        "time since the app was loaded",
        "dep/iotjs",
        "no pass signal",
        "convert.py",
        "today's CMake and GCC",
    ):
        assert needle in text, needle


def test_kpi2_report_says_the_seed_would_measure_iotjs_and_that_the_companion_is_a_stand_in() -> None:
    rows = Results.from_rows([_row("app_latency"), _row("app_latency", variant="resource-api", value=6.0)])
    ev = evaluate(M.kpi("app_latency"), rows)
    lines = deviation_lines(ev, rows)
    assert any("`${IOTJS-Plus}`" in x and "would measure IoT.js" in x for x in lines)
    assert any(x.startswith("substitution: the phone's companion app") for x in lines)
    md = render_markdown([ev], rows, run_id="r", run_dir=ROOT)
    assert "### How this run differs from the seed procedure" in md
    ko = render_markdown([ev], rows, run_id="r", run_dir=ROOT, lang="ko")
    assert "### 이 실행이 절차서와 다른 점" in ko and "대체:" in ko


def test_a_substitution_shows_only_when_the_rows_it_concerns_are_there() -> None:
    board = Results.from_rows([_row("ml_latency", metric="latency", fidelity="board", mode="measure")]).df
    host = Results.from_rows([_row("ml_latency", metric="latency", fidelity="host")]).df
    assert not any("LiteRT" in d.en for d in deviations_for("ml_latency", board))
    assert any("LiteRT" in d.en for d in deviations_for("ml_latency", host))
    camera = Results.from_rows([_row("boards", metric="passed", note="pass; sourceType 'rpi'")]).df
    pattern = Results.from_rows([_row("boards", metric="passed", note="pass; sourceType 'test'")]).df
    assert not any("test pattern" in d.en for d in deviations_for("boards", camera))
    assert any("test pattern" in d.en for d in deviations_for("boards", pattern))


def test_ingested_rows_are_listed_with_their_file_and_sha256() -> None:
    ident = {"kind": "ingested", "file": "bench.log", "sha256": "ab" * 32}
    rows = Results.from_rows([_row("ml_latency", metric="latency", target_identity=ident, repeat=i) for i in range(3)])
    assert ingested_lines(rows.df) == [f"bench.log (sha256 {'ab' * 32}): 3 row(s) ingested by hand"]
    ev = evaluate(M.kpi("ml_latency"), rows)
    assert any(x.startswith("Ingested by hand (not run by the harness): bench.log") for x in deviation_lines(ev, rows))
