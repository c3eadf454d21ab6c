"""CLI behaviour: one-line errors, exit codes, the dry run as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_validate_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(ROOT / "kpis.toml")]) == 0
    assert "8 KPIs" in capsys.readouterr().out


def test_validate_broken_manifest_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "kpis.toml"
    bad.write_text((ROOT / "kpis.toml").read_text().replace("smoke_repeats", "smoke_repeat"))
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "validate", str(bad)], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "defaults.smoke_repeat: unknown key (did you mean 'smoke_repeats'?)" in lines[0]
    assert "Traceback" not in proc.stderr


def test_plan_json_describes_all_eight_kpis(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--manifest", str(ROOT / "kpis.toml"), "plan", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [k["number"] for k in doc["kpis"]] == list(range(1, 9))
    assert all(k["steps"] for k in doc["kpis"])


def test_plan_selects_by_session_name_and_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--manifest", str(ROOT / "kpis.toml"), "plan", "kpi_npu", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [k["kpi"] for k in doc["kpis"]] == ["npus"]
    assert main(["--manifest", str(ROOT / "kpis.toml"), "plan", "--target", "rpi2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {k["kpi"] for k in doc["kpis"]} == {"js_memory", "app_latency", "boards"}


def test_plan_human_output_shows_notes_and_gaps(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--manifest", str(ROOT / "kpis.toml"), "plan", "js_memory"]) == 0
    out = capsys.readouterr().out
    assert "KPI 1" in out and "gap:" in out and "note:" in out


def test_unknown_kpi_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--manifest", str(ROOT / "kpis.toml"), "plan", "kpi_npus"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'kpi_npu'" in err


def test_missing_manifest_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--manifest", str(tmp_path / "nope.toml"), "plan"]) == 2
    assert "no such file" in capsys.readouterr().err


def _vminfo_log(path: Path, pss: int) -> Path:
    lines = ["", *(f"{1000 * i} 900 200 132 1200 {pss - 10 + i} {pss - 10 + i}" for i in range(11)), ""]
    path.write_text("\n".join(lines))
    return path


def test_ingest_turns_hand_captured_vminfo_logs_into_board_rows(tmp_path: Path) -> None:
    import pandas as pd

    runs = tmp_path / "runs"
    base = ["--manifest", str(ROOT / "kpis.toml"), "--runs-dir", str(runs)]
    for variant, pss in (("iotjs", 2000), ("iotjs_plus", 1800)):
        logs = [_vminfo_log(tmp_path / f"{variant}-{i}.log", pss + i) for i in range(3)]
        rc = main(
            [
                *base,
                "ingest",
                "1",
                *map(str, logs),
                "--variant",
                variant,
                "--workload",
                "v8-deltablue",
                "--target",
                "rpi-lab-1",
                "--fidelity",
                "board",
                "--run-id",
                "hand",
            ]
        )
        assert rc == 0
    df = pd.read_parquet(runs / "hand" / "results.parquet")
    peaks = df[df.metric == "peak_pss"]
    assert set(peaks.fidelity) == {"board"} and len(peaks) == 6
    assert sorted(peaks[peaks.variant == "iotjs"].value) == [2000.0, 2001.0, 2002.0]
    assert (runs / "hand" / "ingested" / "000-iotjs-0.log").exists()
    assert "v8-deltablue" in (runs / "hand" / "report.md").read_text()


def test_ingest_rejects_an_unknown_variant_and_garbage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--manifest", str(ROOT / "kpis.toml"), "--runs-dir", str(tmp_path / "runs")]
    log = _vminfo_log(tmp_path / "a.log", 100)
    assert main([*base, "ingest", "1", str(log), "--variant", "nodejs", "--fidelity", "board"]) == 2
    assert "no variant 'nodejs'" in capsys.readouterr().err
    junk = tmp_path / "junk.log"
    junk.write_text("not a vminfo log\n")
    assert main([*base, "ingest", "1", str(junk), "--variant", "iotjs", "--fidelity", "board"]) == 2
    assert "\n" not in capsys.readouterr().err.strip()


def test_report_renders_the_newest_stored_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--manifest", str(ROOT / "kpis.toml"), "--runs-dir", str(tmp_path / "runs")]
    log = _vminfo_log(tmp_path / "a.log", 100)
    assert main([*base, "ingest", "1", str(log), "--variant", "iotjs", "--fidelity", "board", "--run-id", "r1"]) == 0
    (tmp_path / "runs" / "r1" / "report.md").unlink()
    capsys.readouterr()
    assert main([*base, "report"]) == 0
    assert (tmp_path / "runs" / "r1" / "report.md").exists()
    assert "js_memory" in capsys.readouterr().out
    assert main([*base, "report", "nope"]) == 2
    assert main([*base, "runs"]) == 0


def test_runs_lists_a_build_only_run_and_a_broken_table_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    runs = tmp_path / "runs"
    (runs / "a-build").mkdir(parents=True)
    (runs / "a-build" / "builds.json").write_text('{"builds": {}}')
    (runs / "b-started").mkdir()
    (runs / "c-broken").mkdir()
    (runs / "c-broken" / "results.parquet").write_text("not parquet")
    capsys.readouterr()
    assert main(["--manifest", str(ROOT / "kpis.toml"), "--runs-dir", str(runs), "runs"]) == 0
    # Not a terminal: one plain record per run ("- run: NAME" and its "column: value" lines).
    lines: dict[str, str] = {}
    name = ""
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("- "):
            name = line.split(": ", 1)[1]
        if name:
            lines[name] = lines.get(name, "") + line + "\n"
    assert "builds.json" in lines["a-build"] and "error" not in lines["a-build"]
    assert "no result rows yet" in lines["b-started"]
    assert "not a readable" in lines["c-broken"]


def test_report_of_several_runs_counts_boards_measured_in_different_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.results.rows import Row
    from harness.results.store import Results

    def board_row(run_id: str, name: str, model: str, hardware: str) -> Row:
        return Row(
            run_id=run_id,
            kpi="boards",
            metric="passed",
            variant="ant",
            workload="streaming",
            target="rpi2",
            fidelity="board",
            mode="measure",
            value=1.0,
            unit="count",
            time="2026-01-01T00:00:00+00:00",
            target_identity={"name": name, "model": model, "hardware_model": hardware},
            note="pass: Pipeline ready!, 90 frames at the client",
        )

    runs = tmp_path / "runs"
    Results.from_rows([board_row("a", "pi2-1", "Raspberry Pi 2", "Raspberry Pi 2 Model B Rev 1.1")]).save(runs / "a")
    Results.from_rows([board_row("b", "pi3-1", "Raspberry Pi 3", "Raspberry Pi 3 Model B Rev 1.2")]).save(runs / "b")
    base = ["--manifest", str(ROOT / "kpis.toml"), "--runs-dir", str(runs), "report"]
    capsys.readouterr()
    assert main([*base, "a", "b", "--out", str(tmp_path / "both")]) == 0
    out = capsys.readouterr().out
    assert "runs judged together: a, b (2 rows)" in out
    text = (tmp_path / "both" / "report.md").read_text()
    assert "2 passed with evidence" in text and "Raspberry Pi 2" in text and "Raspberry Pi 3" in text
    # Neither run's own files were rewritten.
    assert not (runs / "a" / "report.md").exists() and not (runs / "b" / "report.md").exists()
    assert main([*base, "a", "--out", str(tmp_path / "x")]) == 2
