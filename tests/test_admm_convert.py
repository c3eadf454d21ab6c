"""KPI 3's PyTorch → TFLite conversion: ADMM-format checkpoints made here, exported, written, run in LiteRT."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from harness.core.manifest import load_manifest
from harness.core.runner import Run
from harness.core.steps import Step
from harness.errors import BadInput, Blocked, StepFailed
from harness.kpis.common.tflite import ConvLayer, TinyNet, reference_forward
from harness.kpis.common.tflite_files import read_graph
from harness.kpis.common.tflite_writer import to_tflite
from harness.kpis.ml import convert as admm_convert
from harness.kpis.ml import execute as kpi_ml
from harness.kpis.ml import models as ml_models
from harness.kpis.ml import train as ml_train
from harness.kpis.ml.plan_latency import SEED_ARGS

pytest.importorskip("ai_edge_litert", reason="pip install ai-edge-litert (the LiteRT runtime)")

ROOT = Path(__file__).resolve().parent.parent
TORCH_REASON = "pip install torch (CPU wheel): the export half runs PyTorch's forward"
WIDTH = 0.25
CLASSES = 10
SIZE = 32
# 4x1 vectors zeroed in every 1x1 convolution: the pattern ADMM_baseline's --vector-size 4 leaves.
SPARSITY = 0.75


@pytest.fixture(scope="module")
def ex() -> ModuleType:
    pytest.importorskip("torch", reason=TORCH_REASON)
    from harness.payload import admm_export

    return admm_export


def _channels(ex: ModuleType, width: float) -> list[int]:
    return [ex.scaled_channels(c, width) for c in (ex.STEM_CHANNELS, *(c for c, _ in ex.BLOCKS))]


def make_model(ex: ModuleType, *, width: float = WIDTH, classes: int = CLASSES, size: int = SIZE, seed: int = 0) -> Any:
    """A MobileNetV1 with trained-looking BatchNorm statistics and 4x1-vector pruned 1x1 convolutions."""
    import torch

    torch.manual_seed(seed)
    model = ex.MobileNetV1(_channels(ex, width), classes, size).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                # Negative gammas too: folding must keep a zero a plain zero.
                m.weight.uniform_(-1.5, 1.5, generator=g)
                m.bias.normal_(0.5, 0.5, generator=g)
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.normal_(0, 0.2, generator=g)
                m.running_var.uniform_(0.3, 2.0, generator=g)
            elif isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1):
                vectors = m.weight.view(m.out_channels // 4, 4, m.in_channels)
                keep = torch.rand(vectors.shape[0], 1, vectors.shape[2], generator=g) >= SPARSITY
                vectors.mul_(keep)
        model.classifier[0].weight.mul_(20.0)  # logits of a few units, as a trained classifier gives
    return model


def save_admm_checkpoint(model: Any, path: Path, *, data_parallel: bool, masks: bool) -> dict[str, Any]:
    """model_best.pth.tar as ADMM_baseline writes it (perm_list of numpy arrays, best_acc1 a tensor)."""
    import torch

    state = dict(model.state_dict())
    if masks:
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1):
                mask = (m.weight != 0).to(torch.float32)
                state[f"{name}.mask"] = mask
                # Fine-tuning moves weights after the last masked forward: the hook's mask must win.
                state[f"{name}.weight"] = m.weight + 0.01 * (1 - mask)
    if data_parallel:
        state = {f"module.{k}": v for k, v in state.items()}
    ckpt = {
        "admm_epoch": 1,
        "ft_epoch": 1,
        "arch": "mobilenet_v1",
        "state_dict": state,
        "best_acc1": torch.tensor(50.0),
        "optimizer": {},
        "perm_list": [np.arange(8)],
        "mask": None,
    }
    torch.save(ckpt, path)
    return ckpt


def torch_logits(model: Any, probe: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.asarray(model(torch.from_numpy(probe)).numpy())


def pointwise_weights(tflite: Path) -> list[np.ndarray]:
    """The 1x1 CONV_2D weights stored in a float .tflite, in operator order."""
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT.InitFromPackedBuf(tflite.read_bytes(), 0)
    g = model.subgraphs[0]
    out = []
    for op in g.operators:
        if model.operatorCodes[op.opcodeIndex].builtinCode != s.BuiltinOperator.CONV_2D:
            continue
        t = g.tensors[op.inputs[1]]
        if list(t.shape[1:3]) == [1, 1]:
            data = np.asarray(model.buffers[t.buffer].data, dtype=np.uint8).tobytes()
            out.append(np.frombuffer(data, dtype=np.float32).reshape([int(d) for d in t.shape]))
    return out


@pytest.fixture(scope="module")
def converted(ex: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A GPU-style checkpoint (module. prefix, mask buffers, stray weights) exported, converted, verified."""
    d = tmp_path_factory.mktemp("gpu")
    model = make_model(ex)
    save_admm_checkpoint(model, d / "model_best.pth.tar", data_parallel=True, masks=True)
    meta = ex.export(d / "model_best.pth.tar", d / "export.npz", width_mult=WIDTH, input_size=SIZE)
    tflite = admm_convert.convert(d / "export.npz", d / "model.tflite")
    return {
        "dir": d,
        "model": model,
        "meta": meta,
        "tflite": tflite,
        "verification": admm_convert.verify(tflite, d / "export.npz"),
    }


# ---- the whole conversion, with torch -------------------------------------------------------


def test_litert_logits_match_pytorch_for_a_data_parallel_checkpoint_with_masks(converted: dict[str, Any]) -> None:
    v, meta = converted["verification"], converted["meta"]
    exp = admm_convert.load_export(converted["dir"] / "export.npz")
    assert meta["masks_applied"] == 13 and meta["nonzero_under_mask"] > 0
    # The exported logits are those of the pruned model itself (masks multiplied in).
    np.testing.assert_allclose(
        exp.arrays["logits"], torch_logits(converted["model"], exp.arrays["probe"]), rtol=0, atol=1e-5
    )
    assert np.abs(exp.arrays["logits"]).max() > 1.0
    assert v.max_abs_diff <= v.tolerance and v.max_abs_diff < 1e-4
    assert v.probes == 2 and v.size == converted["tflite"].stat().st_size
    logits = admm_convert.litert_logits(converted["tflite"], exp.arrays["probe"].transpose(0, 2, 3, 1))
    assert logits.shape == (2, CLASSES)


def test_numpy_reference_of_the_folded_network_matches_pytorch(converted: dict[str, Any]) -> None:
    exp = admm_convert.load_export(converted["dir"] / "export.npz")
    net = admm_convert.to_net(exp)
    got = reference_forward(net, exp.arrays["probe"].transpose(0, 2, 3, 1))
    np.testing.assert_allclose(got, exp.arrays["logits"], rtol=0, atol=1e-4)


def test_pruned_vectors_stay_exact_zeros_in_the_tflite_weights(converted: dict[str, Any]) -> None:
    import torch

    stored = pointwise_weights(converted["tflite"])
    convs = [m for m in converted["model"].modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)]
    assert len(stored) == len(convs) == 13
    for w, conv in zip(stored, convs, strict=True):
        want = conv.weight.detach().permute(0, 2, 3, 1).numpy() == 0
        np.testing.assert_array_equal(w == 0, want)
        assert not np.signbit(w[w == 0]).any()  # +0.0 only: the same checkpoint, the same bytes
    facts = read_graph(converted["tflite"])
    assert facts.pointwise_zero == converted["meta"]["pointwise_zero"]
    assert converted["verification"].pruned_fraction == pytest.approx(SPARSITY, abs=0.1)
    assert converted["verification"].pruned_fraction == converted["meta"]["pointwise_sparsity"]


def test_graph_is_stem_thirteen_separable_blocks_pool_and_classifier(converted: dict[str, Any]) -> None:
    ops = read_graph(converted["tflite"]).ops
    # 32x32 (ADMM_baseline's CIFAR variant): stem at stride 1; the four stride-2 depthwise
    # convolutions pad explicitly, because TFLite's SAME pads after, PyTorch before.
    assert {o: ops.count(o) for o in set(ops)} == {
        "CONV_2D": 14,
        "DEPTHWISE_CONV_2D": 13,
        "PAD": 4,
        "AVERAGE_POOL_2D": 1,
        "RESHAPE": 1,
        "FULLY_CONNECTED": 1,
    }
    assert ops[-3:] == ("AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED")
    assert converted["verification"].ops == len(ops) == 34


def test_same_export_gives_the_same_bytes(converted: dict[str, Any], tmp_path: Path) -> None:
    again = admm_convert.convert(converted["dir"] / "export.npz", tmp_path / "again.tflite")
    assert again.read_bytes() == converted["tflite"].read_bytes()


def test_plain_cpu_checkpoint_at_imagenet_layout_converts(ex: ModuleType, tmp_path: Path) -> None:
    # A CPU run has no module. prefix; 64x64 takes the ImageNet path (stem stride 2), 1000 classes.
    model = make_model(ex, width=0.25, classes=1000, size=64, seed=3)
    save_admm_checkpoint(model, tmp_path / "ck.pth.tar", data_parallel=False, masks=False)
    meta = ex.export(tmp_path / "ck.pth.tar", tmp_path / "e.npz", input_size=64, seed=7, probes=1)
    assert meta["masks_applied"] == 0 and meta["width_mult"] is None and meta["num_classes"] == 1000
    v = admm_convert.verify(admm_convert.convert(tmp_path / "e.npz", tmp_path / "m.tflite"), tmp_path / "e.npz")
    assert v.max_abs_diff <= v.tolerance and v.probes == 1
    assert read_graph(v.path).ops.count("PAD") == 5  # the stride-2 stem too


def test_upstream_definition_given_by_model_dir_is_the_reference(
    ex: ModuleType, converted: dict[str, Any], tmp_path: Path
) -> None:
    model_dir = _standin_upstream(tmp_path / "ADMM_baseline")
    meta = ex.export(
        converted["dir"] / "model_best.pth.tar",
        tmp_path / "up.npz",
        width_mult=WIDTH,
        input_size=SIZE,
        model_dir=model_dir,
    )
    assert meta["reference"].startswith("upstream ")
    a, b = admm_convert.load_export(tmp_path / "up.npz"), admm_convert.load_export(converted["dir"] / "export.npz")
    np.testing.assert_array_equal(a.arrays["logits"], b.arrays["logits"])
    assert not list(model_dir.rglob("__pycache__"))


# ---- bad input ------------------------------------------------------------------------------


def test_bad_checkpoints_give_a_clear_error(ex: ModuleType, converted: dict[str, Any], tmp_path: Path) -> None:
    import torch

    junk = tmp_path / "junk.pth.tar"
    junk.write_bytes(b"<html>not a checkpoint</html>")
    with pytest.raises(ex.ExportError, match="not a PyTorch checkpoint"):
        ex.export(junk, tmp_path / "o.npz")
    torch.save({"model": {}}, tmp_path / "other.pth")
    with pytest.raises(ex.ExportError, match="no 'state_dict'"):
        ex.export(tmp_path / "other.pth", tmp_path / "o.npz")
    torch.save({"state_dict": {"conv1.weight": torch.zeros(64, 3, 7, 7)}, "arch": "mobilenet_v1"}, tmp_path / "r.pth")
    with pytest.raises(ex.ExportError, match="not ADMM_baseline's MobileNetV1"):
        ex.export(tmp_path / "r.pth", tmp_path / "o.npz")
    with pytest.raises(ex.ExportError, match=r"not MobileNetV1 at width 0\.9"):
        ex.export(converted["dir"] / "model_best.pth.tar", tmp_path / "o.npz", width_mult=0.9, input_size=SIZE)
    with pytest.raises(ex.ExportError, match="no such checkpoint"):
        ex.export(tmp_path / "absent.pth.tar", tmp_path / "o.npz")
    assert not (tmp_path / "o.npz").exists()


def test_export_script_exits_2_with_one_error_line(ex: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "junk.pth.tar").write_bytes(b"\x00" * 64)
    proc = subprocess.run(
        [sys.executable, str(ex.__file__), str(tmp_path / "junk.pth.tar"), str(tmp_path / "o.npz")],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("admm_export: error: ") and "not a PyTorch checkpoint" in proc.stderr


def test_verify_fails_when_logits_drift_or_zeros_are_lost(converted: dict[str, Any], tmp_path: Path) -> None:
    exp = admm_convert.load_export(converted["dir"] / "export.npz")
    arrays = dict(exp.arrays)
    arrays["logits"] = arrays["logits"] + 0.05
    _save(tmp_path / "drift.npz", exp.meta, arrays)
    with pytest.raises(StepFailed, match="differ from PyTorch's"):
        admm_convert.verify(converted["tflite"], tmp_path / "drift.npz")
    _save(tmp_path / "zeros.npz", {**exp.meta, "pointwise_zero": exp.meta["pointwise_zero"] + 4}, dict(exp.arrays))
    with pytest.raises(StepFailed, match="zero weights in the 1x1 convolutions"):
        admm_convert.verify(converted["tflite"], tmp_path / "zeros.npz")


# ---- without torch: the host half and the writer's PyTorch padding ------------------------


def _save(path: Path, meta: Any, arrays: dict[str, np.ndarray]) -> None:
    np.savez(path, meta=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]


def test_npz_that_is_not_an_export_is_bad_input(tmp_path: Path) -> None:
    (tmp_path / "x.npz").write_bytes(b"nope")
    with pytest.raises(BadInput, match="not an admm_export"):
        admm_convert.load_export(tmp_path / "x.npz")
    np.savez(tmp_path / "y.npz", a=np.zeros(2))
    with pytest.raises(BadInput, match="no metadata"):
        admm_convert.load_export(tmp_path / "y.npz")
    _save(tmp_path / "z.npz", {"format": "other/9", "layers": []}, {})
    with pytest.raises(BadInput, match="format 'other/9'"):
        admm_convert.load_export(tmp_path / "z.npz")


def test_folding_keeps_zeros_positive_zeros_and_computes_batchnorm() -> None:
    w = np.array([[[[0.0]], [[2.0]]], [[[1.0]], [[0.0]]]], dtype=np.float32)  # [2, 2, 1, 1]
    gamma, beta = np.array([-2.0, 0.5], np.float32), np.array([0.1, -0.1], np.float32)
    mean, var = np.array([1.0, -1.0], np.float32), np.array([3.0, 0.0], np.float32)
    fw, fb = admm_convert.fold_batchnorm(w, gamma, beta, mean, var, 1.0)
    np.testing.assert_allclose(fw[:, :, 0, 0], [[0.0, -2.0], [0.5, 0.0]])
    np.testing.assert_allclose(fb, [0.1 + 1.0, -0.1 + 0.5])
    assert not np.signbit(fw[fw == 0]).any()


def _padded_net(seed: int = 0) -> TinyNet:
    rng = np.random.default_rng(seed)

    def r(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.4).astype(np.float32)

    layers = (
        ConvLayer(kind="conv", weights=r(8, 3, 3, 3), bias=r(8), stride=2, pad=1),
        ConvLayer(kind="depthwise", weights=r(1, 3, 3, 8), bias=r(8), stride=1, pad=1),
        ConvLayer(kind="pointwise", weights=r(16, 1, 1, 8), bias=r(16), stride=1, pad=0),
        ConvLayer(kind="depthwise", weights=r(1, 3, 3, 16), bias=r(16), stride=2, pad=1),
    )
    return TinyNet(layers=layers, fc_weights=r(5, 16), fc_bias=r(5), input_shape=(1, 16, 16, 3), softmax=False)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if inp["dtype"] == np.int8:
        s, z = inp["quantization"]
        x = np.clip(np.round(x / s + z), -128, 127).astype(np.int8)
    it.set_tensor(inp["index"], x)
    it.invoke()
    y = it.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        s, z = out["quantization"]
        return (y.astype(np.float32) - z) * s
    return np.asarray(y)


@pytest.mark.parametrize("int8", [False, True])
def test_pytorch_padding_runs_in_litert_as_the_numpy_reference_computes(tmp_path: Path, int8: bool) -> None:
    net = _padded_net()
    path = tmp_path / "padded.tflite"
    path.write_bytes(to_tflite(net, int8=int8, description="padding test"))
    x = np.random.default_rng(5).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    want = reference_forward(net, x)
    assert want.shape == (1, 5)
    np.testing.assert_allclose(_run(path, x), want, atol=0.25 if int8 else 1e-5)
    ops = read_graph(path).ops
    assert ops.count("PAD") == 2 and ops[-1] == "FULLY_CONNECTED"  # stride-2 layers only; logits out


def test_pytorch_padding_is_not_tflite_same_at_stride_two() -> None:
    net = _padded_net()
    same = TinyNet(
        layers=tuple(ConvLayer(kind=la.kind, weights=la.weights, bias=la.bias, stride=la.stride) for la in net.layers),
        fc_weights=net.fc_weights,
        fc_bias=net.fc_bias,
        input_shape=net.input_shape,
        softmax=False,
    )
    x = np.random.default_rng(6).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    assert np.abs(reference_forward(net, x) - reference_forward(same, x)).max() > 1e-3


# ---- the convert:tflite step --------------------------------------------------------------


MANIFEST = load_manifest(ROOT / "kpis.toml")


def test_export_argv_follows_the_training_argv() -> None:
    argv = ml_train.export_argv(
        ["python3", "/work/src/main.py", "/data", *SEED_ARGS], "/work/c/m.pth.tar", "/work/e.npz"
    )
    assert argv[:4] == ["python3", "/work/admm_export.py", "/work/c/m.pth.tar", "/work/e.npz"]
    assert argv[argv.index("--width-mult") + 1] == "1.0" and argv[argv.index("--input-size") + 1] == "224"
    cifar = ml_train.export_argv(
        ["-a", "mobilenet_v1", "--dataset", "cifar10", "--width-mult=0.9"], "c", "o", model_dir="/work/upstream"
    )
    assert cifar[cifar.index("--input-size") + 1] == "32" and cifar[cifar.index("--width-mult") + 1] == "0.9"
    assert cifar[-2:] == ["--model-dir", "/work/upstream"]
    with pytest.raises(Blocked, match="mobilenet_v1 only"):
        ml_train.export_argv(["-a", "mobilenet_v2"], "c", "o")
    with pytest.raises(Blocked, match="recorded no command line"):
        ml_train.export_argv([], "c", "o")


def _run_training_here(
    run: Run,
    step: Step,
    argv: Sequence[str],
    *,
    work: Path,
    data: Path | None,
    env: dict[str, str] | None = None,
    cwd: str = "/work",
) -> tuple[int, Path]:
    """Stands in for harness.kpis.common.training.run_training: the command runs here, /work mapped to `work`."""

    def host(a: str) -> str:
        return str(work) + a[len("/work") :] if a == "/work" or a.startswith("/work/") else a

    log = run.log_path(step.id)
    args = [sys.executable if a == "python3" else host(a) for a in argv]
    with log.open("wb") as f:
        proc = subprocess.run(
            args,
            stdout=f,
            stderr=subprocess.STDOUT,
            cwd=host(cwd),
            check=False,
            timeout=600,
            env={**os.environ, **(env or {})},
        )
    return proc.returncode, log


def test_convert_step_stores_a_verified_tflite_that_later_steps_find(
    ex: ModuleType, converted: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / MANIFEST.images[ml_models.TRAIN_IMAGE].context).mkdir(parents=True)
    run = Run(
        run_id="t",
        run_dir=tmp_path / "run",
        manifest=MANIFEST,
        project_root=project,
        cache_dir=tmp_path / "cache",
        mode="smoke",
    )
    src = tmp_path / "auto-compression"
    _standin_upstream(src / "pruning/UVP/ADMM_baseline")
    run.outputs.update(
        {
            "train:admm": {
                "checkpoint": str(converted["dir"] / "model_best.pth.tar"),
                "argv": [
                    "python3",
                    "/work/src/main.py",
                    "/data",
                    "-a",
                    "mobilenet_v1",
                    "--dataset",
                    "cifar10",
                    "--width-mult",
                    str(WIDTH),
                ],
            },
            f"image:{ml_models.TRAIN_IMAGE}": {"tag": "ant-kpi/cuda-train:test", "id": "sha256:0"},
            "source:auto_compression:pruning/UVP/ADMM_baseline": {"path": str(src), "commit": "0" * 40},
        }
    )
    monkeypatch.setattr(ml_train, "run_training", _run_training_here)
    step = Step(id="convert:tflite", kpi="ml_latency", kind="convert", where="image", description="test")
    out = kpi_ml.exec_convert(step, run)
    assert out["sha256"] == converted["verification"].sha256  # same checkpoint, same bytes
    assert out["max_abs_diff"] <= out["tolerance"] and out["ops"] == 34
    ref = out["provenance"]["reference"]  # the stand-in ran through the path the step mounted
    assert ref.startswith("upstream ") and ref.endswith("/upstream/models/mobilenet_v1.py")
    run.outputs["convert:tflite"] = out
    found = kpi_ml.artefact_model(run)
    assert found is not None and found.path == Path(out["path"]) and found.path.name == "mbv1_0.9_v4u.harness.tflite"
    assert found.path.read_bytes() == converted["tflite"].read_bytes()
    assert "admm_export:" in Path(out["log"]).read_text()


def _standin_upstream(admm_dir: Path) -> Path:
    """A models/mobilenet_v1.py with upstream's constructor and parameter names, written independently."""
    (admm_dir / "models").mkdir(parents=True, exist_ok=True)
    (admm_dir / "models" / "mobilenet_v1.py").write_text(_STANDIN, encoding="utf-8")
    return admm_dir


_STANDIN = """
import torch
from torch import nn

PLAN = [64, (128, 2), 128, (256, 2), 256, (512, 2), 512, 512, 512, 512, 512, (1024, 2), 1024]


def width(c, m):
    v = c * m
    r = max(4, int(v + 2) // 4 * 4)
    return r + 4 if r < 0.9 * v else r


def cbr(cin, cout, k, s, groups=1):
    return [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU6(True)]


class Sep(nn.Module):
    def __init__(self, cin, cout, s):
        super().__init__()
        self.body = nn.Sequential(*cbr(cin, cin, 3, s, groups=cin), *cbr(cin, cout, 1, 1))

    def forward(self, x):
        return self.body(x)


class MobileNetV1(nn.Module):
    def __init__(self, num_classes=1000, input_size=224, width_mult=1.0):
        super().__init__()
        small = input_size == 32
        c = width(32, width_mult)
        feats = [nn.Sequential(*cbr(3, c, 3, 1 if small else 2))]
        for item in PLAN:
            out, s = item if isinstance(item, tuple) else (item, 1)
            feats.append(Sep(c, width(out, width_mult), s))
            c = width(out, width_mult)
        feats.append(nn.AvgPool2d(input_size // (16 if small else 32)))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Linear(c, num_classes))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))
"""
