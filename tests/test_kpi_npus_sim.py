"""KPI 7 on simulators: what the fork build sets and fills, the model files given locally, and the
rules for VTA's random-weights check and the Gemmini tutorials, on output captured from real runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from harness.errors import BadInput, StepFailed
from harness.kpis.npus import fork, models, tvm
from harness.kpis.npus import rules as npus_rules
from harness.parsers.npu_sim import parse_gemmini_run, parse_vta_random

CAPTURED = Path(__file__).parent / "fixtures" / "npu_sim"


# ---- the fork build --------------------------------------------------------------------------


def _fork_tree(root: Path) -> Path:
    (root / "cmake" / "modules").mkdir(parents=True)
    (root / "cmake" / "modules" / "Micro.cmake").write_text("  set(PLATFORMS crt;zephyr;arduino)\n")
    (root / "CMakeLists.txt").write_text(
        "if(USE_MICRO)\n  add_dependencies(tvm_runtime arduino)\n  add_dependencies(tvm_runtime crt)\n"
        "  add_dependencies(tvm_runtime zephyr)\nendif()\n"
    )
    return root


def test_tree_fixes_make_crt_only_and_say_why(tmp_path: Path) -> None:
    tree = _fork_tree(tmp_path / "fork")
    done = tvm._apply_fixes(tree)
    assert "set(PLATFORMS crt)" in (tree / "cmake/modules/Micro.cmake").read_text()
    cml = (tree / "CMakeLists.txt").read_text()
    assert "arduino" not in cml and "zephyr" not in cml and "add_dependencies(tvm_runtime crt)" in cml
    assert len(done) == len(fork.TREE_FIXES) and all("boards.json" in d for d in done)


def test_a_tree_fix_that_no_longer_matches_fails_the_build(tmp_path: Path) -> None:
    tree = _fork_tree(tmp_path / "fork")
    (tree / "cmake/modules/Micro.cmake").write_text("set(PLATFORMS crt)\n")  # another fork
    with pytest.raises(StepFailed, match="Micro.cmake"):
        tvm._apply_fixes(tree)


def test_gemmini_sources_fill_the_fork_s_empty_gemmini_tree_in_order(tmp_path: Path) -> None:
    from tests.test_kpi_npus import make_run

    run = make_run(tmp_path)
    for name in ("gemmini", "gemmini_rocc_tests", "riscv_tests", "rocc_software"):
        d = tmp_path / "src" / name
        d.mkdir(parents=True)
        (d / f"{name}.txt").write_text(name)
        sid = f"source:{name}:include,build.sh" if name == "gemmini_rocc_tests" else f"source:{name}"
        run.outputs[sid] = {"path": str(d), "commit": name[0] * 40}
    tree = tmp_path / "fork"
    (tree / fork.GEMMINI_DIR).mkdir(parents=True)  # the fork's empty folder
    filled = tvm._fill_gemmini(run, tree)
    assert list(filled) == list(fork.GEMMINI_SOURCES)
    rocc = tree / fork.ROCC_TESTS_DIR
    assert (rocc / "gemmini_rocc_tests.txt").is_file() and (rocc / "riscv-tests" / "riscv_tests.txt").is_file()
    assert (rocc / "rocc-software" / "rocc_software.txt").is_file()


def test_the_fork_build_key_follows_its_settings() -> None:
    from tests.test_kpi_npus import plan_steps

    step = plan_steps()["build:tvm-fork"]
    assert "set(USE_MICRO ON)" in fork.CONFIG_LINES and "set(USE_GEMMINI ON)" in fork.CONFIG_LINES
    assert {"source:gemmini", "source:riscv_tests", "source:rocc_software"} <= set(step.depends)


# ---- model files -------------------------------------------------------------------------------


def test_no_folder_means_every_pretrained_file_is_missing() -> None:
    assert models.vta_pretrained("") == ({}, list(models.VTA_PRETRAINED))


def test_a_folder_that_is_not_one_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="ANT_KPI_NPU_MODELS"):
        models.vta_pretrained(str(tmp_path / "nowhere"))


def test_a_params_file_whose_sha1_differs_is_refused(tmp_path: Path) -> None:
    (tmp_path / "resnet18_v1-a0666292.params").write_bytes(b"not the model store's file")
    with pytest.raises(BadInput, match="sha1 differs"):
        models.vta_pretrained(str(tmp_path))


def test_files_are_found_with_their_sha256_and_the_rest_named(tmp_path: Path) -> None:
    (tmp_path / "synset.txt").write_text("{0: 'tench'}")
    found, missing = models.vta_pretrained(str(tmp_path))
    assert found["synset.txt"].sha256 == hashlib.sha256(b"{0: 'tench'}").hexdigest()
    assert missing == ["resnet18_v1-a0666292.params", "cat.png"]
