"""Faults a hostile or careless user can cause (issue 14, security): credentials in what is recorded,
run ids that are paths, a second run on a busy runs directory, board work directories.

Every test runs the real part: `python -m harness` on the fault campaign's fixture manifest (local
git repositories, Docker pointed at an address that does not answer), the real lock, the local
transport and the namespace sshd board. Archives, checkpoints and signatures: test_faults_evidence.py.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.core.fsio import exclusive_lock
from harness.core.runner import RUN_ID_MAX, check_run_id
from harness.env.lab.inventory import Board, load_boards
from harness.env.transport import LocalTransport, SshTransport, remove_inside
from harness.errors import BadInput, Blocked, ManifestError
from harness.redact import redact_text, redact_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netns_board  # a helper module beside the tests (tests/ is not a package)
from test_faults import write_manifest  # the fault campaign's fixture world
from test_fuzz import FUZZ

ROOT = Path(__file__).resolve().parent.parent
SECRET = "tok-7Qz3secret"
DEAD_ENGINE = f"tcp://alice:{SECRET}@127.0.0.1:9"


def harness(tmp: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m harness ARGS` in tmp, with Docker at an address that does not answer."""
    (tmp / "gitconfig").touch()
    base = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ANT_KPI_CACHE": str(tmp / "cache"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": str(tmp / "gitconfig"),
        "DOCKER_HOST": "tcp://127.0.0.1:9",
        "COLUMNS": "200",
    }
    base.pop("ANT_KPI_RUNS", None)
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=tmp,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def vminfo_log(path: Path, pss: int) -> Path:
    path.write_text("\n".join(["", *(f"{1000 * i} 900 200 132 1200 {pss + i} {pss + i}" for i in range(11)), ""]))
    return path


def files_holding(root: Path, needle: bytes) -> list[str]:
    """Every file under root (and every member of every .tar.gz there) whose bytes hold needle."""
    hits = []
    for p in root.rglob("*"):
        if not p.is_file() or p.is_symlink():
            continue
        if needle in p.read_bytes():
            hits.append(str(p.relative_to(root)))
        if p.name.endswith(".tar.gz"):
            with tarfile.open(p) as tar:
                for m in tar:
                    f = tar.extractfile(m) if m.isfile() else None
                    if f is not None and needle in f.read():
                        hits.append(f"{p.name}:{m.name}")
    return hits


# --------------------------------------------------------------------------------------------
# Credentials in DOCKER_HOST and in environment values
# --------------------------------------------------------------------------------------------


def test_credentials_in_docker_host_reach_no_file_no_report_no_bundle_and_no_console(tmp_path: Path) -> None:
    manifest = str(write_manifest(tmp_path))
    env = {
        "DOCKER_HOST": DEAD_ENGINE,
        "ANT_KPI_BUILD_ARG_PIP_INDEX_URL": f"https://bob:{SECRET}@index.example/simple?token={SECRET}",
    }
    common = ["--manifest", manifest, "--runs-dir", str(tmp_path / "runs")]
    done = [
        harness(tmp_path, *common, "run", "js_memory", "--run-id", "leak", env=env),
        harness(tmp_path, *common, "report", "leak", env=env),
        harness(tmp_path, *common, "report", "leak", "--lang", "ko", env=env),
        harness(tmp_path, *common, "bundle", "leak", env=env),
        harness(tmp_path, *common, "runs", env=env),
    ]
    assert done[0].returncode == 3, done[0].stderr[-2000:]
    assert [p.returncode for p in done[1:]] == [0, 0, 0, 0], [p.stderr[-500:] for p in done[1:]]
    # The engine's message is one of the outputs: it names the engine, without its credentials.
    assert "Docker daemon not reachable at tcp://***@127.0.0.1:9" in done[0].stderr
    run = tmp_path / "runs" / "leak"
    written = {p.name for p in run.iterdir()}
    assert {"steps", "evaluations", "results.jsonl", "results.csv", "results.parquet", "report.md"} <= written
    assert {"report.ko.md", "report.html"} <= written and (tmp_path / "runs" / "leak.evidence.tar.gz").is_file()
    assert "Docker daemon not reachable at tcp://***@127.0.0.1:9" in (run / "report.md").read_text()
    assert files_holding(tmp_path, SECRET.encode()) == []
    assert not [p.args for p in done if SECRET in p.stdout + p.stderr]


@FUZZ
@given(
    scheme=st.sampled_from(["tcp", "ssh", "https", "http", "git+ssh"]),
    user=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12),
    secret=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!$%&*+,;=~:@", min_size=6, max_size=24),
    host=st.sampled_from(["127.0.0.1", "gpu-server.lab", "[::1]"]),
    port=st.integers(1, 65535),
    around=st.sampled_from(["{}", "engine at {} — fix: start it", "'{}'", "DOCKER_HOST={}\n"]),
)
def test_redaction_removes_every_user_info_and_keeps_the_address(
    scheme: str, user: str, secret: str, host: str, port: int, around: str
) -> None:
    url = f"{scheme}://{user}:{secret}@{host}:{port}"
    shown = redact_text(around.format(url))
    assert secret not in shown and f"{user}:" not in shown
    assert f"{scheme}://***@{host}:{port}" in shown
    assert redact_url(f"{user}:{secret}@{host}:{port}") == f"***@{host}:{port}"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://h/simple?token=abc123&x=1", "https://h/simple?token=***&x=1"),
        ("s3://b/k?X-Amz-Signature=ff00&X-Amz-Credential=me", "s3://b/k?X-Amz-Signature=***&X-Amz-Credential=***"),
        ("unix:///var/run/docker.sock", "unix:///var/run/docker.sock"),
        ("ant-kpi/debian@sha256:0123", "ant-kpi/debian@sha256:0123"),
    ],
)
def test_redaction_masks_token_query_values_and_leaves_other_text_alone(text: str, shown: str) -> None:
    assert redact_text(text) == shown


def test_a_training_log_header_shows_the_engine_and_environment_without_credentials(tmp_path: Path) -> None:
    from harness.env.container import GpuChoice
    from harness.kpis.common.training import _write_header

    log = tmp_path / "train.log"
    _write_header(
        log,
        tag="ant-kpi/cuda-train:x",
        host=f"ssh://alice:{SECRET}@gpu-server:22",
        mode="copy",
        gpus=GpuChoice(requested=False, reason="test"),
        work=tmp_path,
        data=None,
        engine_data="",
        argv=["python3", "train.py"],
        env={"WANDB_API_KEY": SECRET, "HTTPS_PROXY": f"http://bob:{SECRET}@proxy:3128", "OMP_NUM_THREADS": "2"},
        cwd="/work",
    )
    text = log.read_text()
    assert SECRET not in text
    assert "on ssh://***@gpu-server:22" in text
    assert "HTTPS_PROXY=http://***@proxy:3128" in text and "WANDB_API_KEY=***" in text and "OMP_NUM_THREADS=2" in text


# --------------------------------------------------------------------------------------------
# Run ids are names, not paths; the lock is taken before anything is made
# --------------------------------------------------------------------------------------------

BAD_RUN_IDS = ["../escape", "/tmp/ant-kpi-abs-run", "a/b", ".", "..", "-x", "a\nb", "a\x01b", "x" * 300, ""]


@pytest.mark.parametrize("command", ["run", "build", "ingest"])
@pytest.mark.parametrize("run_id", BAD_RUN_IDS, ids=repr)
def test_a_run_id_that_is_a_path_or_odd_name_is_refused_with_exit_2_before_anything_is_written(
    tmp_path: Path, command: str, run_id: str
) -> None:
    manifest = str(write_manifest(tmp_path))
    before = {p.name for p in tmp_path.iterdir()}
    args = {
        "run": ["--manifest", manifest, "run", "js_memory", "--workload", "small"],
        "build": ["--manifest", manifest, "build", "iotjs", "--target", "x86_64"],
        "ingest": [
            "ingest",
            "1",
            str(vminfo_log(tmp_path / "a.log", 900)),
            "--variant",
            "iotjs",
            "--fidelity",
            "board",
        ],
    }[command]
    p = harness(tmp_path, "--runs-dir", str(tmp_path / "runs"), *args, f"--run-id={run_id}")
    assert p.returncode == 2, p.stderr[-1500:]
    assert len(p.stderr.strip().splitlines()) == 1 and "a run id is a plain name" in p.stderr
    assert {p.name for p in tmp_path.iterdir()} - before <= {"a.log", "gitconfig"}
    assert not Path("/tmp/ant-kpi-abs-run").exists()


@FUZZ
@given(st.text(max_size=120))
def test_an_accepted_run_id_is_always_one_plain_directory_inside_the_runs_directory(name: str) -> None:
    try:
        check_run_id(name)
    except BadInput as e:
        assert "\n" not in e.one_line()
        return
    runs = Path("/srv/runs")
    assert (runs / name).parent == runs and name not in (".", "..") and "/" not in name
    assert len(name) <= RUN_ID_MAX and name.isprintable() and not name.startswith("-")


def _hold(lock: str, ready: Any, release: Any) -> None:
    with exclusive_lock(lock, holder="run holder-run"):
        ready.set()
        release.wait(60)


def test_a_run_refused_by_the_lock_says_why_names_the_holder_and_how_to_wait_and_creates_nothing(
    tmp_path: Path,
) -> None:
    manifest = str(write_manifest(tmp_path))
    runs = tmp_path / "runs"
    runs.mkdir()
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(runs / ".lock"), ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        p = harness(tmp_path, "--manifest", manifest, "--runs-dir", str(runs), "run", "js_memory", "--run-id", "two")
    finally:
        release.set()
        holder.join(10)
    assert p.returncode == 3
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr  # no "run two → …" line: the run never existed
    assert f"pid {holder.pid} run holder-run" in lines[0]
    assert "one run at a time per runs directory is deliberate" in lines[0] and "--wait" in lines[0]
    assert [x.name for x in runs.iterdir()] == [".lock"]
    assert not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------------------------
# Board work directories
# --------------------------------------------------------------------------------------------

BOARD = '[boards.b1]\nmodel = "Raspberry Pi 4"\narch = "arm64"\ntarget = "arm64"\ntransport = "ssh"\nhost = "h"\n'


@pytest.mark.parametrize("value", ["/tmp/../..", "/tmp/../etc", "/", "//", "/./", "relative/dir", "/a/../b", "/x\ny"])
def test_a_work_dir_that_is_root_escapes_its_parent_or_is_relative_is_refused(tmp_path: Path, value: str) -> None:
    f = tmp_path / "boards.toml"
    f.write_text(BOARD + f"work_dir = {json.dumps(value)}\n")
    with pytest.raises(ManifestError, match="work_dir"):
        load_boards(f)


def test_a_work_dir_is_kept_normalised_and_absent_means_the_per_user_default(tmp_path: Path) -> None:
    f = tmp_path / "boards.toml"
    f.write_text(BOARD + 'work_dir = "/srv//ant-kpi/./lab/"\n')
    assert load_boards(f)["b1"].work_dir == "/srv/ant-kpi/lab"
    f.write_text(BOARD)
    assert load_boards(f)["b1"].work_dir == ""


def _local(work_dir: str) -> LocalTransport:
    return LocalTransport(
        Board(name="here", model="Jetson TX2", arch="x86_64", target="x86_64", transport="local", work_dir=work_dir)
    )


def test_the_default_work_dir_is_private_to_the_user_and_made_mode_700() -> None:
    t = _local("")
    assert t.work_dir == f"/tmp/ant-kpi-{os.getuid()}"
    st_ = os.lstat(t.work_dir)
    assert st_.st_uid == os.getuid() and st_.st_mode & 0o077 == 0


def test_a_missing_work_dir_is_made_mode_700(tmp_path: Path) -> None:
    t = _local(str(tmp_path / "deep" / "work"))
    assert t.work_dir == str(tmp_path / "deep" / "work")
    assert os.stat(t.work_dir).st_mode & 0o777 == 0o700


@pytest.mark.parametrize("kind", ["other-owner", "world-writable", "group-writable", "symlink", "file"])
def test_a_work_dir_of_another_user_writable_by_others_or_a_link_is_refused(tmp_path: Path, kind: str) -> None:
    d = tmp_path / "work"
    if kind == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        d.symlink_to(tmp_path / "elsewhere")
    elif kind == "file":
        d.write_text("")
    else:
        d.mkdir(mode=0o700)
        if kind == "other-owner":
            os.chown(d, 65534, 65534)
        else:
            d.chmod(0o777 if kind == "world-writable" else 0o770)
    t = _local(str(d))
    with pytest.raises(Blocked, match="is not safe to use") as info:
        _ = t.work_dir
    why = {
        "other-owner": "owned by uid 65534",
        "world-writable": "writable by its group or by others",
        "group-writable": "mode 770",
        "symlink": "symbolic link",
        "file": "not a directory",
    }
    assert why[kind] in str(info.value)


def test_remove_inside_removes_only_below_the_work_dir(tmp_path: Path) -> None:
    t = _local(str(tmp_path / "work"))
    (Path(t.work_dir) / "copy" / "x").mkdir(parents=True)
    outside = tmp_path / "keep"
    outside.mkdir()
    assert remove_inside(t, f"{t.work_dir}/copy").ok and not (Path(t.work_dir) / "copy").exists()
    for path in (t.work_dir, f"{t.work_dir}/../keep", str(outside), "/", f"{t.work_dir}/copy/../../keep"):
        with pytest.raises(BadInput, match="refusing to remove"):
            remove_inside(t, path)
    assert outside.is_dir()


@pytest.fixture(scope="module")
def nsboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[netns_board.NetnsBoard]:
    missing = netns_board.missing_tools()
    if missing:
        pytest.skip(f"a namespace test board needs {', '.join(missing)}")
    with netns_board.running(tmp_path_factory.mktemp("nsboard")) as board:
        yield board


@pytest.mark.ssh
def test_an_ssh_board_gets_a_private_default_work_dir_and_refuses_a_planted_one(
    nsboard: netns_board.NetnsBoard, tmp_path: Path
) -> None:
    t = SshTransport(nsboard.board(work_dir=""), attempts=2, backoff_s=0.1)
    uid = t.run(["id", "-u"], timeout=30).stdout.strip()
    assert t.work_dir == f"/tmp/ant-kpi-{uid}"
    assert t.run(["stat", "-c", "%u %a", t.work_dir], timeout=30).stdout.split() == [uid, "700"]
    planted = tmp_path / "planted"
    planted.mkdir()
    os.chown(planted, 65534, 65534)  # the board shares this machine's filesystem
    with pytest.raises(Blocked, match="owned by uid 65534"):
        _ = SshTransport(nsboard.board(work_dir=str(planted)), attempts=2, backoff_s=0.1).work_dir
