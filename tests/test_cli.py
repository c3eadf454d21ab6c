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
