"""KPI 5 without the image: patches, shims, the peak-memory analysis on tiny models, rows, plan."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from harness.core.manifest import load_manifest
from harness.core.runner import Run
from harness.core.steps import Step
from harness.errors import Blocked, StepFailed
from harness.kpis import plan_kpi
from harness.kpis.common.training import prepare_tree
from harness.kpis.tinyml import execute as kpi_tinyml

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = load_manifest(ROOT / "kpis.toml")
FIXTURES = Path(__file__).parent / "fixtures" / "tinyml"
PINNED = MANIFEST.sources["auto_compression"].commit
UPSTREAM_HEAD = """import wandb

os.environ["CUDA_VISIBLE_DEVICES"]="4,5,6,7"
def train_one_epoch(model):
    pass
"""


def make_run(tmp_path: Path, *, mode: str = "smoke") -> Run:
    return Run(
        run_id="test-run",
        run_dir=tmp_path / "run",
        manifest=MANIFEST,
        project_root=ROOT,
        cache_dir=tmp_path / "cache",
        mode=mode,
    )


def plan_steps(mode: str = "smoke") -> dict[str, Step]:
    plan = plan_kpi(MANIFEST, MANIFEST.kpi("tinyml_memory"), mode=mode, project_root=ROOT)  # type: ignore[arg-type]
    return {s.id: s for s in plan.steps}


# ---- the upstream tree ------------------------------------------------------------------------


def test_the_cuda_visible_devices_pin_is_commented_out_and_recorded(tmp_path: Path) -> None:
    src = tmp_path / "upstream"
    src.mkdir()
    (src / "patch_aware_train.py").write_text(UPSTREAM_HEAD)
    tree, stubs = prepare_tree(src, tmp_path / "work", patches=kpi_tinyml.PATCHES, stubs=kpi_tinyml.shim_sources())
    text = (tree / "patch_aware_train.py").read_text()
    assert '\nos.environ["CUDA_VISIBLE_DEVICES"]' not in text
    assert '# os.environ["CUDA_VISIBLE_DEVICES"]="4,5,6,7"  (removed by the ANT KPI harness)' in text
    assert sorted(p.name for p in stubs.iterdir()) == ["presets.py", "sampler.py", "transforms.py", "utils.py"]
    record = json.loads((tmp_path / "work" / "patches.json").read_text())
    assert "hides every GPU" in record["patches"][0]["why"]
    assert (src / "patch_aware_train.py").read_text() == UPSTREAM_HEAD  # the checkout stays pristine


def test_a_moved_anchor_line_fails_naming_the_file_and_the_reason(tmp_path: Path) -> None:
    src = tmp_path / "upstream"
    src.mkdir()
    (src / "patch_aware_train.py").write_text(UPSTREAM_HEAD.replace('"4,5,6,7"', '"0"'))
    with pytest.raises(StepFailed, match=r"patch_aware_train\.py: the text to patch is not there.*hides every GPU"):
        prepare_tree(src, tmp_path / "work", patches=kpi_tinyml.PATCHES)


# ---- the torchvision reference stand-ins --------------------------------------------------------


def _shim(name: str) -> ModuleType:
    pytest.importorskip("torch")
    spec = importlib.util.spec_from_file_location(f"shim_{name}", kpi_tinyml.SHIMS_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_shim_metric_logger_counts_and_prints_progress(capsys: pytest.CaptureFixture[str]) -> None:
    utils = _shim("utils")
    log = utils.MetricLogger(delimiter="  ")
    log.add_meter("lr", utils.SmoothedValue(window_size=1, fmt="{value}"))
    for i in log.log_every(range(3), 1, "Epoch: [0]"):
        log.update(loss=float(i), lr=0.1)
        log.meters["acc1"].update(50.0 * i, n=2)
    out = capsys.readouterr().out
    assert out.count("Epoch: [0] step") == 3 and "3 steps in" in out
    assert log.loss.global_avg == pytest.approx(1.0)
    assert log.acc1.global_avg == pytest.approx(50.0)
    with pytest.raises(AttributeError):
        _ = log.no_such_meter


def test_shim_accuracy_is_in_percent_per_k() -> None:
    utils = _shim("utils")
    import torch

    out = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    acc1, acc2 = utils.accuracy(out, torch.tensor([1, 2]), topk=(1, 2))
    assert (acc1.item(), acc2.item()) == (50.0, 50.0)


def test_shim_weight_decay_groups_norm_layers_apart() -> None:
    utils = _shim("utils")
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    groups = {g["weight_decay"]: len(g["params"]) for g in utils.set_weight_decay(net, 1e-4, norm_weight_decay=0.0)}
    assert groups == {1e-4: 2, 0.0: 2}
    assert [len(g["params"]) for g in utils.set_weight_decay(net, 1e-4)] == [4]


def test_shims_refuse_options_the_kpi_command_does_not_use() -> None:
    transforms = _shim("transforms")
    assert transforms.get_mixup_cutmix(mixup_alpha=0.0, cutmix_alpha=0.0, num_categories=1000, use_v2=False) is None
    with pytest.raises(NotImplementedError, match="mixup"):
        transforms.get_mixup_cutmix(mixup_alpha=0.2, cutmix_alpha=0.0, num_categories=1000, use_v2=False)
    with pytest.raises(NotImplementedError, match="ra-sampler"):
        _shim("sampler").RASampler(None)


# ---- the peak-memory analysis (harness/patch_memory.py) on tiny models ------------------------


@pytest.fixture(scope="module")
def pm() -> Any:
    pytest.importorskip("torch")
    from harness.payload import patch_memory

    return patch_memory


def _tiny_models() -> Any:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Tiled(nn.Module):
        """A patch-wise convolution as upstream's: tile, zero-pad each tile on its own, convolve, untile."""

        def __init__(self, conv: nn.Conv2d, num_patches: int) -> None:
            super().__init__()
            self.mid_conv, self.pad, self.num_patches = conv, conv.padding[0], num_patches
            conv.padding = (0, 0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, c, h, w = x.shape
            p = self.num_patches
            t = x.reshape(b, c, p, h // p, p, w // p).permute(0, 2, 4, 1, 3, 5).reshape(b * p * p, c, h // p, w // p)
            y = self.mid_conv(F.pad(t, (self.pad,) * 4))
            _, co, oh, ow = y.shape
            return y.reshape(b, p, p, co, oh, ow).permute(0, 3, 1, 4, 2, 5).reshape(b, co, p * oh, p * ow)

    def cna(ci: int, co: int, k: int, s: int, patched: int | None = None) -> nn.Module:
        conv = nn.Conv2d(ci, co, k, s, k // 2, bias=False)
        return nn.Sequential(Tiled(conv, patched) if patched else conv, nn.BatchNorm2d(co), nn.ReLU(inplace=True))

    class Res(nn.Module):
        def __init__(self, c: int, patched: int | None = None) -> None:
            super().__init__()
            self.block = nn.Sequential(cna(c, c * 4, 1, 1), cna(c * 4, c * 4, 3, 1, patched), nn.Conv2d(c * 4, c, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.block(x)

    class Net(nn.Module):
        def __init__(self, patched: int | None) -> None:
            super().__init__()
            self.features = nn.Sequential(
                cna(3, 8, 3, 2, patched), nn.Sequential(Res(8, patched), Res(8)), cna(8, 16, 3, 2), Res(16)
            )
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    def make(patched: int | None, **kw: Any) -> nn.Module:
        torch.manual_seed(0)
        net = Net(patched, **kw)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.data.uniform_(0.5, 2)
        return net.eval()

    return make


def test_liveness_counts_input_and_output_of_each_layer_exactly(pm: Any) -> None:
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.Conv2d(4, 2, 1))
    with torch.inference_mode(), pm.LivenessTrace(net) as tr:
        net(torch.zeros(1, 3, 2, 2))
    peak = tr.peak()
    # input 12 floats + first output 16 floats live together; then 16 + 8.
    assert (peak.peak_bytes, peak.peak_elements, peak.at) == (112, 28, "0 (out)")


def test_a_residual_input_stays_live_until_its_block_returns(pm: Any) -> None:
    import torch

    class Res(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Conv2d(2, 2, 1), torch.nn.Conv2d(2, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.b(self.a(x))

    net = torch.nn.Sequential(Res())  # the network hands its input on; the block reads it again
    with torch.inference_mode(), pm.LivenessTrace(net) as tr:
        net(torch.zeros(1, 2, 1, 1))
    # at b's output: x, a(x), b(a(x)) are all live (8 bytes each).
    assert tr.peak().peak_bytes == 24


def test_plain_model_runs_layer_by_layer_only(pm: Any) -> None:
    import torch

    doc = pm.measure(_tiny_models()(None), torch.randn(1, 3, 64, 64))
    assert doc["patch_based"] is None and "no patch-wise layer" in doc["patch_based_reason"]
    assert doc["bn_folded"] == 8 and doc["fold_max_rel_diff"] < 1e-5
    assert doc["layer_by_layer"]["peak_bytes"] == 294912  # 32x32x(32+32+8) fp32 at the first expanded block


def test_patch_stage_run_tile_by_tile_matches_the_whole_network_and_lowers_the_stage_peak(pm: Any) -> None:
    import torch

    doc = pm.measure(_tiny_models()(4), torch.randn(1, 3, 64, 64))
    pb = doc["patch_based"]
    assert pb["max_rel_diff"] < 1e-4 and pb["stage_max_rel_diff"] < 1e-4
    assert pb["stage_units"][-1] == "features.1.0" and pb["grid"] == 4 and pb["tile"] == [16, 16]
    assert pb["tile_phase_bytes"] == pb["input_bytes"] + pb["stage_output_bytes"] + pb["tile_peak_bytes"]
    assert pb["tile_phase_bytes"] < doc["layer_by_layer"]["peak_bytes"]
    assert pb["peak_bytes"] == max(pb["tile_phase_bytes"], pb["rest_peak_bytes"])
    assert doc["patchwise_layers"] == 2


def test_a_patch_stage_that_mixes_pixels_across_tiles_is_refused(pm: Any) -> None:
    import torch

    net = _tiny_models()(4)
    res = type(net.features[1][0])
    # The stage now runs to features.1.1 (patch-wise) through features.1.0, whose 3x3 convolution is not.
    net.features[1][0], net.features[1][1] = res(8, None), res(8, 4)
    with pytest.raises(ValueError, match=r"mixes pixels across tiles.*features\.1\.0\.block\.1\.0"):
        pm.patch_based(net, torch.randn(1, 3, 64, 64), torch.zeros(1))


# ---- rows ---------------------------------------------------------------------------------------


def _memory_doc(patch_based: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "format": 1,
        "tool": "patch_memory",
        "checkpoint_sha256": "ab" * 32,
        "bn_folded": 49,
        "layer_by_layer": {
            "peak_bytes": 6 * 1024 * 1024,
            "peak_elements": 1572864,
            "at": "features.2.0 (out)",
            "live": [],
        },
        "patch_based": patch_based,
        "patch_based_reason": "" if patch_based else "no patch-wise layer",
    }


def _outputs(tmp_path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    p = tmp_path / "peak-memory.json"
    p.write_text(json.dumps(doc))
    log = tmp_path / "m.log"
    log.write_text("ok\n")
    return {
        "json": str(p),
        "log": str(log),
        "argv": ["python3", "patch_memory.py"],
        "identity": {"kind": "host"},
        "source_commit": PINNED,
    }


def test_plain_row_is_the_layer_by_layer_peak_in_kb(tmp_path: Path) -> None:
    steps = plan_steps()
    run = make_run(tmp_path)
    row = kpi_tinyml.peak_memory_row(run, steps["measure:peak-memory:plain"], _outputs(tmp_path, _memory_doc(None)))
    assert (row.status, row.value, row.unit, row.fidelity, row.workload) == (
        "ok",
        6144.0,
        "KB",
        "host",
        "efficientnet_b0-224",
    )
    assert "layer by layer" in row.note and row.artefact_sha256 == "ab" * 32


def test_patch_row_is_the_patch_based_peak_and_fails_without_one(tmp_path: Path) -> None:
    steps = plan_steps()
    run = make_run(tmp_path)
    pb = {
        "peak_bytes": 1024 * 1024,
        "peak_elements": 262144,
        "phase": "patch stage",
        "at": "x (out)",
        "grid": 4,
        "tile": [56, 56],
        "stage_units": ["features.0", "features.3.0"],
        "max_rel_diff": 1e-7,
    }
    step = steps["measure:peak-memory:patch"]
    row = kpi_tinyml.peak_memory_row(run, step, _outputs(tmp_path, _memory_doc(pb)))
    assert (row.status, row.value) == ("ok", 1024.0)
    assert "4x4 tiles of 56x56" in row.note and "layer by layer: 6144.0 KB" in row.note
    bad = kpi_tinyml.peak_memory_row(run, step, _outputs(tmp_path, _memory_doc(None)))
    assert bad.status == "failed" and "no patch-wise stage" in bad.note
    (tmp_path / "peak-memory.json").write_text("{")
    broken = kpi_tinyml.peak_memory_row(run, step, {"json": str(tmp_path / "peak-memory.json")})
    assert broken.status == "failed" and "unreadable" in broken.note


def test_rows_from_the_captured_smoke_analysis(tmp_path: Path) -> None:
    steps = plan_steps()
    run = make_run(tmp_path)
    values = {}
    for v in ("plain", "patch"):
        doc = json.loads((FIXTURES / f"peak_memory_{v}_efficientnet_b0.captured.json").read_text())
        row = kpi_tinyml.peak_memory_row(run, steps[f"measure:peak-memory:{v}"], _outputs(tmp_path, doc))
        assert row.status == "ok", row.note
        values[v] = row.value
    # EfficientNet-B0 at 224x224, fp32: the plain model peaks in features.2.0 (96x112x112 expanded);
    # the patch-aware model, its first stage in 4x4 tiles, peaks later at 28x28.
    assert values == {"plain": 5880.0, "patch": 1592.5}


def test_a_block_without_residual_releases_its_input_after_its_first_layer(pm: Any) -> None:
    import torch

    class Down(torch.nn.Module):
        use_res_connect = False

        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Conv2d(2, 2, 1), torch.nn.Conv2d(2, 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x))

    net = torch.nn.Sequential(Down())
    with torch.inference_mode(), pm.LivenessTrace(net) as tr:
        net(torch.zeros(1, 2, 1, 1))
    assert tr.peak().peak_bytes == 16  # never x, a(x) and b(a(x)) at once


def test_top1_row_comes_from_the_last_test_line(tmp_path: Path) -> None:
    steps = plan_steps()
    run = make_run(tmp_path)
    log = FIXTURES / "plain_smoke_1_epoch.handwritten.txt"
    row = kpi_tinyml.top1_row(run, steps["parse:plain"], {"log": str(log), "argv": ["python3"]})
    assert (row.metric, row.value, row.workload, row.status) == ("top1", 25.0, "synthetic", "ok")
    crashed = kpi_tinyml.top1_row(run, steps["parse:plain"], {"log": str(FIXTURES / "missing_presets.handwritten.txt")})
    assert crashed.status == "failed" and "presets" in crashed.note


def test_parse_writes_the_top1_and_peak_memory_rows_of_a_variant(tmp_path: Path) -> None:
    steps = plan_steps()
    run = make_run(tmp_path)
    run.steps = steps
    run.outputs["train:plain"] = {"log": str(FIXTURES / "plain_smoke_1_epoch.handwritten.txt"), "argv": []}
    run.outputs["measure:peak-memory:plain"] = _outputs(tmp_path, _memory_doc(None))
    assert kpi_tinyml.exec_parse(steps["parse:plain"], run) == {"rows": 2}
    rows = [json.loads(ln) for ln in (run.run_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["metric"] for r in rows) == ["peak_memory", "top1"]


# ---- executors and plan -------------------------------------------------------------------------


def test_mcu_peak_sram_step_is_blocked_naming_tinyengine_and_tflite(tmp_path: Path) -> None:
    steps = plan_steps("measure")
    with pytest.raises(Blocked, match=r"TinyEngine.*int8 TFLite"):
        kpi_tinyml.exec_measure(steps["measure:peak-sram:patch"], make_run(tmp_path, mode="measure"))


def test_memory_measurement_without_a_trained_checkpoint_is_blocked(tmp_path: Path) -> None:
    with pytest.raises(Blocked, match="no trained plain checkpoint"):
        kpi_tinyml.exec_measure(plan_steps()["measure:peak-memory:plain"], make_run(tmp_path))


def test_synthetic_data_step_writes_an_imagefolder(tmp_path: Path) -> None:
    out = kpi_tinyml.exec_fetch(plan_steps()["data:synthetic"], make_run(tmp_path))
    assert out["images"] == 32 and Path(out["train"], "c1").is_dir()


def test_plan_runs_the_python_script_not_the_shell_script_with_variant_flags() -> None:
    steps = plan_steps()
    plain, patch = steps["train:plain"].argv, steps["train:patch"].argv
    assert plain[:2] == ("python3", "/work/src/patch_aware_train.py")
    assert plain[plain.index("--num-per-patch-stage") + 1] == "0"
    assert patch[patch.index("--num-patches") + 1] == "4" and patch[patch.index("--num-per-patch-stage") + 1] == "5"
    assert "--lr-warmup-epochs" in plain and steps["measure:peak-memory:patch"].fidelity == "host"
    assert not any(s.startswith("measure:peak-sram") for s in steps)
    # The MCU step is not silently dropped: the plan (and the report) list it as not part of smoke runs.
    plan = plan_kpi(MANIFEST, MANIFEST.kpi("tinyml_memory"), mode="smoke", project_root=ROOT)
    assert [n.id for n in plan.not_in_mode] == ["measure:peak-sram:plain", "measure:peak-sram:patch"]
    assert all("int8 TFLite export" in n.why and n.planned_in == "measure" for n in plan.not_in_mode)


def test_measure_plan_uses_the_seed_settings_and_adds_the_blocked_mcu_step() -> None:
    steps = plan_steps("measure")
    argv = steps["train:patch"].argv
    assert argv[:2] == ("torchrun", "--nproc_per_node=4") and "--amp" in argv
    assert argv[argv.index("--epochs") + 1] == "20" and "EfficientNet_B0_Weights.IMAGENET1K_V1" in argv
    assert steps["measure:peak-sram:plain"].fidelity == "simulator"


def test_patch_memory_script_has_no_harness_imports() -> None:
    # It is copied into the image alone: only the standard library and torch at module level.
    text = (ROOT / "harness" / "payload" / "patch_memory.py").read_text()
    assert "from harness" not in text and "import harness" not in text
    proc = subprocess.run(
        [sys.executable, str(ROOT / "harness" / "payload" / "patch_memory.py"), "--help"],
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    )
    if proc.returncode != 0 and "No module named 'torch'" in proc.stderr:
        pytest.skip("torch is not installed here")
    assert proc.returncode == 0 and "--num-per-patch-stage" in proc.stdout
