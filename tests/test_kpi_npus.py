"""KPI 7 on this machine: the Vela smoke end to end, the testcase pass rules, and BLOCKED reasons."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.core.manifest import load_manifest
from harness.core.runner import Run, StepRunner
from harness.core.steps import Step
from harness.errors import BadInput, Blocked
from harness.kpis import plan_kpi
from harness.kpis.npus import execute as kpi_npus
from harness.kpis.npus import names as npus_names
from harness.kpis.npus import rows as npus_rows
from harness.kpis.npus import rules as npus_rules
from harness.kpis.npus import vela_smoke as npus_vela_smoke
from harness.options import EnvSettings
from harness.parsers.vela import UnsupportedOperator, VelaSummary, parse_vela_file
from harness.results.store import Results

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = load_manifest(ROOT / "kpis.toml")
RULE_FIXTURES = Path(__file__).parent / "fixtures" / "npus"
VELA_FIXTURES = Path(__file__).parent / "fixtures" / "vela"
RULE_GOLDEN = sorted(RULE_FIXTURES.glob("*.expected.json"))


def _has_vela_and_litert() -> bool:
    try:
        import ai_edge_litert  # noqa: F401
        import ethosu.vela  # noqa: F401
    except ImportError:
        return False
    return shutil.which("vela") is not None or (Path(__import__("sys").executable).parent / "vela").is_file()


needs_vela = pytest.mark.skipif(
    not _has_vela_and_litert(), reason=f"{npus_rows.VELA_FIX} and pip install ai-edge-litert"
)


def plan_steps(mode: str = "smoke") -> dict[str, Step]:
    plan = plan_kpi(MANIFEST, MANIFEST.kpi("npus"), mode=mode, project_root=ROOT)  # type: ignore[arg-type]
    return {s.id: s for s in plan.steps}


def make_run(tmp_path: Path, *, project_root: Path = ROOT) -> Run:
    run = Run(
        run_id="test-run",
        run_dir=tmp_path / "run",
        manifest=MANIFEST,
        project_root=project_root,
        cache_dir=tmp_path / "cache",
        mode="smoke",
    )
    run.steps = plan_steps()
    return run


def journal(run: Run) -> Any:
    return Results.from_journal(run.run_dir).df


class _NoImages:
    """A Docker client on which no image exists."""

    class images:  # the attribute name docker.DockerClient uses
        @staticmethod
        def get(tag: str) -> Any:
            from docker.errors import ImageNotFound

            raise ImageNotFound(f"no such image: {tag}")


# ---- plan ------------------------------------------------------------------------------------


def test_smoke_plan_adds_the_vela_compile_step_and_measure_plan_does_not() -> None:
    smoke = plan_steps("smoke")
    step = smoke[npus_rows.VELA_STEP]
    assert (step.kind, step.where, step.variant, step.fidelity) == ("convert", "host", "Ethos-U55", "static")
    assert "ethos-u55-128" in step.argv and step.workload == kpi_npus.SMOKE_MODEL
    assert npus_rows.VELA_STEP not in plan_steps("measure")
    seed = [s.variant for s in smoke.values() if s.kind == "measure" and s.id.count(":") == 1]
    assert seed == list(kpi_npus.NPUS)


def test_plan_runs_every_download_free_gemmini_tutorial_on_spike_and_gates_gemmini_on_all() -> None:
    steps = plan_steps("measure")
    tutorials = [s for s in steps.values() if s.id.startswith("measure:Gemmini:") and s.id != "measure:Gemmini:all"]
    assert [s.workload for s in tutorials] == [f"micro_gemmini_{t}.py" for t in npus_names.GEMMINI_TUTORIALS]
    for s in tutorials:
        assert (s.image, s.fidelity, s.variant) == (npus_names.SIM_IMAGE, "simulator", "Gemmini")
        assert set(s.depends) == {"build:tvm-fork", npus_names.SPIKE_STEP, f"image:{npus_names.SIM_IMAGE}"}
        assert s.argv[-2:] == ("--spike", npus_names.SPIKE_BIN) and s.argv[2].endswith(s.workload)
    gate = steps["measure:Gemmini:all"]
    assert set(gate.depends) == {s.id for s in tutorials}
    spike = steps[npus_names.SPIKE_STEP]
    assert spike.image == npus_names.SIM_IMAGE and "source:esp_isa_sim" in spike.depends
    assert steps[f"image:{npus_names.SIM_IMAGE}"].depends == ("image:tvm-npu",)


def test_executors_cover_every_step_kind_of_the_plan() -> None:
    from harness.kpis import executors_for

    ex = executors_for("npus")
    assert {s.kind for s in plan_steps().values()} <= set(ex)
    assert {"image", "build", "measure", "convert", "evaluate"} <= set(ex)


def test_fork_build_step_claims_gemmini_only_conditionally_and_names_the_wheelhouse() -> None:
    """The plan must not promise a Gemmini build the fork's tree cannot give (Gemmini is built OFF
    without compiler/3rdparty/gemmini), and says the image's pip step may need a wheelhouse."""
    step = plan_steps()["build:tvm-fork"]
    text = " ".join((step.description, *step.notes))
    assert "three NPU back ends" not in text
    assert "USE_GEMMINI ON with compiler/3rdparty/gemmini filled from the sources gemmini (v0.7.0)" in text
    assert "wheelhouse" in text
    from harness.kpis.npus import tvm

    assert "set(USE_GEMMINI ON)" in tvm.CONFIG_LINES  # switched OFF at build time when the tree is empty


# ---- testcase pass rules -----------------------------------------------------------------------


@pytest.mark.parametrize("expected", RULE_GOLDEN, ids=lambda p: p.name.split(".")[0])
def test_testcase_rule_decides_as_documented(expected: Path) -> None:
    want = json.loads(expected.read_text(encoding="utf-8"))
    text = expected.with_name(expected.name.removesuffix(".expected.json") + ".txt").read_text(encoding="utf-8")
    got = npus_rules.JUDGES[want["npu"]](text, want["exit_status"])
    assert (got.passed, got.blocked) == (want["passed"], want["blocked"])
    assert want["reason_contains"] in got.reason


def test_rule_fixtures_say_they_are_handwritten_in_the_tutorial_format() -> None:
    texts = sorted(RULE_FIXTURES.glob("*.txt"))
    assert {t.name.split("_")[0] for t in texts} == {"vta", "ethosu", "gemmini"}
    assert all(t.name.endswith(".tutorial-format.handwritten.txt") for t in texts)


def test_passing_log_with_nonzero_exit_is_not_a_pass() -> None:
    text = (RULE_FIXTURES / "vta_fsim_cat.tutorial-format.handwritten.txt").read_text()
    j = npus_rules.judge_vta(text, 139)
    assert not j.passed and "exited 139" in j.reason


def test_a_skipped_testcase_is_not_a_pass() -> None:
    text = (RULE_FIXTURES / "ethosu_fvp_tabby.tutorial-format.handwritten.txt").read_text()
    j = npus_rules.judge_ethosu("SKIPPED: ethos-u codegen not enabled\n" + text, 0)
    assert not j.passed and "skipped" in j.reason


def test_ethosu_expected_label_is_a_parameter() -> None:
    text = (RULE_FIXTURES / "ethosu_fvp_wrong_label.tutorial-format.handwritten.txt").read_text()
    assert npus_rules.judge_ethosu(text, 0, expected_label="tiger cat").passed


# ---- the Vela rule -----------------------------------------------------------------------------


def test_vela_rule_passes_the_captured_int8_compilation() -> None:
    s = parse_vela_file(VELA_FIXTURES / "vela_5.2.0_u55_128_tiny_int8.captured.txt")
    j = npus_rules.judge_vela(s, exit_status=0, npu_custom_ops=1)
    assert j.passed and "45 NPU / 0 CPU" in j.reason


def test_vela_rule_fails_a_model_that_falls_back_to_the_cpu_entirely() -> None:
    s = parse_vela_file(VELA_FIXTURES / "vela_5.2.0_u55_128_tiny_float_all_cpu.captured.txt")
    j = npus_rules.judge_vela(s, exit_status=0, npu_custom_ops=0)
    assert not j.passed and "every operator fell back to the CPU" in j.reason


def test_vela_rule_fails_a_partial_fallback_and_names_the_first_operator() -> None:
    s = VelaSummary(
        network="m", npu_ops=10, cpu_ops=2, unsupported=(UnsupportedOperator(op="TANH", ofm="t", reason="unsupported"),)
    )
    j = npus_rules.judge_vela(s, exit_status=0, npu_custom_ops=1)
    assert not j.passed and "2 operator(s) fell back" in j.reason and "TANH" in j.reason


def test_vela_rule_fails_when_the_output_holds_no_ethos_u_operator() -> None:
    s = VelaSummary(network="m", npu_ops=3, cpu_ops=0)
    assert not npus_rules.judge_vela(s, exit_status=0, npu_custom_ops=0).passed


def test_vela_rule_fails_a_crashed_compilation() -> None:
    s = parse_vela_file(VELA_FIXTURES / "vela_5.2.0_not_a_tflite.captured.txt")
    j = npus_rules.judge_vela(s, exit_status=1, npu_custom_ops=None)
    assert not j.passed and "No networks defined" in j.reason


# ---- the Vela smoke, end to end ---------------------------------------------------------------


@needs_vela
def test_vela_smoke_compiles_the_generated_model_onto_the_npu(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    step = run.steps[npus_rows.VELA_STEP]
    out = kpi_npus.exec_convert(step, run)
    assert out["passed"] and out["ethosu_custom_ops"] >= 1 and out["cpu_ops"] == 0
    df = journal(run)
    passed = df[df["metric"] == "passed"].iloc[0]
    assert passed["value"] == 1.0 and passed["status"] == "ok" and passed["fidelity"] == "static"
    assert passed["note"].startswith("not counted: a compile with Vela's estimates (evidence tier: compiled)")
    assert "Vela compile path" in passed["note"] and "not the seed's test_ethosu.py" in passed["note"]
    assert (run.run_dir / passed["log"]).is_file()
    metrics = set(df["metric"])
    assert {"npu_cycles", "sram_kb", "npu_ops", "cpu_ops"} <= metrics
    ident = json.loads(passed["target_identity"])
    assert ident["tool"] == "ethos-u-vela" and ident["pinned"] == npus_rows.VELA_VERSION


def test_vela_smoke_without_vela_is_blocked_with_a_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(npus_vela_smoke.shutil, "which", lambda name: None)
    monkeypatch.setattr(npus_vela_smoke.sys, "executable", str(tmp_path / "no-python"))
    run = make_run(tmp_path)
    with pytest.raises(Blocked, match="ethos-u-vela"):
        kpi_npus.exec_convert(run.steps[npus_rows.VELA_STEP], run)
    row = journal(run).iloc[0]
    assert row["status"] == "blocked" and row["variant"] == "Ethos-U55" and npus_rows.VELA_FIX in row["note"]


# ---- the seed path: BLOCKED, naming what is missing ------------------------------------------


def test_image_not_built_is_blocked_not_built_unasked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(npus_rows.IMAGE_ENV, raising=False)
    monkeypatch.delenv(npus_rows.BUILD_IMAGE_ENV, raising=False)
    run = make_run(tmp_path)
    run.docker = _NoImages()
    with pytest.raises(Blocked) as e:
        kpi_npus.exec_image(plan_steps()["image:tvm-npu"], run)
    assert "not built on this machine" in e.value.what and "ACCEPT_ARM_FVP_EULA=yes" in e.value.fix


def test_named_image_that_does_not_exist_is_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(npus_rows.IMAGE_ENV, "ant-kpi/tvm-npu:missing")
    run = make_run(tmp_path)
    run.env = EnvSettings.from_environ()
    run.docker = _NoImages()
    with pytest.raises(BadInput, match=npus_rows.IMAGE_ENV):
        kpi_npus.exec_image(plan_steps()["image:tvm-npu"], run)


@pytest.mark.parametrize(
    ("npu", "versions", "missing"),
    [
        ("VTA", {}, []),
        ("Ethos-U55", {}, ["Corstone-300 FVP"]),
        ("Ethos-U55", {"fvp_corstone_sse_300": "11.15.24"}, []),
        ("Gemmini", {"spike": "present"}, ["mobilenet_v2_1.0_224.tgz"]),
        ("Gemmini", {}, ["mobilenet_v2_1.0_224.tgz"]),
    ],
)
def test_testcase_requirements_come_from_the_image_tool_versions(
    npu: str, versions: dict[str, str], missing: list[str]
) -> None:
    got = [what for what, _ in kpi_npus.testcase_requirements(npu, versions)]
    assert len(got) == len(missing)
    for text, want in zip(got, missing, strict=True):
        assert want in text


def test_testcase_blocked_by_a_missing_fvp_before_any_container_starts(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.outputs["build:tvm-fork"] = {"path": str(tmp_path), "source_commit": "6bccd836"}
    run.outputs["image:tvm-npu"] = {"tag": "ant-kpi/tvm-npu:x", "tool_versions": {"llvm-config-14": "14.0.6"}}
    with pytest.raises(Blocked) as e:
        kpi_npus.exec_measure(plan_steps()["measure:Ethos-U55"], run)
    assert "Corstone-300 FVP" in e.value.what and "ACCEPT_ARM_FVP_EULA=yes" in e.value.fix


def _offline_source(step: Step, run: Run) -> dict[str, Any]:
    raise Blocked(
        "source ant_model_db: cannot fetch https://github.com/SKKU-ESLAB/ANT-Model-DB.git (offline)",
        "pass --source ant_model_db=PATH",
    )


@needs_vela
def test_smoke_run_shows_the_vela_compile_uncounted_and_names_every_gap_of_the_seed_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.kpis import executors_for
    from harness.kpis.common.executors import record_blocked

    monkeypatch.delenv(npus_rows.IMAGE_ENV, raising=False)
    monkeypatch.delenv(npus_rows.BUILD_IMAGE_ENV, raising=False)
    run = make_run(tmp_path)
    run.docker = _NoImages()
    plan = plan_kpi(MANIFEST, MANIFEST.kpi("npus"), mode="smoke", project_root=ROOT)
    ex = {**executors_for("npus"), "source": _offline_source}
    states = StepRunner(run, ex, on_blocked=record_blocked).execute(plan)
    assert states[npus_rows.VELA_STEP].status == "ok"
    assert {states[f"measure:{n}"].status for n in kpi_npus.NPUS} == {"blocked"}
    assert {st.status for sid, st in states.items() if sid.startswith("measure:Gemmini:")} == {"blocked"}
    assert states["image:tvm-npu"].status == "blocked"
    ev = json.loads((run.run_dir / "evaluations" / "npus.json").read_text())
    # The Vela compile is shown, never counted: nothing ran on a simulator.
    assert ev["verdict"] == "NO_VERDICT" and ev["value"] == 0.0
    assert "0 passed with evidence" in ev["reason"] and "passed but not counted: Ethos-U55" in ev["reason"]
    table = {(t["npu"], t["path"]): t for t in states["evaluate"].outputs["table"]}
    assert table[("Ethos-U55", "Vela compile (smoke)")]["status"] == "compiled, not counted"
    for npu in kpi_npus.NPUS:
        gaps = table[(npu, f"seed {plan_steps()[f'measure:{npu}'].workload}")]["reason"]
        assert "ANT-Model-DB checkout" in gaps and "tvm-npu image" in gaps and "TVM fork build" in gaps
        assert ("network access" in gaps) == (npu != "VTA")  # VTA runs offline on random weights
    assert "Corstone-300 FVP" in table[("Ethos-U55", "seed test_ethosu.py")]["reason"]
    assert "mobilenet_v2_1.0_224.tgz" in table[("Gemmini", "seed test_gemmini.py")]["reason"]
    assert table[("Gemmini", "all Gemmini tutorials")]["tier"] == "none"
    assert table[("Gemmini", "tutorial micro_gemmini_add.py")]["status"] == "blocked"
    assert "Arm Corstone-300 FVP (installed only" not in table[("VTA", "seed test_vta.py")]["reason"]


def test_a_fork_without_its_submodules_is_blocked_naming_them(tmp_path: Path) -> None:
    compiler = tmp_path / "amdb" / "compiler"
    compiler.mkdir(parents=True)
    (compiler / "CMakeLists.txt").write_text("project(tvm)\n")  # like 6bccd836: no cmake/config.cmake
    (compiler / "3rdparty" / "dlpack" / "include").mkdir(parents=True)  # one of them is there
    (compiler / "3rdparty" / "rang").mkdir(parents=True)  # an empty folder counts as missing
    run = make_run(tmp_path)
    run.outputs["source:ant_model_db:compiler"] = {"path": str(tmp_path / "amdb"), "commit": "6bccd836" * 5}
    run.outputs["image:tvm-npu"] = {"tag": "ant-kpi/tvm-npu:x"}
    with pytest.raises(Blocked) as e:
        kpi_npus.exec_build(plan_steps()["build:tvm-fork"], run)
    assert "3rdparty/dmlc-core, 3rdparty/rang, 3rdparty/vta-hw, 3rdparty/libbacktrace" in e.value.what
    assert "dlpack" not in e.value.what and "--source ant_model_db=PATH" in e.value.fix


def test_the_pinned_submodule_sources_fill_the_fork_s_empty_folders(tmp_path: Path) -> None:
    compiler = tmp_path / "amdb" / "compiler"
    compiler.mkdir(parents=True)
    (compiler / "CMakeLists.txt").write_text("project(tvm)\n")
    run = make_run(tmp_path)
    run.outputs["source:ant_model_db:compiler"] = {"path": str(tmp_path / "amdb"), "commit": "6bccd836" * 5}
    run.outputs["image:tvm-npu"] = {"tag": "ant-kpi/tvm-npu:x"}
    for name in ("tvm_dmlc_core", "tvm_dlpack", "tvm_rang"):
        d = tmp_path / name
        (d / "include").mkdir(parents=True)
        (d / "include" / f"{name}.h").write_text("/* header */\n")
        run.outputs[f"source:{name}"] = {"path": str(d), "commit": "a" * 40}
    with pytest.raises(Blocked) as e:
        kpi_npus.exec_build(plan_steps()["build:tvm-fork"], run)
    assert "3rdparty/vta-hw, 3rdparty/libbacktrace" in e.value.what  # the two not given
    assert "dmlc-core" not in e.value.what and "dlpack" not in e.value.what
    tree = next((run.cache_dir / "tvm-fork").iterdir())
    assert (tree / "3rdparty" / "rang" / "include" / "tvm_rang.h").is_file()


# ---- inert upstream testcases ------------------------------------------------------------------

# The shape of the pinned fork's test_ethosu.py: one module docstring holding a tutorial (its code
# is text, not statements). Written here, not copied: upstream files are not committed.
TUTORIAL_ONLY = '''"""
Running TVM on bare metal Arm(R) Cortex(R)-M55 CPU and Ethos(TM)-U55 NPU
========================================================================
.. code-block:: bash

    tvmc compile --target=ethos-u,cmsis-nn,c model.tflite
"""
'''


@pytest.mark.parametrize(
    ("source", "inert"),
    [
        (TUTORIAL_ONLY, True),
        ('"""doc"""\nimport os\nfrom sys import argv\n\ndef main():\n    print(argv)\n', True),  # never called
        ('"""doc"""\nimport sys\nsys.exit(0)\n', False),
        ('"""doc"""\nif __name__ == "__main__":\n    pass\n', False),
        ("x = 1\n", False),
    ],
)
def test_a_testcase_with_no_executable_statement_is_inert(source: str, inert: bool) -> None:
    why = npus_rules.inert_testcase(source, "test_x.py")
    assert bool(why) is inert
    if inert:
        assert why.startswith("test_x.py has no executable statement")


def test_the_pinned_ethos_u_testcase_is_inert_and_the_others_run() -> None:
    import subprocess

    mirror = Path("/work/.mirror/SKKU-ESLAB+ANT-Model-DB/repo")
    if not mirror.is_dir():
        pytest.skip("needs a local mirror of SKKU-ESLAB/ANT-Model-DB (upstream files are not committed)")
    commit = MANIFEST.sources["ant_model_db"].commit
    for case, inert in (("test_ethosu.py", True), ("test_vta.py", False), ("test_gemmini.py", False)):
        text = subprocess.run(
            ["git", "-C", str(mirror), "show", f"{commit}:compiler/testcase/{case}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert bool(npus_rules.inert_testcase(text, case)) is inert, case


def test_an_inert_testcase_is_blocked_as_such_before_the_fvp_and_shown_so_in_the_table(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "compiler" / "testcase").mkdir(parents=True)
    (src / "compiler" / "testcase" / "test_ethosu.py").write_text(TUTORIAL_ONLY)
    run = make_run(tmp_path)
    run.outputs["source:ant_model_db:compiler"] = {"path": str(src), "commit": "6bccd836aceab114"}
    run.outputs["build:tvm-fork"] = {"path": str(tmp_path), "source_commit": "6bccd836"}
    run.outputs["image:tvm-npu"] = {"tag": "ant-kpi/tvm-npu:x", "tool_versions": {}}
    with pytest.raises(Blocked) as e:
        kpi_npus.exec_measure(plan_steps()["measure:Ethos-U55"], run)
    assert e.value.what.startswith("inert upstream testcase: compiler/testcase/test_ethosu.py has no executable")
    assert "at ANT-Model-DB 6bccd836" in e.value.what and "not counted" in e.value.fix
    assert "FVP" not in e.value.what
    # The row it leaves is shown as an inert testcase in KPI 7's table, never judged or counted.
    from harness.core.runner import StepState
    from harness.kpis.common.executors import record_blocked

    step = plan_steps()["measure:Ethos-U55"]
    state = StepState(id=step.id, key=step.key, started=0.0, ended=0.0, status="blocked", message=e.value.what)
    record_blocked(step, run, state)
    table = {t["npu"]: t for t in kpi_npus.npu_table(run)}
    assert table["Ethos-U55"]["status"] == "inert upstream testcase"
    assert table["Ethos-U55"]["reason"].startswith("compiler/testcase/test_ethosu.py has no executable statement")
