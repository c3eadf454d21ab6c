"""The dry run: every KPI expands into its real procedure without Docker, network or board."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from harness.core.manifest import load_manifest
from harness.core.plan import interleaved
from harness.errors import BadInput
from harness.kpis import plan_all, plan_kpi

ROOT = Path(__file__).resolve().parent.parent
M = load_manifest(ROOT / "kpis.toml")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning must never open a socket (no Docker daemon, no network, no board)."""

    def refuse(*a: object, **k: object) -> None:
        raise AssertionError("planning opened a socket")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_plan_covers_all_eight_kpis_in_both_modes() -> None:
    for mode in ("smoke", "measure"):
        plans = plan_all(M, mode=mode)
        assert [p.kpi.number for p in plans] == list(range(1, 9))
        for p in plans:
            kinds = [s.kind for s in p.steps]
            assert kinds[-1] == "evaluate", p.kpi.id
            assert "measure" in kinds, p.kpi.id


def test_plan_for_js_memory_on_rpi2_runs_four_apps_times_two_runtimes_per_repeat() -> None:
    p = plan_kpi(M, M.kpi("js_memory"), mode="measure", targets=("rpi2",))
    measures = [s for s in p.steps if s.kind == "measure" and s.variant]
    repeats = M.repeats_for(M.kpi("js_memory"), "measure")
    assert len(measures) == 4 * 2 * repeats
    assert {s.where for s in measures} == {"board"}
    assert {s.fidelity for s in measures} == {"board"}


def test_smoke_plan_for_js_memory_runs_under_qemu_with_emulated_fidelity_and_overhead_probe() -> None:
    p = plan_kpi(M, M.kpi("js_memory"), mode="smoke", targets=("rpi2",))
    measures = [s for s in p.steps if s.kind == "measure"]
    assert {s.where for s in measures} == {"qemu"}
    assert {s.fidelity for s in measures} == {"emulated"}
    assert any(s.id.startswith("measure:emulator-overhead") for s in measures)
    builds = {s.id: s for s in p.steps if s.kind == "build"}
    assert "--cmake-param=-DCMAKE_POLICY_DEFAULT_CMP0054=NEW" in builds["build:iotjs:rpi2"].argv
    assert any("jerry-board-config.h" in n for n in builds["build:iotjs_plus:rpi2"].notes)


def test_js_memory_plan_reports_that_the_pinned_runtimes_cannot_build_for_arm64() -> None:
    p = plan_kpi(M, M.kpi("js_memory"), mode="smoke", targets=("arm64",))
    assert any("iotjs for arm64" in g for g in p.gaps)
    assert not [s for s in p.steps if s.kind == "measure" and s.variant]
    assert any(s.id == "build:vminfo:arm64" for s in p.steps)


def test_ab_order_alternates_between_repeats() -> None:
    assert interleaved(["a", "b"], 0) == ["a", "b"]
    assert interleaved(["a", "b"], 1) == ["b", "a"]
    p = plan_kpi(M, M.kpi("js_memory"), mode="measure", targets=("x86_64",))
    firsts = [s.variant for s in p.steps if s.kind == "measure" and s.workload == "v8-deltablue"]
    assert firsts[:4] == ["iotjs", "iotjs_plus", "iotjs_plus", "iotjs"]


def test_app_latency_plan_forces_dep_iotjs_and_uses_main_old() -> None:
    p = plan_kpi(M, M.kpi("app_latency"), mode="smoke", targets=("x86_64",))
    build = next(s for s in p.steps if s.id == "build:ant:x86_64")
    assert "source:iotjs_plus_ant" in build.depends
    assert any("overlay dep/iotjs" in n for n in build.notes)
    measure = next(s for s in p.steps if s.kind == "measure")
    assert "app-core/main-old.js" in measure.argv
    assert "loopback companion" in measure.description


def test_ml_latency_plan_uses_seed_arguments_in_measure_and_small_ones_in_smoke() -> None:
    meas = plan_kpi(M, M.kpi("ml_latency"), mode="measure")
    train = next(s for s in meas.steps if s.id == "train:admm")
    assert "--admm-epochs" in train.argv and train.argv[train.argv.index("--admm-epochs") + 1] == "100"
    smoke = plan_kpi(M, M.kpi("ml_latency"), mode="smoke")
    strain = next(s for s in smoke.steps if s.id == "train:admm")
    assert strain.argv[strain.argv.index("-j") + 1] == "1"
    assert any("convert.py" in s.description for s in smoke.steps)


def test_npu_plan_has_one_testcase_per_npu_at_simulator_fidelity() -> None:
    p = plan_kpi(M, M.kpi("npus"))
    cases = [s for s in p.steps if s.kind == "measure"]
    assert [s.variant for s in cases if s.id.count(":") == 1] == ["VTA", "Ethos-U55", "Gemmini"]
    # The tutorials on Spike, and the generated model on Ethos-U55's FVP after its compile.
    assert {s.id for s in cases if s.id.count(":") == 2} == {
        *(f"measure:Gemmini:{t}" for t in ("add", "conv2d", "dense", "dwconv2d", "maxpool2d", "all")),
        "measure:Ethos-U55:fvp",
    }
    assert {s.fidelity for s in cases} == {"simulator"}
    # A compile is not a simulator run: it never claims that fidelity.
    assert next(s for s in p.steps if s.id == "compile:Ethos-U55").fidelity == "static"


def test_step_keys_are_stable_and_change_with_the_pin(tmp_path: Path) -> None:
    a = plan_kpi(M, M.kpi("js_memory"), targets=("rpi2",))
    b = plan_kpi(M, M.kpi("js_memory"), targets=("rpi2",))
    assert [s.key for s in a.steps] == [s.key for s in b.steps]
    text = (ROOT / "kpis.toml").read_text().replace("02599f35810cfa6ea5495bbc42194ed576b969de", "1" * 40)
    (tmp_path / "kpis.toml").write_text(text)
    m2 = load_manifest(tmp_path / "kpis.toml")
    c = plan_kpi(m2, m2.kpi("js_memory"), targets=("rpi2",), project_root=ROOT)
    keys_a = {s.id: s.key for s in a.steps}
    keys_c = {s.id: s.key for s in c.steps}
    assert keys_a["build:iotjs:rpi2"] != keys_c["build:iotjs:rpi2"]
    assert keys_a["build:iotjs_plus:rpi2"] == keys_c["build:iotjs_plus:rpi2"]


def test_unknown_target_is_bad_input() -> None:
    with pytest.raises(BadInput, match="has no target 'riscv'"):
        plan_kpi(M, M.kpi("js_memory"), targets=("riscv",))


def test_plan_json_is_serialisable() -> None:
    doc = [p.to_dict() for p in plan_all(M)]
    text = json.dumps(doc, ensure_ascii=False)
    assert "경량" in text
    assert len(json.loads(text)) == 8


def test_planning_every_kpi_imports_no_data_or_ml_library() -> None:
    """The dry run must stay fast on a laptop: procedures read plain data, not the executors."""
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from harness.core.manifest import load_manifest; "
        "from harness.kpis import plan_all; m = load_manifest(Path('kpis.toml')); "
        "plan_all(m, mode='smoke'); plan_all(m, mode='measure'); "
        "heavy = sorted(n for n in ('pandas', 'scipy', 'numpy', 'torch', 'docker', 'matplotlib') if n in sys.modules); "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
