"""The report: Markdown against a checked-in golden file, the console view, and report.md.

Regenerate the golden file after an intended change with:
    ANT_KPI_UPDATE_GOLDEN=1 python -m pytest tests/test_report.py
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness.core.manifest import Compare, Kpi, KpiTarget, Metric, Variant
from harness.report.console import render_console
from harness.report.html import render_html
from harness.report.markdown import render_markdown, write_report
from harness.report.plots import Plot
from harness.report.text import fmt_num, fmt_value
from harness.results.judgement import Evaluation, Verdict
from harness.results.rows import Row
from harness.results.store import Results
from harness.results.verdicts import evaluate

GOLDEN = Path(__file__).resolve().parent / "golden" / "report_small.md"
UPDATE = os.environ.get("ANT_KPI_UPDATE_GOLDEN") == "1"
RUN_ID = "20240501-120000-golden"
SHA = "02599f35810cfa6ea5495bbc42194ed576b969de"


def row(i: int = 0, **kw: Any) -> Row:
    base: dict[str, Any] = {
        "run_id": RUN_ID,
        "kpi": "js_memory",
        "metric": "peak_pss",
        "variant": "iotjs",
        "workload": "v8-deltablue",
        "target": "rpi2",
        "fidelity": "board",
        "mode": "measure",
        "value": 100.0,
        "unit": "KB",
        "repeat": i,
        "time": f"2024-05-01T12:{i:02d}:00+00:00",
        "source_commit": SHA,
        "harness_version": "0.1.0+1234567890ab",
        "harness_dirty": False,
    }
    base.update(kw)
    return Row(**base)


KPIS = (
    Kpi(
        id="js_memory",
        number=1,
        session="kpi_js_memory",
        title_ko="경량 자바스크립트 런타임 메모리 요구량",
        title_en="Memory requirement of the lightweight JavaScript runtime",
        procedure="js_memory",
        metrics=(Metric(name="peak_pss", unit="KB", direction="lower"),),
        compare=Compare(metric="peak_pss", baseline="iotjs", candidate="iotjs_plus", statistic="reduction_pct"),
        target=KpiTarget(kind="better_than_baseline"),
        verdict_fidelity=("board",),
        variants=(Variant(name="iotjs"), Variant(name="iotjs_plus")),
        workloads=("v8-deltablue", "sp-crypto-sha1"),
        targets=("rpi2",),
    ),
    Kpi(
        id="app_latency",
        number=2,
        session="kpi_app_latency",
        title_ko="응용 실행 시간",
        title_en="Application execution time",
        procedure="app_latency",
        metrics=(Metric(name="rtt", unit="ms", direction="lower"),),
        compare=Compare(metric="rtt", baseline="legacy", candidate="resource-api", statistic="overhead_pct"),
        target=KpiTarget(kind="report"),
        verdict_fidelity=("board",),
        variants=(Variant(name="legacy"), Variant(name="resource-api")),
        workloads=("legacy", "resource-api"),
        targets=("rpi2",),
    ),
    Kpi(
        id="ml_latency",
        number=3,
        session="kpi_ml_latency",
        title_ko="기계학습 실행 시간",
        title_en="Machine-learning execution time",
        procedure="ml_latency",
        metrics=(
            Metric(name="inference_avg", unit="us", direction="lower"),
            Metric(name="accuracy_loss", unit="%p", direction="lower"),
        ),
        compare=Compare(
            metric="inference_avg", baseline="mobilenet_v2_1.0_224", candidate="mbv1_0.9_v4u", statistic="speedup"
        ),
        target=KpiTarget(kind="at_most", metric="accuracy_loss", value=3.0, unit="%p"),
        verdict_fidelity=("board",),
        variants=(Variant(name="mbv1_0.9_v4u"),),
        workloads=(),
        targets=("x86_64",),
    ),
    Kpi(
        id="npus",
        number=7,
        session="kpi_npu",
        title_ko="지원 NPU 수",
        title_en="Number of supported NPUs",
        procedure="npus",
        metrics=(Metric(name="passed", unit="count", direction="higher"),),
        target=KpiTarget(kind="count_at_least", value=3, of=("VTA", "Ethos-U55", "Gemmini")),
        verdict_fidelity=("simulator", "board"),
        variants=(Variant(name="VTA"), Variant(name="Ethos-U55"), Variant(name="Gemmini")),
        workloads=(),
        targets=("x86_64",),
    ),
)

BASE = [12540.0, 12556.0, 12610.0, 12498.0, 12577.0, 12530.0]
PLUS = [9020.0, 9104.0, 8990.0, 9050.0, 9077.0, 9012.0]


def small_results() -> Results:
    rows: list[Row] = []
    for app, shift in (("v8-deltablue", 0.0), ("sp-crypto-sha1", -1500.0)):
        for i, (b, p) in enumerate(zip(BASE, PLUS, strict=True)):
            for variant, v in (("iotjs", b), ("iotjs_plus", p)):
                rows.append(
                    row(
                        i,
                        workload=app,
                        variant=variant,
                        value=v + shift + (i % 3) * 7.5,
                        argv=["python3", "pss.py", "--", f"{variant}/iotjs", f"test/appbench/{app}.js"],
                        artefact_sha256=("aa" if variant == "iotjs" else "bb") * 32,
                        image_digest="sha256:" + "cc" * 32,
                        target_identity={"board": "Raspberry Pi 3", "kernel": "6.1.21-v7+"},
                        log=f"logs/measure_{variant}_{app}_{i}.log",
                    )
                )
    rows += [
        row(
            kpi="app_latency",
            metric="rtt",
            variant="legacy",
            workload="legacy",
            value=math.nan,
            unit="ms",
            status="blocked",
            note="no board 'rpi3' in boards.toml | add it, see README",
        ),
        row(
            kpi="app_latency",
            metric="rtt",
            variant="resource-api",
            workload="resource-api",
            value=math.nan,
            unit="ms",
            status="blocked",
            note="no board 'rpi3' in boards.toml | add it, see README",
        ),
    ]
    rows += [
        row(
            i,
            kpi="ml_latency",
            metric="accuracy_loss",
            variant="mbv1_0.9_v4u",
            workload="",
            target="x86_64",
            fidelity="host",
            value=v,
            unit="%p",
            harness_dirty=True,
            argv=["python3", "train.py", "--data", "/data/imagenet subset", "--prune=0.9;echo"],
            log="logs/train.log",
        )
        for i, v in enumerate([1.9, 2.1])
    ]
    rows += [
        row(
            i,
            kpi="ml_latency",
            metric="inference_avg",
            variant=model,
            workload=model,
            target="arm64",
            fidelity="emulated",
            mode="smoke",
            value=v,
            unit="us",
            argv=["./benchmark_model", f"--graph={model}.tflite", "--num_runs=50"],
            log=f"logs/bench_{model}_{i}.log",
        )
        for model, values in (
            ("mobilenet_v2_1.0_224", [41234.5, 40987.0, 41502.25]),
            ("mbv1_0.9_v4u", [20110.0, 19876.5, 20342.0]),
        )
        for i, v in enumerate(values)
    ]
    rows += [
        row(
            kpi="npus",
            metric="passed",
            variant="VTA",
            workload="test_vta.py",
            target="x86_64",
            fidelity="simulator",
            value=1.0,
            unit="count",
            log="logs/npu VTA.log",
            argv=["python3", "testcase/test_vta.py"],
        ),
        row(
            kpi="npus",
            metric="passed",
            variant="Ethos-U55",
            workload="test_ethosu.py",
            target="x86_64",
            fidelity="simulator",
            value=math.nan,
            unit="count",
            status="blocked",
            note="the Corstone-300 FVP licence is not accepted",
        ),
    ]
    return Results.from_rows(rows)


MISSING_LOG = "logs/measure_iotjs_v8-deltablue_1.log"


def make_run_dir(tmp_path: Path) -> Path:
    """A run directory holding every log the rows name except MISSING_LOG."""
    run_dir = tmp_path / RUN_ID
    (run_dir / "logs").mkdir(parents=True)
    for log in set(small_results().df["log"].tolist()) - {"", MISSING_LOG}:
        (run_dir / log).write_text("log\n")
    return run_dir


def evaluations(res: Results) -> list[Evaluation]:
    return [evaluate(k, res) for k in KPIS]


def test_small_run_evaluates_to_one_verdict_of_each_kind() -> None:
    got = [e.verdict for e in evaluations(small_results())]
    assert got == [Verdict.PASS, Verdict.BLOCKED, Verdict.NO_VERDICT, Verdict.INCONCLUSIVE]


def test_every_verdict_has_its_target_and_reason_in_korean_too() -> None:
    for ev in evaluations(small_results()):
        assert ev.target_ko and ev.reason_ko, ev.kpi
        assert any("\uac00" <= ch <= "\ud7a3" for ch in ev.reason_ko), ev.reason_ko  # Hangul
        assert not any("\uac00" <= ch <= "\ud7a3" for ch in ev.reason), ev.reason
    # An evaluation made without them (an older evaluations file) falls back to English.
    ev = replace(evaluations(small_results())[0], target_ko="", reason_ko="")
    text = render_markdown([ev], small_results(), run_id=RUN_ID, run_dir=".", lang="ko")
    assert ev.reason in text and ev.target in text


def test_markdown_report_matches_the_golden_file(tmp_path: Path) -> None:
    res = small_results()
    text = render_markdown(evaluations(res), res, run_id=RUN_ID, run_dir=make_run_dir(tmp_path))
    if UPDATE:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    assert GOLDEN.exists(), "run once with ANT_KPI_UPDATE_GOLDEN=1 to create the golden file"
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_markdown_escapes_cells_and_links_logs_relatively(tmp_path: Path) -> None:
    res = small_results()
    text = render_markdown(evaluations(res), res, run_id=RUN_ID, run_dir=make_run_dir(tmp_path))
    assert "boards.toml | add it" in text  # in prose a pipe needs no escape
    for block in text.split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].startswith("| "):
            # Every table row has as many unescaped pipes as its header.
            counts = {line.replace("\\|", "").count("|") for line in lines}
            assert len(counts) == 1, block
    assert "[logs/npu VTA.log](logs/npu%20VTA.log)" in text
    assert f"[{MISSING_LOG}]({MISSING_LOG}) (not found in the run directory)" in text
    assert text.count("not found in the run directory") == 1
    assert "python3 train.py --data '/data/imagenet subset' '--prune=0.9;echo'" in text
    assert "경량 자바스크립트 런타임 메모리 요구량" in text
    assert str(tmp_path) not in text


def test_write_report_writes_report_md_atomically(tmp_path: Path) -> None:
    res = small_results()
    run_dir = make_run_dir(tmp_path)
    evs = evaluations(res)
    path = write_report(run_dir, evs, res)
    assert path == run_dir / "report.md"
    assert path.read_text(encoding="utf-8") == render_markdown(evs, res, run_id=RUN_ID, run_dir=run_dir)
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]


def test_console_shows_verdicts_and_numbers() -> None:
    res = small_results()
    evs = evaluations(res)
    console = Console(record=True, width=220, color_system=None)
    render_console(evs, res, console)
    out = console.export_text()
    for verdict in ("PASS", "BLOCKED", "NO_VERDICT", "INCONCLUSIVE"):
        assert verdict in out
    js = evs[0]
    assert fmt_value(js.value, js.ci_low, js.ci_high) in out
    cell = js.per_workload[-1]
    assert cell.workload == "v8-deltablue" and cell.baseline_summary is not None
    assert cell.baseline_summary.median == 12554.25
    assert "12,554 [12,498, 12,625]" in out
    assert "Corstone-300 FVP licence" in out
    assert "no evidence: Ethos-U55, Gemmini" in out
    assert "evidence: 24 log(s)" in out


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (math.nan, "—"),
        (12556.0, "12,556"),
        (12556.4, "12,556"),
        (123.45, "123.5"),
        (27.891, "27.89"),
        (0.012345, "0.0123"),
        (-3.0, "-3"),
        (math.inf, "∞"),
    ],
)
def test_numbers_are_formatted_for_people(x: float, text: str) -> None:
    assert fmt_num(x) == text


def test_a_value_and_its_ci_share_one_precision() -> None:
    assert fmt_value(2.0, 1.9, 2.1) == "2.00 [1.90, 2.10]"
    assert fmt_value(28.0, 27.55, 28.35) == "28.00 [27.55, 28.35]"
    assert fmt_value(3.0, 3.0, 3.0) == "3"


# --------------------------------------------------------------------------------------------
# Korean Markdown, HTML and plots
# --------------------------------------------------------------------------------------------

GOLDEN_KO = GOLDEN.with_name("report_small.ko.md")
GOLDEN_HTML = GOLDEN.with_name("report_small.html")


def _golden(path: Path, text: str) -> None:
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), "run once with ANT_KPI_UPDATE_GOLDEN=1 to create the golden file"
    assert text == path.read_text(encoding="utf-8")


def test_korean_markdown_matches_the_golden_file(tmp_path: Path) -> None:
    res = small_results()
    text = render_markdown(evaluations(res), res, run_id=RUN_ID, run_dir=make_run_dir(tmp_path), lang="ko")
    _golden(GOLDEN_KO, text)
    assert "## 1 · js_memory — 경량 자바스크립트 런타임 메모리 요구량" in text
    assert "**통과**" in text and "**차단됨**" in text and "**판정 보류**" in text
    assert "- **목표:**" in text and "### 출처 정보" in text


def test_html_report_matches_the_golden_file(tmp_path: Path) -> None:
    res = small_results()
    plots = {"js_memory": [Plot(path="plots/js_memory-compare.png", caption="bars", kind="compare")]}
    text = render_html(evaluations(res), res, run_id=RUN_ID, run_dir=make_run_dir(tmp_path), plots=plots)
    _golden(GOLDEN_HTML, text)


def test_html_is_self_contained_and_escapes_what_the_rows_say(tmp_path: Path) -> None:
    res = small_results().append(
        [
            row(
                kpi="npus",
                metric="passed",
                variant="Gemmini",
                workload="t.py",
                target="x86_64",
                fidelity="simulator",
                value=math.nan,
                unit="count",
                status="failed",
                note="<script>alert('x')</script> & more",
            )
        ]
    )
    text = render_html(evaluations(res), res, run_id=RUN_ID, run_dir=make_run_dir(tmp_path))
    assert "<script>alert" not in text and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in text
    assert "http://" not in text and "https://" not in text and "<link" not in text
    assert "<style>" in text and "<script" not in text
    for verdict in ("PASS", "BLOCKED", "NO_VERDICT", "INCONCLUSIVE"):
        assert f'class="badge v-{verdict}' in text
    assert 'href="logs/npu%20VTA.log"' in text
    assert text.count("not found in the run directory") == 1
    assert "python3 train.py --data &#x27;/data/imagenet subset&#x27; &#x27;--prune=0.9;echo&#x27;" in text


def test_korean_html_uses_korean_labels_and_titles(tmp_path: Path) -> None:
    res = small_results()
    text = render_html(evaluations(res), res, run_id=RUN_ID, run_dir=make_run_dir(tmp_path), lang="ko")
    assert '<html lang="ko">' in text
    for word in ("ANT KPI 평가 보고서", "요약", "판정", "통과", "차단됨", "측정 방식", "출처 정보", "보드"):
        assert word in text, word
    assert "<h2>경량 자바스크립트 런타임 메모리 요구량</h2>" in text


def test_plots_are_png_files_next_to_the_report(tmp_path: Path) -> None:
    from harness.payload.pss import PssResult, Sample, write_json
    from harness.report.plots import make_plots

    res = small_results()
    run_dir = make_run_dir(tmp_path)
    # Two real traces behind the first repeat of KPI 1, in the sampler's own format.
    (run_dir / "raw").mkdir()
    traced = []
    for variant, top in (("iotjs", 12500), ("iotjs_plus", 9000)):
        trace = tuple(Sample(t=i * 0.01, pss_kb=min(top, 400 * (i + 1)), pss_anon_kb=100) for i in range(60))
        path = f"raw/{variant}.json"
        write_json(
            PssResult(
                argv=("x",),
                exit_status=0,
                timed_out=False,
                wall_s=0.6,
                interval_s=0.01,
                started_at=0.0,
                sampler_cpu_s=0.0,
                trace=trace,
            ),
            run_dir / path,
        )
        traced.append(row(0, variant=variant, value=float(top), log=path))
    res = res.append(traced)
    plots = make_plots(evaluations(res), res, run_dir)
    kinds = {k: [p.kind for p in v] for k, v in plots.items()}
    assert kinds["js_memory"] == ["compare", "trace"]
    assert kinds["ml_latency"] == ["compare", "distribution"]  # inference_avg is in us
    assert kinds["npus"] == [] and kinds["app_latency"] == []
    for ps in plots.values():
        for p in ps:
            assert (run_dir / p.path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = render_html(evaluations(res), res, run_id=RUN_ID, run_dir=run_dir, plots=plots)
    assert '<img src="plots/js_memory-pss-trace.png"' in text


def test_report_command_writes_markdown_html_and_plots_in_korean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    runs = tmp_path / "runs"
    run_dir = make_run_dir(runs)
    small_results().filter(kpi=["js_memory", "app_latency"]).save(run_dir)
    manifest = Path(__file__).resolve().parent.parent / "kpis.toml"
    rc = main(["--manifest", str(manifest), "--runs-dir", str(runs), "report", RUN_ID, "--lang", "ko"])
    assert rc == 0, capsys.readouterr().err
    for name in ("report.ko.md", "report.ko.html", "plots/js_memory-compare.png"):
        assert (run_dir / name).is_file(), name
    assert "통과" in (run_dir / "report.ko.html").read_text(encoding="utf-8")
    with pytest.raises(SystemExit) as info:  # argparse refuses a language the report does not speak
        main(["--manifest", str(manifest), "--runs-dir", str(runs), "report", RUN_ID, "--lang", "xx"])
    assert info.value.code == 2


def test_a_run_resumed_for_one_kpi_still_reports_every_kpi_it_has_rows_for(tmp_path: Path) -> None:
    from harness.core.manifest import load_manifest
    from harness.report.finish import evaluate_and_report

    run_dir = make_run_dir(tmp_path / "runs")
    small_results().filter(kpi=["js_memory", "app_latency"]).save(run_dir)
    manifest = load_manifest(Path(__file__).resolve().parent.parent / "kpis.toml")
    asked = [k for k in manifest.kpis if k.id == "app_latency"]
    console = Console(record=True, width=200)
    verdicts = evaluate_and_report(run_dir, RUN_ID, manifest, asked, console, html=False)
    assert len(verdicts) == 1  # the verdict of what was asked for, not of the whole run
    text = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "## 1 · js_memory" in text and "## 2 · app_latency" in text
    shown = console.export_text()
    assert "KPI 2" in shown or "app_latency" in shown
    assert "js_memory" not in shown


def test_the_default_run_is_the_one_measured_last_not_the_last_by_name(tmp_path: Path) -> None:
    from harness.results.journal import append_row_journal
    from harness.results.runs import resolve_run

    for name, age in (("zz-named-early", 3600), ("20240501-later", 0)):
        append_row_journal(tmp_path / name, row())
        t = (tmp_path / name / "results.jsonl").stat().st_mtime - age
        os.utime(tmp_path / name / "results.jsonl", (t, t))
    (tmp_path / "zz-empty").mkdir()
    assert resolve_run(tmp_path, None).name == "20240501-later"


def test_steps_a_mode_leaves_out_are_listed_in_every_rendering_and_never_as_blocked(tmp_path: Path) -> None:
    from harness.commands.run import record_plan
    from harness.core.manifest import load_manifest
    from harness.core.runner import open_run
    from harness.kpis import plan_kpi
    from harness.report.html import render_html

    root = Path(__file__).resolve().parent.parent
    m = load_manifest(root / "kpis.toml")
    run = open_run(manifest=m, project_root=root, mode="smoke", runs_dir=tmp_path, run_id="r", cache_dir=tmp_path / "c")
    run.console = Console(record=True, width=200, color_system=None)
    record_plan(run, plan_kpi(m, m.kpi("vit_throughput"), mode="smoke", project_root=root))
    assert "not part of smoke mode: convert:tflite" in run.console.export_text()
    vit = [
        row(i, kpi="vit_throughput", metric="throughput", variant=v, workload="deit_small-224-b1", target="x86_64",
            fidelity="host", mode="smoke", value=x, unit="images/s")
        for i, (v, x) in enumerate([("vit", 12.1), ("packvit", 14.3)])
    ]  # fmt: skip
    res = Results.from_rows(vit)
    ev = evaluate(m.kpi("vit_throughput"), res)
    assert ev.blocked == 0  # nothing left out by the mode is a blocked row
    md = render_markdown([ev], res, run_id="r", run_dir=run.run_dir)
    assert "### Not part of this mode (smoke): never run, not counted as blocked" in md
    assert "- convert:tflite: export the plain and the packed ViT to TFLite" in md
    assert "- measure:{vit,packvit,packvit_masked}:arm64:" in md and "a measure run plans it" in md
    html = render_html([ev], res, run_id="r", run_dir=run.run_dir, plots={})
    assert "Not part of this mode (smoke)" in html
    console = Console(record=True, width=200, color_system=None)
    render_console([ev], res, console, run_dir=run.run_dir)
    assert "measure:{vit,packvit,packvit_masked}:arm64" in console.export_text()
    # The unit of a comparison says what it compares: images/s here, KB for KPI 5.
    assert "x (speedup of throughput, images/s)" in md


def test_one_reason_blocking_several_rows_is_printed_once_naming_them() -> None:
    note = "the baseline was not fetched — fix: set ANT_KPI_BASELINE_TFLITE"
    rows = [
        row(0, variant="iotjs", status="blocked", value=math.nan, note=note),
        row(0, variant="iotjs_plus", status="blocked", value=math.nan, note=note),
        row(0, variant="iotjs", target="", workload="", status="blocked", value=math.nan, note="other"),
    ]
    res = Results.from_rows(rows)
    ev = evaluate(KPIS[0], res)
    md = render_markdown([ev], res, run_id=RUN_ID, run_dir=Path("."))
    assert md.count(note) == 2  # the verdict's reason and the blocked rows' list, once each
    assert f"- blocked: peak_pss iotjs/v8-deltablue on rpi2, iotjs_plus/v8-deltablue on rpi2 — {note}" in md
    assert "- blocked: peak_pss iotjs — other" in md and "-:" not in md


@pytest.mark.parametrize(
    "interval",
    [
        "range of 4 per-workload values, not a CI",
        "range of 2 exact values",
        "95 % CI: percentile bootstrap of the median over 5 workloads",
        "95 % CI: percentile bootstrap of the two medians (one workload)",
        "95 % CI of the median (order statistic)",
        "exact: static values, read not sampled",
    ],
)
def test_every_kind_of_interval_is_said_in_korean_too(interval: str) -> None:
    from harness.report.text import interval_text

    ko = interval_text(interval, 1.0, 2.0, "ko")
    assert ko.startswith("[1, 2]: ") and not any(w in ko for w in ("range", "percentile", "exact", "median"))
    assert interval_text(interval, 1.0, 2.0, "en") == f"[1, 2]: {interval}"
