"""Fault campaign: interrupts, a killed run, two runs at once, a full disk, shell metacharacters.

The run-level faults drive a real `ant-kpi run` subprocess on a fixture manifest (x86_64 only, a
stand-in runtime that holds its heap for ~1.5 s, so there is time to interrupt a measurement).
Builds run in the arm-cross image like every other build; the artefact cache is shared by the
module, so only the first run pays for them.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from harness.errors import BadInput
from harness.options import EnvSettings
from harness.results.journal import append_row_journal
from harness.results.rows import JOURNAL_NAME, Row
from harness.results.store import Results

ROOT = Path(__file__).resolve().parent.parent
MINIJS = ROOT / "tests" / "fixtures" / "minijs" / "minijs.c"
HOLD_MS = 1500
MEASURES = 2 * 2 * 2  # variants × workloads × repeats
RUN_TIMEOUT = 300

# Strings a shell would act on; as plain arguments they are inert text.
NASTY = ("; touch MARK_SEMI", "$(touch MARK_SUBST)", "`touch MARK_TICK`")
MARKERS = ("MARK_SEMI", "MARK_SUBST", "MARK_TICK", "MARK_WL")
NASTY_WORKLOAD = "odd; touch MARK_WL $(touch MARK_WL) `touch MARK_WL`.js"

MAKEFILE = """\
FACTOR ?= 256
build/iotjs: minijs.c
\tmkdir -p build
\t$(CC) -O1 -DHEAP_FACTOR=$(FACTOR) -DHOLD_MS=$(HOLD) -o build/iotjs minijs.c
\t$(file >args.txt,$(value NOTE1)|$(value NOTE2)|$(value NOTE3))
"""


# --------------------------------------------------------------------------------------------
# Fixture manifest and helpers
# --------------------------------------------------------------------------------------------


def _docker_or_skip() -> None:
    """Skip where there is no Docker daemon; in CI (CI set, as .ci/run sets it) a missing daemon fails."""
    from harness.env.images import docker_client
    from harness.errors import Blocked

    try:
        docker_client(EnvSettings.from_environ(), timeout=10).ping()
    except Blocked as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Docker fault tests, but: {e}")
        pytest.skip(f"no Docker daemon on this machine: {e}")


def _git(cwd: Path, *args: str) -> str:
    env = {"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
        env=env,
    ).stdout.strip()


def _repo(path: Path, files: dict[str, str]) -> str:
    path.mkdir(parents=True)
    _git(path, "init", "-q", "-b", "main")
    for name, content in files.items():
        f = path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(content)
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "fixture")
    return _git(path, "rev-parse", "HEAD")


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(json.dumps(x) for x in items) + "]"


def write_manifest(tmp: Path, *, nasty: bool = False) -> Path:
    """A one-KPI manifest: two builds of the stand-in runtime, two workloads, x86_64 only."""
    repos = tmp / "repos"
    if not (repos / "runtime").exists():
        _repo(repos / "runtime", {"minijs.c": MINIJS.read_text(), "Makefile": MAKEFILE})
        script = "var x = 1;\n" * 500
        _repo(
            repos / "bench",
            {
                "test/appbench/small.js": script,
                "test/appbench/large.js": script * 2,
                f"test/appbench/{NASTY_WORKLOAD}": script,
            },
        )
    rt = _git(repos / "runtime", "rev-parse", "HEAD")
    bench = _git(repos / "bench", "rev-parse", "HEAD")
    notes = [f"NOTE{i}={s}" for i, s in enumerate(NASTY, start=1)] if nasty else []
    argv = {f: ["make", "CC=gcc", f"FACTOR={f}", f"HOLD={HOLD_MS}", *notes] for f in ("256", "128")}
    workloads = ["small", "nasty"] if nasty else ["small", "large"]
    text = f"""
schema = 1
[defaults]
repeats = 2
smoke_repeats = 2
timeout_s = 60

[sources.iotjs]
url = "{repos / "runtime"}"
commit = "{rt}"
[sources.iotjs_plus]
url = "{repos / "runtime"}"
commit = "{rt}"
[sources.ant]
url = "{repos / "bench"}"
commit = "{bench}"

[images.arm-cross]
context = "{ROOT / "containers" / "arm-cross"}"
base = "ant-kpi/debian:bookworm"

[targets.x86_64]
arch = "x86_64"
triple = "x86_64-linux-gnu"

[builds.iotjs]
source = "iotjs"
image = "arm-cross"
artefact = "iotjs"
argv.x86_64 = {_toml_list(argv["256"])}
output.x86_64 = "build/iotjs"

[builds.iotjs_plus]
source = "iotjs_plus"
image = "arm-cross"
artefact = "iotjs"
argv.x86_64 = {_toml_list(argv["128"])}
output.x86_64 = "build/iotjs"

[workloads.small]
source = "ant"
path = "test/appbench/small.js"
kind = "js"
[workloads.large]
source = "ant"
path = "test/appbench/large.js"
kind = "js"
[workloads.nasty]
source = "ant"
path = {json.dumps("test/appbench/" + NASTY_WORKLOAD)}
kind = "js"

[[kpis]]
id = "js_memory"
number = 1
session = "kpi_js_memory"
title_ko = "경량 자바스크립트 런타임 메모리 요구량"
title_en = "Memory requirement of the lightweight JavaScript runtime"
procedure = "js_memory"
metrics = [
  {{ name = "peak_pss", unit = "KB", direction = "lower" }},
  {{ name = "final_pss", unit = "KB", direction = "lower" }},
  {{ name = "wall_time", unit = "s", direction = "lower" }},
]
compare = {{ metric = "peak_pss", baseline = "iotjs", candidate = "iotjs_plus", statistic = "reduction_pct" }}
target = {{ kind = "better_than_baseline" }}
verdict_fidelity = ["board"]
variants = [{{ name = "iotjs", build = "iotjs" }}, {{ name = "iotjs_plus", build = "iotjs_plus" }}]
workloads = {_toml_list(workloads)}
targets = ["x86_64"]
"""
    p = tmp / ("kpis-nasty.toml" if nasty else "kpis.toml")
    p.write_text(text)
    return p


class Lab:
    """The module's fixture world: a manifest, a runs directory and a warm artefact cache."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.manifest = write_manifest(tmp)
        self.runs = tmp / "runs"
        self.env = {
            **os.environ,
            "ANT_KPI_CACHE": str(tmp / "cache"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": str(tmp / "gitconfig"),
            "COLUMNS": "200",
        }

    def argv(self, *args: str, manifest: Path | None = None) -> list[str]:
        return [
            sys.executable,
            "-m",
            "harness",
            "--manifest",
            str(manifest or self.manifest),
            "--runs-dir",
            str(self.runs),
            *args,
        ]

    def start(self, *args: str, manifest: Path | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args, manifest=manifest),
            cwd=self.tmp,
            env=self.env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def run(self, *args: str, manifest: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*args, manifest=manifest),
            cwd=self.tmp,
            env=self.env,
            text=True,
            capture_output=True,
            timeout=RUN_TIMEOUT,
        )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    _docker_or_skip()
    world = Lab(tmp_path_factory.mktemp("faults"))
    # Warm the artefact cache with a build-only run, so each fault below meets a measurement soon.
    done = world.run("build", "iotjs", "iotjs_plus", "--target", "x86_64", "--run-id", "warm")
    assert done.returncode == 0, done.stderr
    yield world


def measure_states(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Step states of measure steps, by step id; every state file must be whole JSON."""
    out = {}
    for p in sorted((run_dir / "steps").rglob("measure_*.json")):
        state = json.loads(p.read_text())  # a torn state file would fail here
        out[state["id"]] = state
    return out


def wait_for(pred: Any, timeout: float, what: str, proc: subprocess.Popen[str] | None = None) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the run ended (rc {proc.returncode}) before {what}:\n{err[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def assert_files_whole(run_dir: Path) -> None:
    """The journal loads; the tidy table is absent or loads; no state file is torn."""
    Results.from_journal(run_dir)
    if (run_dir / "results.parquet").exists() or (run_dir / "results.csv").exists():
        Results.load(run_dir)
    for p in (run_dir / "steps").rglob("*.json"):
        json.loads(p.read_text())


def ran_and_skipped(stderr: str) -> tuple[list[str], list[str]]:
    ran = re.findall(r"^\s+run\s+(measure:\S+?):", stderr, flags=re.M)
    skipped = re.findall(r"^\s+skip\s+(measure:\S+)", stderr, flags=re.M)
    return ran, skipped


# --------------------------------------------------------------------------------------------
# SIGINT and SIGKILL during a measurement, then resume
# --------------------------------------------------------------------------------------------


@pytest.mark.docker
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_a_signal_during_a_measurement_loses_no_completed_row_and_resume_runs_only_the_rest(
    lab: Lab, sig: signal.Signals
) -> None:
    run_id = f"killed-{sig.name.lower()}"
    run_dir = lab.runs / run_id
    proc = lab.start("run", "js_memory", "--run-id", run_id)
    try:
        # Two measurements done: the third is under way when the signal arrives.
        wait_for(lambda: len(measure_states(run_dir)) >= 2, 120, "two measurements", proc)
        time.sleep(0.3)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "interrupted: completed steps and rows are kept" in err
        assert "Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL
    assert_files_whole(run_dir)
    done_before = {sid for sid, st in measure_states(run_dir).items() if st["status"] == "ok"}
    assert 2 <= len(done_before) < MEASURES
    journal_before = (run_dir / JOURNAL_NAME).read_bytes() if (run_dir / JOURNAL_NAME).exists() else b""

    resumed = lab.run("run", "js_memory", "--run-id", run_id)
    assert resumed.returncode == 0, resumed.stderr
    ran, skipped = ran_and_skipped(resumed.stderr)
    assert set(skipped) == done_before
    assert len(ran) == MEASURES - len(done_before)
    assert not set(ran) & done_before
    # The journal only grew: every line written before the signal is still there, unchanged.
    assert (run_dir / JOURNAL_NAME).read_bytes().startswith(journal_before)
    df = pd.read_parquet(run_dir / "results.parquet")
    peaks = df[(df.metric == "peak_pss") & (df.status == "ok")]
    assert len(peaks) == MEASURES
    assert len(peaks.drop_duplicates(["variant", "workload", "target", "repeat"])) == MEASURES
    logs = set(peaks.log)
    for sid in done_before:  # the rows of the measurements finished before the signal
        assert f"raw/{sid.replace(':', '_')}.json" in logs


# --------------------------------------------------------------------------------------------
# Two runs on one runs directory
# --------------------------------------------------------------------------------------------


@pytest.mark.docker
def test_a_second_run_refuses_with_exit_3_and_with_wait_runs_after_the_first(lab: Lab) -> None:
    first = lab.start("run", "js_memory", "--run-id", "lock-first")
    try:
        wait_for(lambda: len(measure_states(lab.runs / "lock-first")) >= 1, 120, "a measurement", first)
        refused = lab.run("run", "js_memory", "--run-id", "lock-second", "--workload", "small")
        assert refused.returncode == 3, refused.stderr
        # One line, and no "run lock-second → …": the refused run never existed.
        lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, refused.stderr
        assert f"pid {first.pid} run lock-first" in lines[0]
        assert "one run at a time per runs directory is deliberate" in lines[0] and "--wait" in lines[0]
        assert not (lab.runs / "lock-second" / "steps").exists()
        assert not (lab.runs / "lock-second" / JOURNAL_NAME).exists()

        waiting = lab.start("run", "js_memory", "--run-id", "lock-waiting", "--workload", "small", "--wait")
        _, err_first = first.communicate(timeout=RUN_TIMEOUT)
        _, err_wait = waiting.communicate(timeout=RUN_TIMEOUT)
    finally:
        for p in (first,):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert first.returncode == 0, err_first
    assert waiting.returncode == 0, err_wait
    first_end = max(s["ended"] for s in measure_states(lab.runs / "lock-first").values())
    waited_start = min(s["started"] for s in measure_states(lab.runs / "lock-waiting").values())
    assert waited_start >= first_end  # ISO-8601 UTC strings order as times


# --------------------------------------------------------------------------------------------
# Shell metacharacters in build argv and workload paths
# --------------------------------------------------------------------------------------------


@pytest.mark.docker
def test_shell_metacharacters_in_build_argv_and_workload_paths_stay_plain_arguments(lab: Lab) -> None:
    manifest = write_manifest(lab.tmp, nasty=True)
    done = lab.run("run", "js_memory", "--run-id", "nasty", "--repeats", "1", manifest=manifest)
    assert done.returncode == 0, done.stderr
    for marker in MARKERS:
        hits = [p for p in lab.tmp.rglob(marker) if p.name == marker]
        hits += [p for p in Path.cwd().glob(marker)]
        assert not hits, f"{marker} was created: a string reached a shell ({hits})"
    # make received each string verbatim, as one argument, and wrote it without a shell.
    args = sorted((lab.runs / "nasty" / "work").rglob("args.txt"))
    assert args, "the build wrote no args.txt"
    assert args[0].read_text().strip() == "|".join(NASTY)
    df = pd.read_parquet(lab.runs / "nasty" / "results.parquet")
    odd = df[(df.workload == "nasty") & (df.metric == "peak_pss")]
    assert len(odd) == 2 and set(odd.status) == {"ok"}
    assert all(NASTY_WORKLOAD in json.loads(a)[-1] for a in odd.argv)


# --------------------------------------------------------------------------------------------
# Disk full while writing results (in-process)
# --------------------------------------------------------------------------------------------


def _row(i: int) -> Row:
    return Row(
        run_id="disk",
        kpi="js_memory",
        metric="peak_pss",
        variant="iotjs",
        workload="small",
        target="x86_64",
        fidelity="host",
        mode="smoke",
        repeat=i,
        value=1000.0 + i,
        unit="KB",
        time="2026-01-01T00:00:00+00:00",
    )


def _enospc(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_during_save_is_a_clear_error_and_keeps_the_previous_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Results.from_rows([_row(0), _row(1)]).save(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    bigger = Results.from_rows([_row(i) for i in range(5)])
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", _enospc)
        with pytest.raises(BadInput) as info:
            bigger.save(tmp_path)
    msg = info.value.one_line()
    assert "No space left on device" in msg and "previous contents kept" in msg
    assert "\n" not in msg
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp file left either
    assert len(Results.load(tmp_path)) == 2


def test_disk_full_while_journaling_keeps_earlier_rows_and_the_next_append_heals_the_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    append_row_journal(tmp_path, _row(0))
    append_row_journal(tmp_path, _row(1))
    real_write = os.write
    calls = {"n": 0}

    def half_then_full(fd: int, data: Any) -> int:
        # The first write lands half the line (the disk fills mid-row); the next one fails.
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(os, "write", half_then_full)
        with pytest.raises(BadInput, match="No space left on device"):
            append_row_journal(tmp_path, _row(2))
    assert [r.repeat for r in Results.from_journal(tmp_path)] == [0, 1]  # the torn half is ignored
    append_row_journal(tmp_path, _row(3))
    lines = (tmp_path / JOURNAL_NAME).read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(x) for x in lines[:-1])
    assert [r.repeat for r in Results.from_journal(tmp_path)] == [0, 1, 3]


def test_disk_full_during_report_exits_2_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    lab_tmp = tmp_path / "lab"
    lab_tmp.mkdir()
    manifest = write_manifest(lab_tmp)
    run_dir = tmp_path / "runs" / "disk"
    for i in range(3):
        append_row_journal(run_dir, _row(i))
    journal = (run_dir / JOURNAL_NAME).read_bytes()
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", _enospc)
        rc = main(["--manifest", str(manifest), "--runs-dir", str(tmp_path / "runs"), "report", "disk", "--no-html"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "No space left on device" in err[0] and "results.parquet" in err[0]
    assert (run_dir / JOURNAL_NAME).read_bytes() == journal
    assert not [p for p in run_dir.iterdir() if p.name.endswith(".tmp")]
