"""Faults that could lose or corrupt rows (issue 14, data safety).

A save of the tables cut short by SIGKILL leaves the old tables or, once the run is next opened,
the new ones; `report` says when the journal and the tables disagree. Kills are real: a child
process is SIGKILLed in the middle of the save (the fault is injected at the os call, the way the
existing disk-full tests inject ENOSPC).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.results.journal import append_row_journal
from harness.results.rows import CSV_NAME, JOURNAL_NAME, META_NAME, PARQUET_NAME, Row
from harness.results.store import COMMIT_NAME, Results

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_faults_security import harness, vminfo_log

ROOT = Path(__file__).resolve().parent.parent


def ingest(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return harness(tmp, "--runs-dir", str(tmp / "runs"), "ingest", *args)


def journal_rows(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / JOURNAL_NAME).read_text().splitlines() if x.strip()]


def table_rows(run: Path) -> tuple[int, int, int]:
    """Rows of results.parquet, results.csv and what results.meta.json says."""
    meta = json.loads((run / META_NAME).read_text())["rows"]
    return len(pd.read_parquet(run / PARQUET_NAME)), len(pd.read_csv(run / CSV_NAME)), meta


# --------------------------------------------------------------------------------------------
# Tables that agree with the journal
# --------------------------------------------------------------------------------------------


# Run in a child process: SIGKILL at the n-th call of os.<call> (for os.write, the n-th large write,
# cut to `fraction` of its bytes first), then `ant-kpi ARGS` or a save of N rows into RUN.
KILLED = r"""
import os, signal, sys
call, nth, fraction, what = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
real = getattr(os, call)
seen = [0]

def dying(*a, **kw):
    if call == "write" and len(a[1]) < 100_000:
        return real(*a, **kw)
    seen[0] += 1
    if seen[0] >= nth:
        if call == "write":
            real(a[0], bytes(a[1])[: int(len(a[1]) * fraction)])
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*a, **kw)

setattr(os, call, dying)
if what == "cli":
    from harness.cli import main
    main(sys.argv[5:])
else:
    from test_faults_data import _rows
    from harness.results.store import Results
    Results.from_rows(_rows(int(sys.argv[6]))).save(sys.argv[5])
"""


def killed(tmp: Path, call: str, nth: int, fraction: float, *args: str) -> int:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}
    p = subprocess.run(
        [sys.executable, "-c", KILLED, call, str(nth), str(fraction), *args],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return p.returncode


def test_report_warns_once_when_the_journal_and_the_tables_disagree_and_rebuilds_them(tmp_path: Path) -> None:
    assert (
        ingest(
            tmp_path,
            "1",
            str(vminfo_log(tmp_path / "a.log", 1)),
            "--variant",
            "iotjs",
            "--fidelity",
            "board",
            "--run-id",
            "r",
        ).returncode
        == 0
    )
    run = tmp_path / "runs" / "r"
    row = Row.from_record({k: v for k, v in journal_rows(run)[0].items() if k != "schema"})
    for i in range(3):  # rows journaled by a run that died before it saved its tables
        append_row_journal(run, Row(**{**row.__dict__, "repeat": 10 + i}))
    p = harness(tmp_path, "--runs-dir", str(tmp_path / "runs"), "report", "r", "--no-html")
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: the journal holds 5 rows")
    assert "results.parquet 2" in lines[0] and "rebuilt" in lines[0]
    assert table_rows(run) == (5, 5, 5)
    again = harness(tmp_path, "--runs-dir", str(tmp_path / "runs"), "report", "r", "--no-html")
    assert again.returncode == 0 and "warning" not in again.stderr


def _rows(n: int) -> list[Row]:
    return [
        Row(
            run_id="t",
            kpi="js_memory",
            metric="peak_pss",
            variant="iotjs",
            value=100.0 + i,
            unit="KB",
            fidelity="host",
            mode="smoke",
            repeat=i,
            time="2026-01-01T00:00:00+00:00",
        )
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("call", "nth", "tables"),
    [("replace", 3, None), ("fsync", 2, 2)],
    ids=["between-the-swaps", "before-the-commit-point"],
)
def test_a_save_killed_at_any_point_leaves_tables_that_agree_once_the_run_is_opened(
    tmp_path: Path, call: str, nth: int, tables: int | None
) -> None:
    run = tmp_path / "runs" / "t"
    for r in _rows(5):
        append_row_journal(run, r)
    Results.from_rows(_rows(2)).save(run)
    assert killed(tmp_path, call, nth, 1.0, "save", str(run), "5") == -signal.SIGKILL
    if tables is None:  # killed after the commit point, between two renames: the tables disagree
        assert (run / COMMIT_NAME).exists()
        assert sorted(table_rows(run)) == [2, 2, 5]
    else:  # killed before it: the previous tables are whole
        assert table_rows(run) == (tables,) * 3
    p = harness(tmp_path, "--runs-dir", str(tmp_path / "runs"), "report", "t", "--no-html")
    assert p.returncode == 0, p.stderr
    assert table_rows(run) == (5, 5, 5)
    assert not [x.name for x in run.iterdir() if x.name.startswith(".")]


def test_stale_temporary_files_of_interrupted_writes_are_removed_when_a_run_is_opened(tmp_path: Path) -> None:
    assert (
        ingest(
            tmp_path,
            "1",
            str(vminfo_log(tmp_path / "a.log", 1)),
            "--variant",
            "iotjs",
            "--fidelity",
            "board",
            "--run-id",
            "r",
        ).returncode
        == 0
    )
    run = tmp_path / "runs" / "r"
    stale = [run / ".results.csv.x1y2.tmp", run / ".report.md.abc.tmp", run / "steps" / "k" / ".s.json.7.tmp"]
    for s in stale:
        s.parent.mkdir(parents=True, exist_ok=True)
        s.write_text("half")
    assert harness(tmp_path, "--runs-dir", str(tmp_path / "runs"), "report", "r", "--no-html").returncode == 0
    assert [s for s in stale if s.exists()] == []
