"""KPI 1 end to end on fixtures: pinned sources → image → cross build → QEMU run → PSS → rows → report.

The sources are tiny git repositories made here: a stand-in runtime (tests/fixtures/minijs) built
with two heap factors, and two scripts as the appbench. Everything else is the real harness: the
arm-cross image, the container build, the private QEMU copy and sysroot, the PSS sampler, the
journal, the statistics and the report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.options import EnvSettings

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "minijs" / "minijs.c"

pytestmark = [pytest.mark.docker, pytest.mark.qemu]


def _docker_or_skip() -> None:
    from harness.env.images import docker_client
    from harness.errors import Blocked

    try:
        docker_client(EnvSettings.from_environ(), timeout=10).ping()
    except Blocked as e:
        pytest.skip(f"no Docker daemon on this machine: {e}")
    if shutil.which("qemu-arm-static") is None:
        pytest.skip("qemu-arm-static is not installed on this machine")


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


def _repo(path: Path, files: dict[str, str | bytes]) -> str:
    path.mkdir(parents=True)
    _git(path, "init", "-q", "-b", "main")
    for name, content in files.items():
        f = path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            f.write_bytes(content)
        else:
            f.write_text(content)
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "fixture")
    return _git(path, "rev-parse", "HEAD")


MAKEFILE = """\
FACTOR ?= 256
build/iotjs: minijs.c
\tmkdir -p build
\t$(CC) -O1 -DHEAP_FACTOR=$(FACTOR) -o build/iotjs minijs.c
"""


def _manifest(tmp: Path) -> Path:
    rt = _repo(tmp / "repos" / "runtime", {"minijs.c": FIXTURE.read_text(), "Makefile": MAKEFILE})
    script = "var x = 1;\n" * 1000  # 11 KB of "JavaScript"
    bench = _repo(
        tmp / "repos" / "bench",
        {
            "test/appbench/small.js": script,
            "test/appbench/large.js": script * 2,
            "test/mlbench/ignored.bin": b"\0" * 100,
        },
    )
    text = f"""
schema = 1
[defaults]
repeats = 2
smoke_repeats = 2
timeout_s = 120

[sources.iotjs]
url = "{tmp / "repos" / "runtime"}"
commit = "{rt}"
[sources.iotjs_plus]
url = "{tmp / "repos" / "runtime"}"
commit = "{rt}"
[sources.ant]
url = "{tmp / "repos" / "bench"}"
commit = "{bench}"

[images.arm-cross]
context = "{ROOT / "containers" / "arm-cross"}"
base = "ant-kpi/debian:bookworm"

[targets.rpi2]
arch = "armhf"
triple = "arm-linux-gnueabihf"
qemu = "qemu-arm"
[targets.x86_64]
arch = "x86_64"
triple = "x86_64-linux-gnu"

[builds.iotjs]
source = "iotjs"
image = "arm-cross"
artefact = "iotjs"
argv.rpi2 = ["make", "CC=arm-linux-gnueabihf-gcc", "FACTOR=256"]
argv.x86_64 = ["make", "CC=gcc", "FACTOR=256"]
output.rpi2 = "build/iotjs"
output.x86_64 = "build/iotjs"

[builds.iotjs_plus]
source = "iotjs_plus"
image = "arm-cross"
artefact = "iotjs"
argv.rpi2 = ["make", "CC=arm-linux-gnueabihf-gcc", "FACTOR=128"]
argv.x86_64 = ["make", "CC=gcc", "FACTOR=128"]
output.rpi2 = "build/iotjs"
output.x86_64 = "build/iotjs"

[workloads.small]
source = "ant"
path = "test/appbench/small.js"
kind = "js"
[workloads.large]
source = "ant"
path = "test/appbench/large.js"
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
  {{ name = "guest_pss", unit = "KB", direction = "lower" }},
  {{ name = "wall_time", unit = "s", direction = "lower" }},
  {{ name = "emulator_pss", unit = "KB", direction = "lower" }},
]
compare = {{ metric = "peak_pss", baseline = "iotjs", candidate = "iotjs_plus", statistic = "reduction_pct" }}
target = {{ kind = "better_than_baseline" }}
verdict_fidelity = ["board"]
variants = [{{ name = "iotjs", build = "iotjs" }}, {{ name = "iotjs_plus", build = "iotjs_plus" }}]
workloads = ["small", "large"]
targets = ["rpi2", "x86_64"]
"""
    p = tmp / "kpis.toml"
    p.write_text(text)
    return p


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    _docker_or_skip()
    tmp = tmp_path_factory.mktemp("e2e")
    manifest = _manifest(tmp)
    runs = tmp / "runs"
    mp = pytest.MonkeyPatch()
    mp.setenv("ANT_KPI_CACHE", str(tmp / "cache"))
    mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
    mp.setenv("GIT_CONFIG_GLOBAL", str(tmp / "gitconfig"))
    try:
        rc = main(["--manifest", str(manifest), "--runs-dir", str(runs), "run", "js_memory", "--run-id", "first"])
    finally:
        mp.undo()
    return tmp, runs / "first", rc


def test_smoke_run_exits_0_with_no_verdict_from_emulated_and_host_rows(smoke_run: tuple[Path, Path, int]) -> None:
    _, run_dir, rc = smoke_run
    assert rc == 0
    report = (run_dir / "report.md").read_text()
    assert "NO_VERDICT" in report
    assert "PASS" not in report.split("## ")[0]  # the summary never claims a pass from smoke rows


def test_rows_carry_fidelity_and_provenance(smoke_run: tuple[Path, Path, int]) -> None:
    _, run_dir, _ = smoke_run
    df = pd.read_parquet(run_dir / "results.parquet")
    ok = df[df.status == "ok"]
    assert set(ok[ok.target == "rpi2"].fidelity) == {"emulated"}
    assert set(ok[ok.target == "x86_64"].fidelity) == {"host"}
    runs = ok[ok.metric == "peak_pss"]
    assert len(runs) == 2 * 2 * 2 * 2  # variants × workloads × repeats × targets
    assert runs.artefact_sha256.str.len().eq(64).all()
    assert runs.image_digest.str.startswith("sha256:").all()
    assert runs.source_commit.str.len().eq(40).all()
    assert (runs.log.str.startswith("raw/")).all()
    assert all((run_dir / p).exists() for p in runs.log)


def test_guest_pss_sees_the_heap_difference_under_qemu(smoke_run: tuple[Path, Path, int]) -> None:
    _, run_dir, _ = smoke_run
    df = pd.read_parquet(run_dir / "results.parquet")
    g = df[(df.metric == "guest_pss") & (df.workload == "large") & (df.status == "ok")]
    med = g.groupby("variant").value.median()
    # large.js is 22 KB: 256 B/B vs 128 B/B of touched heap is 5.5 MB vs 2.75 MB, 2.75 MB apart.
    assert 2000 <= med["iotjs"] - med["iotjs_plus"] <= 3600, med.to_dict()
    emu = df[df.metric == "emulator_pss"].value
    assert (emu > 5000).all()  # the emulator's own share, reported beside the guest figures


def test_vminfo_compatible_logs_end_with_the_running_max(smoke_run: tuple[Path, Path, int]) -> None:
    _, run_dir, _ = smoke_run
    logs = sorted((run_dir / "raw").glob("measure_iotjs_large_rpi2_*.vminfo"))
    assert logs
    last = [ln for ln in logs[0].read_text().splitlines() if ln.strip()][-1].split()
    assert len(last) == 7
    assert int(last[6]) >= int(last[5]) > 0


def test_resume_skips_every_completed_step_and_keeps_rows_once(
    smoke_run: tuple[Path, Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    tmp, run_dir, _ = smoke_run
    mp = pytest.MonkeyPatch()
    mp.setenv("ANT_KPI_CACHE", str(tmp / "cache"))
    mp.setenv("GIT_CONFIG_GLOBAL", str(tmp / "gitconfig"))
    before = len(pd.read_parquet(run_dir / "results.parquet"))
    try:
        rc = main(
            [
                "--manifest",
                str(tmp / "kpis.toml"),
                "--runs-dir",
                str(run_dir.parent),
                "run",
                "js_memory",
                "--run-id",
                "first",
            ]
        )
    finally:
        mp.undo()
    assert rc == 0
    err = capsys.readouterr().err
    assert "skip  measure:iotjs:large:rpi2:1" in err
    assert "  run   measure:" not in err
    assert len(pd.read_parquet(run_dir / "results.parquet")) == before


def test_a_second_run_reuses_the_built_artefacts(smoke_run: tuple[Path, Path, int]) -> None:
    tmp, run_dir, _ = smoke_run
    mp = pytest.MonkeyPatch()
    mp.setenv("ANT_KPI_CACHE", str(tmp / "cache"))
    mp.setenv("GIT_CONFIG_GLOBAL", str(tmp / "gitconfig"))
    try:
        rc = main(
            [
                "--manifest",
                str(tmp / "kpis.toml"),
                "--runs-dir",
                str(run_dir.parent),
                "build",
                "iotjs",
                "iotjs_plus",
                "--target",
                "rpi2",
                "--run-id",
                "warm",
            ]
        )
    finally:
        mp.undo()
    assert rc == 0
    builds = json.loads((run_dir.parent / "warm" / "builds.json").read_text())["builds"]
    assert builds and all(b["reused"] for b in builds.values()), builds


def test_without_a_docker_daemon_builds_are_blocked_and_the_run_exits_3(
    smoke_run: tuple[Path, Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    tmp, run_dir, _ = smoke_run
    mp = pytest.MonkeyPatch()
    mp.setenv("ANT_KPI_CACHE", str(tmp / "cache-empty"))
    mp.setenv("GIT_CONFIG_GLOBAL", str(tmp / "gitconfig"))
    mp.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    try:
        rc = main(
            [
                "--manifest",
                str(tmp / "kpis.toml"),
                "--runs-dir",
                str(run_dir.parent),
                "run",
                "js_memory",
                "--target",
                "x86_64",
                "--run-id",
                "nodocker",
            ]
        )
    finally:
        mp.undo()
    assert rc == 3
    out = capsys.readouterr()
    assert "Docker daemon not reachable" in out.err
    df = pd.read_parquet(run_dir.parent / "nodocker" / "results.parquet")
    assert set(df.status) == {"blocked"}
    assert "BLOCKED" in (run_dir.parent / "nodocker" / "report.md").read_text()
