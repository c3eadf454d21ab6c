"""KPI 3 in measure mode on an arm64 board over SSH: deploy with sha256, benchmark_model there.

ANT's benchmark_model_aarch64 lives in files a mirror lacks, so the tool here is a stand-in the
test compiles: a static aarch64 program that checks its --graph file exists and prints the
timing lines of benchmark_model's own format. What is tested is the passthrough: tool and models
copied to the namespace test board, run there (through binfmt QEMU), log fetched, rows of
fidelity `board` with the board's identity; and a model that does not exist blocks only its row.
"""

from __future__ import annotations

import shutil
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from harness.env.lab.inventory import load_boards
from harness.env.lab.session import Lab
from harness.errors import Blocked
from harness.kpis.ml import execute as kpi_ml
from harness.kpis.ml import models as ml_models
from harness.results.store import Results
from tests import netns_board
from tests.test_kpi_ml import ant_checkout, make_run, plan_steps

pytestmark = [pytest.mark.ssh, pytest.mark.qemu]

CC = "aarch64-linux-gnu-gcc"
STAND_IN = r"""
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    const char *graph = 0;
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--graph=", 8) == 0) graph = argv[i] + 8;
    if (!graph || access(graph, R_OK) != 0) { fprintf(stderr, "ERROR: Could not open model\n"); return 1; }
    fprintf(stderr, "INFO: Graph: [%s]\n", graph);
    fprintf(stderr, "INFO: count=5 first=2100 curr=2000 min=1990 max=2100 avg=2020 std=40\n");
    fprintf(stderr, "INFO: Inference timings in us: Init: 900, First inference: 2100, "
                    "Warmup (avg): 2100, Inference (avg): 2020\n");
    return 0;
}
"""


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which(CC) is None:
        pytest.skip(f"{CC} is not installed (apt-get install gcc-aarch64-linux-gnu)")
    d = tmp_path_factory.mktemp("bm")
    (d / "bm.c").write_text(STAND_IN)
    out = d / "benchmark_model_aarch64"
    subprocess.run([CC, "-static", "-O1", "-o", str(out), str(d / "bm.c")], check=True)
    return out


def test_arm64_board_times_each_model_there_and_a_missing_model_blocks_only_its_row(
    tmp_path: Path, stand_in: Path
) -> None:
    missing = netns_board.missing_tools()
    if missing:
        pytest.skip(f"no namespace test board on this machine: {', '.join(missing)} missing")
    model = tmp_path / "m.tflite"
    model.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)
    with netns_board.running(tmp_path / "nsboard") as nb, ExitStack() as stack:
        (tmp_path / "boards.toml").write_text(nb.toml("pi4", model="Raspberry Pi 4", arch="arm64", target="arm64"))
        board = load_boards(tmp_path / "boards.toml")["pi4"]
        run = make_run(tmp_path, mode="measure")
        run.lab = stack.enter_context(
            Lab(boards={"arm64": board}, leases_dir=tmp_path / "leases", run_id=run.run_id, ttl_s=3600)
        )
        steps = plan_steps("ml_latency", mode="measure", targets=("arm64",))
        run.steps = steps
        run.outputs["source:ant:test/mlbench"] = ant_checkout(
            tmp_path,
            {
                "test/mlbench/mbv1_0.9_v4u.tflite": model.read_bytes(),
                "test/mlbench/benchmark_model_aarch64": stand_in.read_bytes(),
            },
        )
        deploy: dict[str, Any] = kpi_ml.exec_deploy(steps["deploy:arm64"], run)
        run.outputs["deploy:arm64"] = deploy
        assert deploy["board"] == "pi4" and set(deploy["remote_models"]) == {"mbv1_0.9_v4u"}
        assert deploy["identity"]["model"] == "Raspberry Pi 4"
        sid = "measure:mbv1_0.9_v4u:arm64:0"
        run.outputs[sid] = kpi_ml.exec_measure_latency(steps[sid], run)
        with pytest.raises(Blocked, match=ml_models.BASELINE_ENV):  # the baseline was never fetched
            kpi_ml.exec_measure_latency(steps["measure:mobilenet_v2_1.0_224:arm64:0"], run)
        kpi_ml.exec_parse_latency(steps["parse:arm64"], run)
    [row] = Results.from_journal(run.run_dir).rows()
    assert (row.metric, row.status, row.fidelity, row.value) == ("inference_avg", "ok", "board", 2020.0)
    assert row.target_identity["name"] == "pi4"
    assert row.argv[0].endswith("kpi3/benchmark_model_aarch64")
    # --num_threads follows the board's cores, and provenance says where the number came from.
    cpus = row.target_identity["cpus"]
    assert isinstance(cpus, int) and cpus > 0 and f"--num_threads={cpus}" in row.argv
    assert row.target_identity["num_threads"] == cpus and "board" in row.target_identity["num_threads_from"]
    assert "Graph: [" in (run.run_dir / row.log).read_text()
