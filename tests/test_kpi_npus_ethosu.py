"""KPI 7, Ethos-U55 up to the FVP: what the fork build fills for it, the model it compiles, the
compile's rule on output captured from real runs, the rows, and the FVP step's BLOCKED."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.errors import Blocked
from harness.kpis.common.tflite_files import _schema
from harness.kpis.common.tflite_writer import tiny_mobilenet_like
from harness.kpis.npus import ethosu, fork, tvm
from harness.kpis.npus.names import ETHOSU_COMPILE_STEP, ETHOSU_FVP_STEP, ETHOSU_MODEL
from harness.kpis.npus.rules import judge_ethosu_compile
from harness.parsers.npu_sim import parse_ethosu_compile, parse_offloads
from tests.test_kpi_npus import make_run, plan_steps

CAPTURED = Path(__file__).parent / "fixtures" / "npu_sim"


def _captured(name: str) -> str:
    return (CAPTURED / name).read_text(encoding="utf-8")


# ---- the fork build fills what its .gitignore dropped ---------------------------------------


def test_the_dropped_folders_are_filled_from_their_source_and_the_gaps_close(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    src = tmp_path / "src" / "tvm"
    for rel in fork.TREE_FILLS:
        (src / rel).mkdir(parents=True)
        (src / rel / "f.txt").write_text(rel)
    run.outputs[f"source:tvm_v0_13:{','.join(fork.fill_paths('tvm_v0_13'))}"] = {"path": str(src), "commit": "9" * 40}
    tree = tmp_path / "fork"
    (tree / "src" / "contrib" / "ethosu" / "cascader").mkdir(parents=True)
    assert tvm.fork_gaps(tree)["Ethos-U55"]
    filled = tvm._fill_dropped(run, tree)
    assert set(filled) == set(fork.TREE_FILLS) and all(v == "tvm_v0_13 999999999999" for v in filled.values())
    assert (tree / "configs" / "f.txt").read_text() == "configs"
    assert tvm.fork_gaps(tree) == {}
    # What the fork has of its own is never overwritten.
    (tree / "configs" / "f.txt").write_text("the fork's")
    assert tvm._fill_dropped(run, tree) == {}
    assert (tree / "configs" / "f.txt").read_text() == "the fork's"


def test_the_fork_build_depends_on_the_fill_and_builds_cmsis_nn() -> None:
    steps = plan_steps()
    build = steps["build:tvm-fork"]
    fill = f"source:tvm_v0_13:{','.join(fork.fill_paths('tvm_v0_13'))}"
    assert fill in build.depends and fill in steps
    assert steps[fill].params["paths"] == ["src/contrib/ethosu/cascader/parts", "configs"]
    assert "set(USE_CMSISNN ON)" in fork.CONFIG_LINES


# ---- the model it compiles ----------------------------------------------------------------------


def _fc_weight_scales(path: Path) -> int:
    s = _schema()
    m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(path.read_bytes(), 0))
    (t,) = [t for t in m.subgraphs[0].tensors if t.name == b"fc/weights" or t.name == "fc/weights"]
    return len(t.quantization.scale)


def test_the_ethos_u_model_has_one_fully_connected_weight_scale(tmp_path: Path) -> None:
    per_tensor = tiny_mobilenet_like(tmp_path / "a.tflite", int8=True, per_tensor_fc=True)
    per_channel = tiny_mobilenet_like(tmp_path / "b.tflite", int8=True)
    assert _fc_weight_scales(per_tensor.path) == 1
    assert _fc_weight_scales(per_channel.path) == per_channel.net.num_classes
    assert tiny_mobilenet_like(tmp_path / "c.tflite", int8=True, per_tensor_fc=True).sha256 == per_tensor.sha256


def test_the_ethos_u_model_still_computes_its_network(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert", reason="pip install ai-edge-litert (the LiteRT runtime)")
    from harness.kpis.common.tflite import reference_forward
    from tests.test_kpi_ml import _invoke

    m = tiny_mobilenet_like(tmp_path / "m.tflite", int8=True, per_tensor_fc=True)
    x = np.random.default_rng(4).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(_invoke(m.path, x), reference_forward(m.net, x), atol=0.03)


# ---- the compile's rule, on captured runs -------------------------------------------------------


def test_a_fork_without_configs_fails_with_tvmc_s_own_error() -> None:
    text = _captured("ethosu_compile_no_configs.captured.txt")
    j = judge_ethosu_compile(text, 0)
    assert not j.passed and "ConfigsJsonNotFoundError" in j.reason and "exited 1" in j.reason
    facts = parse_ethosu_compile(text)
    assert facts is not None and facts["tflite_operators"]["CONV_2D"] == 4


def test_a_fork_built_without_cmsis_nn_fails_naming_the_argument() -> None:
    j = judge_ethosu_compile(_captured("ethosu_compile_no_cmsisnn.captured.txt"), 0)
    assert not j.passed and "--target-cmsis-nn-mcpu" in j.reason


def test_a_compile_script_that_stopped_early_fails() -> None:
    text = _captured("ethosu_compile_no_configs.captured.txt")
    cut = "\n".join(ln for ln in text.splitlines() if not ln.startswith("ANT-KPI-ETHOSU"))
    j = judge_ethosu_compile(cut, 1)
    assert not j.passed and "stopped (exit 1)" in j.reason


# ---- the plan and the FVP step ------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["smoke", "measure"])
def test_the_compile_is_static_and_the_fvp_run_follows_it(mode: str) -> None:
    steps = plan_steps(mode)
    c, f = steps[ETHOSU_COMPILE_STEP], steps[ETHOSU_FVP_STEP]
    assert (c.kind, c.fidelity, c.image, c.workload) == ("convert", "static", "tvm-npu", ETHOSU_MODEL)
    cmsis = {
        "source:cmsis_5:CMSIS/Core/Include,Device/ARM/ARMCM55",
        "source:cmsis_nn:Include",
        "source:ethosu_core_driver:include",
    }
    assert {"build:tvm-fork", *cmsis} <= set(c.depends) and cmsis <= set(steps)
    assert (f.kind, f.fidelity, f.depends) == ("measure", "simulator", (ETHOSU_COMPILE_STEP,))


def test_the_fvp_run_is_blocked_naming_what_it_lacks(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    step = run.steps[ETHOSU_FVP_STEP]
    run.outputs[ETHOSU_COMPILE_STEP] = {"passed": False, "reason": "tvmc compile exited 1"}
    with pytest.raises(Blocked, match=r"did not reach the compiled tier \(tvmc compile exited 1\)"):
        ethosu.exec_ethosu_fvp(step, run)
    run.outputs[ETHOSU_COMPILE_STEP] = {"passed": True, "module": str(tmp_path / "module.tar"), "reason": "compiled"}
    versions: dict[str, Any] = {"fvp_corstone_sse_300": ""}
    run.outputs["build:tvm-fork"] = {"path": str(tmp_path)}
    run.outputs["image:tvm-npu"] = {"tag": "ant-kpi/tvm-npu:x", "tool_versions": versions}
    with pytest.raises(Blocked) as e:
        ethosu.exec_ethosu_fvp(step, run)
    assert "Corstone-300 FVP" in e.value.what and "ACCEPT_ARM_FVP_EULA=yes" in e.value.fix
    versions["fvp_corstone_sse_300"] = "11.15_24"
    with pytest.raises(Blocked, match="does not yet link the compiled model"):
        ethosu.exec_ethosu_fvp(step, run)


def test_the_compile_is_blocked_while_the_fork_lacks_the_dropped_folders(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    gaps = ["configs/*.json (the fork's .gitignore drops *.json)"]
    run.outputs["build:tvm-fork"] = {"path": str(tmp_path), "gaps": {"Ethos-U55": gaps}}
    run.outputs["image:tvm-npu"] = {"tag": "ant-kpi/tvm-npu:x", "tool_versions": {}}
    with pytest.raises(Blocked, match=r"cannot compile for Ethos-U55: it lacks configs/\*\.json") as e:
        ethosu.exec_ethosu_compile(run.steps[ETHOSU_COMPILE_STEP], run)
    assert "source:tvm_v0_13" in e.value.fix


def test_generated_c_without_the_driver_header_does_not_reach_the_compiled_tier() -> None:
    text = _captured("ethosu_compile_no_driver.captured.txt")
    j = judge_ethosu_compile(text, 0)
    assert not j.passed and "2 of 3 sources failed" in j.reason and "ethosu_driver.h" in j.reason
    # tvmc itself compiled: its report and the command stream are there.
    offloads = parse_offloads(text)
    assert offloads is not None and offloads.operators("ethos-u") == 12


# ---- the compiled tier, on the run's captured log -------------------------------------------------


def test_the_captured_compile_reaches_the_compiled_tier_with_tvmc_s_own_report() -> None:
    text = _captured("ethosu_compile.captured.txt")
    j = judge_ethosu_compile(text, 0)
    assert j.passed, j.reason
    offloads = parse_offloads(text)
    assert offloads is not None
    # Counted by hand in the log: 12 composite groups under "ethos-u", 39 Relay calls, none left.
    assert offloads.total == 39 and offloads.relay_ops == {"ethos-u": 39}
    assert offloads.operators("ethos-u") == 12 and offloads.composites["ethos-u"].count("ethos-u.qnn_conv2d") == 4
    facts = parse_ethosu_compile(text)
    assert facts is not None and facts["command_streams"] == {"tvmgen_default_tvmgen_default_ethos_u_main_0": 3580}
    assert facts["cortex_m55"]["compiled"] == 3 and not facts["cortex_m55"]["failed"]
    assert "3580 bytes of command stream" in j.reason and facts["cortex_m55"]["library_sha256"][:12] in j.reason


def _changed(text: str, **changes: Any) -> str:
    """The captured log with fields of its closing line changed (a case no healthy run shows)."""
    head, _, rest = text.rpartition("ANT-KPI-ETHOSU ")
    line, _, tail = rest.partition("\n")
    facts = json.loads(line)
    for key, value in changes.items():
        facts[key] = value
    return head + "ANT-KPI-ETHOSU " + json.dumps(facts) + "\n" + tail


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"tvmc_exit": 1}, "tvmc compile exited 1"),
        ({"command_streams": {}}, "no Ethos-U command stream"),
        ({"command_streams": {"tvmgen_default_tvmgen_default_ethos_u_main_0": 0}}, "no Ethos-U command stream"),
        ({"cortex_m55": {"sources": 3, "compiled": 2, "failed": {"default_lib2.c": "error: x"}}}, "1 of 3"),
    ],
)
def test_the_compiled_tier_is_refused_on_what_it_must_not_accept(changes: dict[str, Any], reason: str) -> None:
    j = judge_ethosu_compile(_changed(_captured("ethosu_compile.captured.txt"), **changes), 0)
    assert not j.passed and reason in j.reason


def test_a_compile_whose_offload_report_is_missing_or_empty_fails() -> None:
    text = _captured("ethosu_compile.captured.txt")
    begin, end = text.index("ANT-KPI-OFFLOADS-BEGIN"), text.index("ANT-KPI-OFFLOADS-END")
    no_report = text[:begin] + text[end + len("ANT-KPI-OFFLOADS-END") :]
    assert "no report of what it offloaded" in judge_ethosu_compile(no_report, 0).reason
    generic = text.replace("ethos-u        <-", "generic        <-").replace("ethos-u: 39", "generic: 39")
    assert "nothing on the Ethos-U" in judge_ethosu_compile(generic, 0).reason
