"""Faults that could lose or corrupt rows (issue 14, data safety; issue 13 point 5, ingest).

Ingest adds repeats and never replaces evidence; an ingest (or a save of the tables) cut short by
SIGKILL leaves the whole of it or none of it once the run is next opened; `report` says when the
journal and the tables disagree; ingest and report take the runs lock; bundles carry ingested/.
Kills are real: a child process is SIGKILLed in the middle of the write (the fault is injected at
the os call that writes, the way the existing disk-full tests inject ENOSPC).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.core.fsio import exclusive_lock
from harness.results.journal import BATCH_NAME, append_row_journal
from harness.results.rows import CSV_NAME, JOURNAL_NAME, META_NAME, PARQUET_NAME, Row
from harness.results.store import COMMIT_NAME, Results

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_faults_security import harness, vminfo_log

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def ingest(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return harness(tmp, "--runs-dir", str(tmp / "runs"), "ingest", *args)


def journal_rows(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / JOURNAL_NAME).read_text().splitlines() if x.strip()]


def table_rows(run: Path) -> tuple[int, int, int]:
    """Rows of results.parquet, results.csv and what results.meta.json says."""
    meta = json.loads((run / META_NAME).read_text())["rows"]
    return len(pd.read_parquet(run / PARQUET_NAME)), len(pd.read_csv(run / CSV_NAME)), meta


def persend_log(path: Path, n: int) -> Path:
    """A per-send resourcebench log in the harness's copies' format: n replies, round trips scattered."""
    lines = ["ANT app runtime start", *(f"({i})Legacy mode elapsed time: {4 + (i * 7) % 9}ms" for i in range(1, n + 1))]
    path.write_text("\n".join([*lines, "onStop", ""]))
    return path


# --------------------------------------------------------------------------------------------
# Ingest adds repeats, keeps every evidence file, states fidelity and mode
# --------------------------------------------------------------------------------------------


def test_each_ingest_of_one_variant_adds_repeats_and_keeps_every_evidence_file(tmp_path: Path) -> None:
    base = ["--variant", "iotjs", "--workload", "v8-deltablue", "--fidelity", "board", "--target", "pi-1"]
    contents = []
    for i, pss in enumerate((2000, 2100, 2200)):
        logs = [vminfo_log(tmp_path / "a.log", pss)]  # the same file name each time, new content
        if i == 1:
            logs.append(vminfo_log(tmp_path / "b.log", pss + 50))
        contents += [p.read_bytes() for p in logs]
        p = ingest(tmp_path, "1", *map(str, logs), *base, "--run-id", "hand")
        assert p.returncode == 0, p.stderr
    other = ingest(tmp_path, "1", str(vminfo_log(tmp_path / "c.log", 1)), *base[:-1], "pi-2", "--run-id", "hand")
    assert other.returncode == 0, other.stderr
    run = tmp_path / "runs" / "hand"
    df = pd.read_parquet(run / PARQUET_NAME)
    peaks = df[(df.metric == "peak_pss") & (df.target == "pi-1")].sort_values("repeat")
    assert peaks.repeat.tolist() == [0, 1, 2, 3]
    assert peaks.value.tolist() == [2010.0, 2110.0, 2160.0, 2210.0]
    assert df[df.target == "pi-2"].repeat.tolist() == [0, 0]  # another target counts its own repeats
    assert table_rows(run) == (len(journal_rows(run)),) * 3 == (10, 10, 10)
    evidence = sorted((run / "ingested").iterdir())
    assert [p.name for p in evidence] == ["000-a.log", "001-a.log", "002-b.log", "003-a.log", "004-c.log"]
    assert [p.read_bytes() for p in evidence[:4]] == contents
    assert set(peaks.log) == {f"ingested/{p.name}" for p in evidence[:4]}


@pytest.mark.parametrize(
    ("fidelity", "mode"), [("board", "measure"), ("simulator", "measure"), ("host", "smoke"), ("emulated", "smoke")]
)
def test_ingested_rows_take_the_stated_fidelity_the_mode_it_implies_and_name_their_file(
    tmp_path: Path, fidelity: str, mode: str
) -> None:
    log = vminfo_log(tmp_path / "pss.log", 3000)
    p = ingest(tmp_path, "1", str(log), "--variant", "iotjs_plus", "--fidelity", fidelity, "--run-id", "r")
    assert p.returncode == 0, p.stderr
    rows = journal_rows(tmp_path / "runs" / "r")
    sha = hashlib.sha256(log.read_bytes()).hexdigest()
    assert {(r["fidelity"], r["mode"]) for r in rows} == {(fidelity, mode)}
    assert all(r["target_identity"] == {"kind": "ingested", "file": "pss.log", "sha256": sha} for r in rows)
    assert all(r["note"].startswith("ingested by hand:") and r["artefact_sha256"] == sha for r in rows)


def test_ingest_without_a_fidelity_is_refused(tmp_path: Path) -> None:
    p = ingest(tmp_path, "1", str(vminfo_log(tmp_path / "a.log", 1)), "--variant", "iotjs", "--run-id", "r")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "--fidelity is required" in p.stderr and not (tmp_path / "runs" / "r").exists()


def test_a_benchmark_model_log_of_another_model_is_refused_unless_the_check_is_skipped(tmp_path: Path) -> None:
    log = tmp_path / "yolo.log"
    text = (FIXTURES / "ml" / "benchmark_model_tf2_linux.handwritten.txt").read_text()
    log.write_text(text.replace("mobilenet_v2_1.0_224.tflite", "yolov5s.tflite"))
    args = ["3", str(log), "--variant", "mbv1_0.9_v4u", "--fidelity", "board", "--run-id", "r"]
    refused = ingest(tmp_path, *args)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "names yolov5s.tflite, not mbv1_0.9_v4u.tflite" in refused.stderr and "--skip-checks" in refused.stderr
    assert not (tmp_path / "runs" / "r").exists()
    forced = ingest(tmp_path, *args, "--skip-checks")
    assert forced.returncode == 0, forced.stderr
    assert "checks skipped (--skip-checks)" in journal_rows(tmp_path / "runs" / "r")[0]["note"]
    own = tmp_path / "mbv1.log"
    own.write_text(text.replace("mobilenet_v2_1.0_224.tflite", "/data/local/tmp/mbv1_0.9_v4u.tflite"))
    assert ingest(tmp_path, "3", str(own), "--variant", "mbv1_0.9_v4u", "--fidelity", "board").returncode == 0


def test_resourcebench_numbers_that_grow_like_time_since_load_are_not_taken_for_round_trips(tmp_path: Path) -> None:
    since_load = FIXTURES / "ant" / "resource_raw.x86_64.captured.log"
    args = ["--variant", "resource-api", "--workload", "resource-api", "--fidelity", "board", "--run-id", "r"]
    refused = ingest(tmp_path, "2", str(since_load), *args)
    assert refused.returncode == 2 and "like time since load" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    persend = FIXTURES / "ant" / "legacy_persend.x86_64.captured.log"
    ok = ingest(tmp_path, "2", str(persend), "--variant", "legacy", "--workload", "legacy", "--fidelity", "board")
    assert ok.returncode == 0, ok.stderr


# --------------------------------------------------------------------------------------------
# All or nothing
# --------------------------------------------------------------------------------------------


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def test_an_ingest_whose_later_file_cannot_be_parsed_changes_nothing(tmp_path: Path) -> None:
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
    before = _snapshot(run)
    bad = tmp_path / "bad.log"
    bad.write_text("not a vminfo log\n")
    p = ingest(
        tmp_path,
        "1",
        str(vminfo_log(tmp_path / "b.log", 2)),
        str(bad),
        "--variant",
        "iotjs",
        "--fidelity",
        "board",
        "--run-id",
        "r",
    )
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "bad.log" in p.stderr
    assert _snapshot(run) == before


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


def test_an_ingest_killed_mid_write_is_rolled_back_and_report_says_so_in_one_line(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    common = ["--runs-dir", str(runs), "ingest", "2", "--variant", "legacy", "--workload", "legacy"]
    common += ["--fidelity", "board", "--run-id", "r"]
    first = harness(tmp_path, *common, str(persend_log(tmp_path / "s.log", 20)))
    assert first.returncode == 0, first.stderr
    run = runs / "r"
    kept = journal_rows(run)
    evidence = sorted(p.name for p in (run / "ingested").iterdir())
    big = persend_log(tmp_path / "big.log", 1001)  # 1000 rows after the warm-up reply
    assert killed(tmp_path, "write", 1, 0.809, "cli", *common, str(big)) == -signal.SIGKILL
    assert (run / BATCH_NAME).exists()  # the batch record survived the kill: its rows do not count
    assert 700 < len((run / JOURNAL_NAME).read_text().splitlines()) - len(kept) < 1000
    assert len(Results.from_journal(run)) == len(kept)
    assert len(list((run / "ingested").iterdir())) > len(evidence)

    p = harness(tmp_path, "--runs-dir", str(runs), "report", "r", "--no-html")
    assert p.returncode == 0, p.stderr
    warnings = [ln for ln in p.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "of 1000 rows was rolled back" in warnings[0], p.stderr
    assert journal_rows(run) == kept
    assert sorted(p.name for p in (run / "ingested").iterdir() if not p.name.startswith(".")) == evidence
    assert not (run / BATCH_NAME).exists() and table_rows(run) == (len(kept),) * 3


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


# --------------------------------------------------------------------------------------------
# The runs lock: ingest and report
# --------------------------------------------------------------------------------------------


def _hold(lock: str, ready: Any, release: Any) -> None:
    with exclusive_lock(lock, holder="run busy-run"):
        ready.set()
        release.wait(120)


def test_ingest_refuses_or_waits_and_report_reads_without_writing_while_a_run_holds_the_lock(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    log = vminfo_log(tmp_path / "a.log", 1)
    assert ingest(tmp_path, "1", str(log), "--variant", "iotjs", "--fidelity", "board", "--run-id", "r").returncode == 0
    run = runs / "r"
    before = _snapshot(run)
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(runs / ".lock"), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        refused = ingest(tmp_path, "1", str(log), "--variant", "iotjs", "--fidelity", "board", "--run-id", "r")
        assert refused.returncode == 3 and len(refused.stderr.strip().splitlines()) == 1
        assert "run busy-run" in refused.stderr and "--wait" in refused.stderr
        shown = harness(tmp_path, "--runs-dir", str(runs), "report", "r")
        assert shown.returncode == 0, shown.stderr
        assert "js_memory" in shown.stdout and "report:" not in shown.stdout
        notes = [ln for ln in shown.stderr.splitlines() if ln.strip()]
        assert len(notes) == 1 and "being written by" in notes[0] and "no file of the run was rewritten" in notes[0]
        assert _snapshot(run) == before
        waiting = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness",
                "--runs-dir",
                str(runs),
                "ingest",
                "1",
                str(log),
                "--variant",
                "iotjs",
                "--fidelity",
                "board",
                "--run-id",
                "r",
                "--wait",
            ],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert waiting.stderr is not None
        ready_to_wait, _, _ = select.select([waiting.stderr], [], [], 120)
        first_line = waiting.stderr.readline() if ready_to_wait else ""
        assert first_line.startswith("waiting for pid") and "run busy-run" in first_line
        assert _snapshot(run) == before  # nothing written while the lock is held
    finally:
        release.set()
        holder.join(10)
    _, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert len(journal_rows(run)) == 4


def test_a_bundle_carries_the_ingested_evidence_and_no_staging_file(tmp_path: Path) -> None:
    log = vminfo_log(tmp_path / "a.log", 1)
    assert ingest(tmp_path, "1", str(log), "--variant", "iotjs", "--fidelity", "board", "--run-id", "r").returncode == 0
    (tmp_path / "runs" / "r" / "ingested" / ".staging-dead").mkdir()
    (tmp_path / "runs" / "r" / "ingested" / ".staging-dead" / "000-x.log").write_text("left by a crash")
    assert harness(tmp_path, "--runs-dir", str(tmp_path / "runs"), "bundle", "r").returncode == 0
    with tarfile.open(tmp_path / "runs" / "r.evidence.tar.gz") as tar:
        names = tar.getnames()
        member = tar.extractfile("r/ingested/000-a.log")
        assert member is not None and member.read() == log.read_bytes()
        manifest = tar.extractfile("r/MANIFEST.sha256")
        assert manifest is not None and "ingested/000-a.log" in manifest.read().decode()
    assert not [n for n in names if "staging" in n]
