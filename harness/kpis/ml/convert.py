"""The harness's PyTorch → TFLite conversion of KPI 3's ADMM training output (MobileNetV1).

Auto-Compression has no convert.py for ADMM_baseline at the pinned commit (nor in any other), so
the harness converts `model_best.pth.tar` itself, in two halves:

1. `harness/admm_export.py` runs where PyTorch is (the cuda-train image): it loads the checkpoint,
   drops `module.` and multiplies the `*.mask` buffers in, rebuilds MobileNetV1, runs PyTorch's
   forward on a seeded probe input and writes weights, BatchNorm statistics, probe and logits to
   an .npz.
2. This module, on the host: it folds each BatchNorm into the convolution before it, maps the
   layers (3x3 stem, 13 depthwise/pointwise pairs with ReLU6, global average pool, fully connected
   classifier) onto the project's own flatbuffer writer (`harness.kpis.common.tflite`), and `verify`
   runs the .tflite in the LiteRT runtime against PyTorch's logits.

Why this converter, and not TensorFlow's converter, ONNX → onnx2tf or ai-edge-torch:
- no TensorFlow, ONNX or ai-edge-torch: their pins move with torch's, and the training image's
  torch is fixed by its CUDA build; the host needs only numpy and ai-edge-litert;
- the zeros of the pruned 4x1 vectors stay exact: folding scales each output channel by one
  factor (0 × s = 0), and nothing re-quantises, re-fuses or reorders the weights;
- deterministic: the same checkpoint gives the same bytes;
- checked every time: beyond the tolerance, or with fewer zeros in the file than in the
  checkpoint, the conversion fails.
The model is float32 and dense-stored, as a plain TFLite converter writes it: pruning makes zeros,
not a smaller file.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from harness.errors import BadInput, Blocked, HarnessError, StepFailed
from harness.kpis.common.tflite import ConvLayer, TinyNet
from harness.kpis.common.tflite_files import LITERT_FIX, read_graph, size_and_sha256
from harness.kpis.common.tflite_writer import to_tflite

EXPORT_FORMAT: Final = "ant-kpi-admm-export/1"
# |TFLite − PyTorch| may reach ATOL + RTOL × max|PyTorch logit|: float32 sums in another order.
ATOL: Final = 1e-3
RTOL: Final = 1e-4
_LAYER_ARRAYS: Final = ("weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var")


@dataclass(frozen=True, kw_only=True)
class Export:
    """What admm_export.py wrote: metadata and the arrays by name."""

    path: Path
    meta: Mapping[str, Any]
    arrays: Mapping[str, np.ndarray]

    @property
    def input_size(self) -> int:
        return int(self.meta["input_size"])


@dataclass(frozen=True, kw_only=True)
class Verification:
    """A converted .tflite checked against PyTorch in LiteRT."""

    path: Path
    size: int
    sha256: str
    max_abs_diff: float
    tolerance: float
    pruned_fraction: float  # zeros over all 1x1 convolution weights, read back from the .tflite
    ops: int
    probes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size": self.size,
            "sha256": self.sha256,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": self.tolerance,
            "pruned_fraction": self.pruned_fraction,
            "ops": self.ops,
            "probes": self.probes,
        }


def load_export(path: str | Path) -> Export:
    """Read an admm_export .npz; BadInput when it is not one."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise BadInput(f"{p}: not an admm_export .npz ({e})") from None
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except (KeyError, json.JSONDecodeError):
        raise BadInput(f"{p}: no metadata; write it with harness/admm_export.py") from None
    if meta.get("format") != EXPORT_FORMAT:
        raise BadInput(f"{p}: format {meta.get('format')!r}, this harness reads {EXPORT_FORMAT!r}")
    need = [f"layer{i}.{a}" for i in range(len(meta["layers"])) for a in _LAYER_ARRAYS]
    missing = [k for k in (*need, "fc.weight", "fc.bias", "probe", "logits") if k not in arrays]
    if missing:
        raise BadInput(f"{p}: arrays missing: {', '.join(missing[:5])}")
    return Export(path=p, meta=meta, arrays=arrays)


def fold_batchnorm(
    weight: np.ndarray, gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Weight (output channels first) and bias of conv → BatchNorm(eval) as one convolution."""
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    w = weight.astype(np.float64) * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    b = beta.astype(np.float64) - mean.astype(np.float64) * scale
    # + 0.0 turns the -0.0 of a zero times a negative scale into 0.0: same value, one byte pattern.
    return (w.astype(np.float32) + np.float32(0.0)), b.astype(np.float32)


def to_net(exp: Export) -> TinyNet:
    """The exported MobileNetV1 as the TFLite writer's network (NHWC, BatchNorm folded, logits out)."""
    layers = []
    for i, spec in enumerate(exp.meta["layers"]):
        a = {name: exp.arrays[f"layer{i}.{name}"] for name in _LAYER_ARRAYS}
        w, b = fold_batchnorm(
            a["weight"], a["bn.weight"], a["bn.bias"], a["bn.running_mean"], a["bn.running_var"], float(spec["bn_eps"])
        )
        kind = spec["kind"]
        if spec.get("activation", "relu6") != "relu6" or kind not in ("conv", "depthwise", "pointwise"):
            raise BadInput(f"{exp.path}: layer {spec['name']} ({kind}, {spec.get('activation')}) is not supported")
        # PyTorch OIHW → TFLite OHWI; a depthwise weight [C, 1, kh, kw] → [1, kh, kw, C].
        tw = w.transpose(1, 2, 3, 0) if kind == "depthwise" else w.transpose(0, 2, 3, 1)
        layers.append(
            ConvLayer(
                kind=kind, weights=np.ascontiguousarray(tw), bias=b, stride=int(spec["stride"]), pad=int(spec["pad"])
            )
        )
    size = exp.input_size
    return TinyNet(
        layers=tuple(layers),
        fc_weights=np.ascontiguousarray(exp.arrays["fc.weight"], dtype=np.float32),
        fc_bias=np.ascontiguousarray(exp.arrays["fc.bias"], dtype=np.float32),
        input_shape=(1, size, size, 3),
        softmax=False,
    )


def description(exp: Export) -> str:
    """The model description written into the flatbuffer: what it is and where it came from."""
    m = exp.meta
    width = f" width {m['width_mult']}" if m.get("width_mult") is not None else ""
    return (
        f"ant-kpi conversion of Auto-Compression ADMM_baseline {m['arch']}{width}, "
        f"{m['input_size']}x{m['input_size']}, checkpoint sha256 {m['checkpoint']['sha256']}"
    )


def convert(npz: str | Path, out: str | Path) -> Path:
    """Write the .tflite of an admm_export .npz; the same .npz always gives the same bytes."""
    exp = load_export(npz)
    data = to_tflite(to_net(exp), description=description(exp))
    p = Path(out)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(p)
    return p


def litert_logits(tflite: str | Path, x_nhwc: np.ndarray) -> np.ndarray:
    """Run a float .tflite in the LiteRT runtime, one image at a time; [N, classes]."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise Blocked(f"the LiteRT runtime is not installed ({e})", LITERT_FIX) from None
    it = Interpreter(model_path=str(tflite), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    rows = []
    for img in x_nhwc:
        it.set_tensor(inp["index"], np.ascontiguousarray(img[None], dtype=np.float32))
        it.invoke()
        rows.append(np.array(it.get_tensor(out["index"]), dtype=np.float32).reshape(-1))
    return np.stack(rows)


def verify(tflite: str | Path, npz: str | Path, *, atol: float = ATOL, rtol: float = RTOL) -> Verification:
    """LiteRT's logits on the export's probe against PyTorch's; StepFailed beyond the tolerance or lost zeros."""
    exp = load_export(npz)
    p = Path(tflite)
    graph = read_graph(p)
    want = exp.arrays["logits"].astype(np.float32)
    got = litert_logits(p, exp.arrays["probe"].transpose(0, 2, 3, 1))
    if got.shape != want.shape:
        raise StepFailed(f"{p}: LiteRT gives logits of shape {got.shape}, PyTorch {want.shape}")
    diff = float(np.abs(got - want).max())
    tol = atol + rtol * float(np.abs(want).max())
    if not diff <= tol:  # also catches NaN
        raise StepFailed(f"{p}: LiteRT logits differ from PyTorch's by up to {diff:.3g} (tolerance {tol:.3g})")
    pruned = graph.pointwise_sparsity
    zeros_expected = int(exp.meta["pointwise_zero"])
    if graph.pointwise_zero != zeros_expected:
        raise StepFailed(
            f"{p}: {graph.pointwise_zero} zero weights in the 1x1 convolutions, the checkpoint has {zeros_expected}"
        )
    size, sha = size_and_sha256(p)
    return Verification(
        path=p,
        size=size,
        sha256=sha,
        max_abs_diff=diff,
        tolerance=tol,
        pruned_fraction=pruned,
        ops=len(graph.ops),
        probes=int(got.shape[0]),
    )


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.kpis.ml.convert EXPORT.npz OUT.tflite`: convert and verify, print the facts."""
    ap = argparse.ArgumentParser(prog="python -m harness.kpis.ml.convert", description=main.__doc__)
    ap.add_argument("export", type=Path, help="the .npz written by harness/admm_export.py")
    ap.add_argument("out", type=Path, help="the .tflite to write")
    a = ap.parse_args(argv)
    try:
        v = verify(convert(a.export, a.out), a.export)
    except HarnessError as e:
        print(f"admm_convert: {e.one_line()}", file=sys.stderr)
        return e.exit_code
    print(json.dumps(v.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
