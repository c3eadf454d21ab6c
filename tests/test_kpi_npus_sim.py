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
    with pytest.raises(StepFailed, match=r"Micro\.cmake"):
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


# ---- rules on captured output ------------------------------------------------------------------


def _captured(name: str) -> str:
    return (CAPTURED / name).read_text(encoding="utf-8")


def test_vta_random_check_captured_from_the_fsim_passes_with_its_evidence() -> None:
    text = _captured("vta_random.captured.txt")
    doc = parse_vta_random(text)
    assert doc is not None and doc["weights"] == "random" and doc["stats"]["gemm_counter"] > 0
    got = npus_rules.judge_vta_random(text, 0)
    assert got.passed, got.reason
    assert "GEMM" in got.reason and any("gemm_counter" in e for e in got.evidence)


def _with_result(text: str, **changes: object) -> str:
    """The captured log with fields of its closing ANT-KPI-VTA object changed (cases a healthy
    simulator does not produce: disagreement, no VTA work, a degenerate reference)."""
    head, _, line = text.rpartition("ANT-KPI-VTA ")
    doc = json.loads(line.splitlines()[0])
    for k, v in changes.items():
        if k.startswith("stats."):
            doc["stats"][k.removeprefix("stats.")] = v
        else:
            doc[k] = v
    return head + "ANT-KPI-VTA " + json.dumps(doc) + "\n"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"stats.gemm_counter": 0}, "did not run on VTA"),
        ({"stats.alu_counter": 0}, "did not run on VTA"),
        ({"ref_distinct_values": 1}, "degenerate"),
        ({"max_abs_diff": 1e9}, "disagrees"),
        ({"top5_vta": [999, 1, 2, 3, 4]}, "disagrees"),
    ],
)
def test_vta_random_check_fails_on_what_it_must_not_accept(changes: dict[str, object], reason: str) -> None:
    got = npus_rules.judge_vta_random(_with_result(_captured("vta_random.captured.txt"), **changes), 0)
    assert not got.passed and reason in got.reason


def test_a_vta_run_that_stopped_before_its_result_fails() -> None:
    text = _captured("vta_random.captured.txt").split("ANT-KPI-VTA ")[0]
    assert not npus_rules.judge_vta_random(text, 0).passed
    assert not npus_rules.judge_vta_random(text, 1).passed


@pytest.mark.parametrize("tutorial", ["add", "conv2d", "dense", "dwconv2d", "maxpool2d"])
def test_gemmini_tutorials_captured_on_spike_are_judged_from_their_own_comparison(tutorial: str) -> None:
    text = _captured(f"gemmini_{tutorial}.captured.txt")
    run = parse_gemmini_run(text)
    want = json.loads(_captured("gemmini.expected.json"))[tutorial]
    assert run.spike_exit == 0 and "--extension=gemmini" in run.spike_argv
    assert run.output_len == want["output_len"] and run.element_errors == want["element_errors"]
    assert bool(run.gemmini_calls) == want["offloaded"] and run.program_verdict == want["program_verdict"]
    got = npus_rules.judge_gemmini_tutorial(text, 0)
    assert got.passed == want["passed"], got.reason
    if not want["offloaded"]:  # the add layer ran on the RISC-V core: that is said before any count
        assert "RISC-V core alone" in got.reason


def test_a_gemmini_program_with_many_wrong_elements_fails_although_it_prints_success() -> None:
    """The programs' own verdict divides integers: every element but one wrong still prints SUCCESS
    (the captured add run shows it for real, but its layer never reached Gemmini; here conv2d's
    captured run gets the same count of wrong elements)."""
    text = _captured("gemmini_conv2d.captured.txt")
    before = parse_gemmini_run(text)
    n = before.output_len or 0
    more = n - 1 - before.element_errors  # the captured run's own differing elements stay
    wrong = "".join(f"ERROR IN CONV2D EXAMPLE! output_conv[{i}] (1) != output[{i}] (2)\r\n" for i in range(more))
    text = text.replace("SUCCESS!", wrong + "SUCCESS!", 1)
    got = npus_rules.judge_gemmini_tutorial(text, 0)
    assert not got.passed and f"{n - 1} of {n} elements differ" in got.reason and "printed SUCCESS" in got.reason


def test_the_captured_add_run_shows_the_defect_itself() -> None:
    run = parse_gemmini_run(_captured("gemmini_add.captured.txt"))
    assert run.program_verdict == "SUCCESS" and run.element_errors > 0.9 * (run.output_len or 0)


def test_a_gemmini_run_whose_spike_failed_or_never_ran_fails() -> None:
    text = _captured("gemmini_add.captured.txt")
    spiked = text.replace("ANT-KPI-SPIKE exit=0", "ANT-KPI-SPIKE exit=255")
    assert "exited 255" in npus_rules.judge_gemmini_tutorial(spiked, 0).reason
    no_spike = "\n".join(ln for ln in text.splitlines() if not ln.startswith("ANT-KPI-SPIKE"))
    assert "Spike never ran" in npus_rules.judge_gemmini_tutorial(no_spike, 0).reason


def test_what_the_fork_lacks_for_ethos_u_is_found_by_looking(tmp_path: Path) -> None:
    tree = tmp_path / "fork"
    (tree / "src" / "contrib" / "ethosu" / "cascader").mkdir(parents=True)  # as at 6bccd836: no parts/
    gaps = tvm.fork_gaps(tree)
    assert len(gaps["Ethos-U55"]) == 2 and "InlinePart" in gaps["Ethos-U55"][0]
    (tree / "src" / "contrib" / "ethosu" / "cascader" / "parts").mkdir()
    (tree / "configs").mkdir()
    assert tvm.fork_gaps(tree) == {}
