"""KPI 1 in measure mode on a real SSH board: a network-namespace board with its own sshd.

The board runs the ARM builds (through binfmt QEMU on this host), so its figures are not an
RPi's; what is tested is the passthrough: inventory → lease → deploy with sha256 → PSS sampler
on the board → rows of fidelity `board` with the board's identity; a board that goes away
mid-run leaves its remaining rows BLOCKED, keeps the measured ones, and a resume finishes only
what is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests import netns_board
from tests.test_e2e_js_memory import _docker_or_skip, _manifest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.docker, pytest.mark.qemu, pytest.mark.ssh]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    _docker_or_skip()
    missing = netns_board.missing_tools()
    if missing:
        pytest.skip(f"no namespace test board on this machine: {', '.join(missing)} missing")
    tmp = tmp_path_factory.mktemp("board")
    manifest = _manifest(tmp)
    board = netns_board.start(tmp / "nsboard")
    boards = tmp / "boards.toml"
    boards.write_text(board.toml("nsboard"))
    env = {
        **os.environ,
        "ANT_KPI_CACHE": str(tmp / "cache"),
        "GIT_CONFIG_GLOBAL": str(tmp / "gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "COLUMNS": "160",
    }
    yield tmp, manifest, boards, board, env
    board.close()


def _run(lab, run_id: str, *extra: str) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    tmp, manifest, boards, _, env = lab
    argv = [
        sys.executable,
        "-m",
        "harness",
        "--manifest",
        str(manifest),
        "--runs-dir",
        str(tmp / "runs"),
        "run",
        "js_memory",
        "--target",
        "nsboard",
        "--boards",
        str(boards),
        "--run-id",
        run_id,
        *extra,
    ]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_measure_mode_on_the_board_gives_board_rows_with_its_identity(lab) -> None:  # type: ignore[no-untyped-def]
    tmp = lab[0]
    proc = _run(lab, "onboard")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    df = pd.read_parquet(tmp / "runs" / "onboard" / "results.parquet")
    peaks = df[df.metric == "peak_pss"]
    assert len(peaks) == 2 * 2 * 2 and set(peaks.status) == {"ok"}
    assert set(peaks.fidelity) == {"board"} and set(peaks["mode"]) == {"measure"}
    ident = json.loads(peaks.target_identity.iloc[0])
    assert ident["name"] == "nsboard" and ident["transport"] == "ssh" and ident["kernel"].startswith("Linux")
    assert "identity_file" not in ident and "user" not in ident  # no credentials in results
    assert not df.astype(str).apply(lambda c: c.str.contains("client_key|id_ed25519")).any().any()
    # The sampler ran on the board and its JSON came back.
    assert all((tmp / "runs" / "onboard" / p).exists() for p in peaks.log)
    report = (tmp / "runs" / "onboard" / "report.md").read_text()
    assert "board" in report


def test_board_lost_mid_run_blocks_the_rest_keeps_the_rest_and_resume_finishes(lab) -> None:  # type: ignore[no-untyped-def]
    tmp, _, _, board, _ = lab
    proc = _run(lab, "lost")
    raw = tmp / "runs" / "lost" / "raw"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and len(list(raw.glob("measure_*.json"))) < 2:
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before the board could be taken away"
    board.kill_all()  # sshd and everything on the board: connections are refused from now on
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 3, out
    df = pd.read_parquet(tmp / "runs" / "lost" / "results.parquet")
    peaks = df[df.metric == "peak_pss"]
    done, blocked = peaks[peaks.status == "ok"], peaks[peaks.status == "blocked"]
    assert len(done) >= 1 and len(blocked) >= 1 and len(done) + len(blocked) == 8
    assert blocked.note.str.contains("unreachable|refused|lost", case=False).all()
    board.start_sshd()
    proc = _run(lab, "lost")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    # A board's steps run on its own worker: their lines carry the board's name.
    reran = [ln for ln in out.splitlines() if ln.strip().startswith("run   [nsboard] measure:")]
    assert len(reran) == len(blocked), reran
    df2 = pd.read_parquet(tmp / "runs" / "lost" / "results.parquet")
    peaks2 = df2[df2.metric == "peak_pss"]
    assert len(peaks2) == 8 and set(peaks2.status) == {"ok"}


def test_a_board_leased_by_another_run_is_refused(lab) -> None:  # type: ignore[no-untyped-def]
    from harness.env.lab.lease import lease

    tmp = lab[0]
    with lease("nsboard", leases_dir=tmp / "cache" / "leases", run_id="someone-else", ttl_s=60):
        proc = _run(lab, "refused")
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 3, out
    assert "leased by run someone-else" in out
