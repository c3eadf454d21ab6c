"""Serialisation of a TinyNet into the TFLite schema (float32, or int8 with per-channel weight
scales), through the flatbuffer builder of the LiteRT schema."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.kpis.common.tflite import (
    _BUFFER_ALIGNMENT,
    SCHEMA_VERSION,
    ConvLayer,
    TinyNet,
    _same_pads,
    reference_forward,
    tiny_net,
)
from harness.kpis.common.tflite_files import TFLITE_IDENTIFIER, _schema, size_and_sha256


@dataclass(frozen=True, kw_only=True)
class GeneratedModel:
    """A .tflite file written by `tiny_mobilenet_like`."""

    path: Path
    size: int
    sha256: str
    int8: bool
    sparsity: float  # achieved fraction of zeros in the pointwise weights
    net: TinyNet


# --------------------------------------------------------------------------------------------
# Serialisation into the TFLite schema
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Quant:
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0


def _act_quant(lo: float, hi: float) -> _Quant:
    """Asymmetric int8 parameters covering [lo, hi] (widened to include 0, as TFLite requires)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 or 1.0
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return _Quant(scale=(scale,), zero_point=(zp,))


def _weight_quant(w: np.ndarray, axis: int) -> tuple[np.ndarray, _Quant]:
    """Symmetric per-channel int8 weights along `axis`."""
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    peak = np.abs(moved).max(axis=1)
    # A channel pruned to all zeros gets scale 1: any scale represents it, and its bias stays finite.
    scale = np.where(peak > 0, peak / 127.0, 1.0)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, _Quant(scale=tuple(float(s) for s in scale), zero_point=(0,) * scale.size, axis=axis)


def _weight_quant_per_tensor(w: np.ndarray) -> tuple[np.ndarray, _Quant]:
    """Symmetric int8 weights with one scale for the whole tensor."""
    peak = float(np.abs(w).max())
    scale = peak / 127.0 if peak > 0 else 1.0
    q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
    return q, _Quant(scale=(scale,), zero_point=(0,))


def _bias_int32(bias: np.ndarray, scale: Sequence[float]) -> np.ndarray:
    """int32 bias at scale input_scale * weight_scale, as TFLite's integer kernels expect."""
    info = np.iinfo(np.int32)
    return np.clip(np.round(bias / np.asarray(scale, dtype=np.float64)), info.min, info.max).astype(np.int32)


class _Builder:
    """Accumulates tensors, buffers and operators of one subgraph."""

    def __init__(self, schema: Any) -> None:
        self.s = schema
        self.buffers: list[Any] = [schema.BufferT()]  # buffer 0 is the empty sentinel
        self.tensors: list[Any] = []
        self.operators: list[Any] = []
        self.opcodes: list[tuple[int, int]] = []

    def tensor(
        self, name: str, shape: Sequence[int], ttype: int, data: np.ndarray | None = None, quant: _Quant | None = None
    ) -> int:
        t = self.s.TensorT()
        t.name = name
        t.shape = list(shape)
        t.type = ttype
        if data is not None:
            buf = self.s.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        if quant is not None:
            q = self.s.QuantizationParametersT()
            q.scale = list(quant.scale)
            q.zeroPoint = list(quant.zero_point)
            q.quantizedDimension = quant.axis
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(
        self, code: int, version: int, inputs: list[int], outputs: list[int], options_type: int, options: Any
    ) -> None:
        key = (code, version)
        if key not in self.opcodes:
            self.opcodes.append(key)
        o = self.s.OperatorT()
        o.opcodeIndex = self.opcodes.index(key)
        o.inputs = inputs
        o.outputs = outputs
        o.builtinOptionsType = options_type
        o.builtinOptions = options
        self.operators.append(o)

    def finish(self, inputs: list[int], outputs: list[int], description: str) -> bytes:
        import flatbuffers

        s = self.s
        sg = s.SubGraphT()
        sg.tensors, sg.inputs, sg.outputs, sg.operators, sg.name = (
            self.tensors,
            inputs,
            outputs,
            self.operators,
            "main",
        )
        model = s.ModelT()
        model.version = SCHEMA_VERSION
        model.description = description
        model.subgraphs = [sg]
        model.buffers = [_AlignedBuffer(b) for b in self.buffers]
        codes = []
        for code, version in self.opcodes:
            oc = s.OperatorCodeT()
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)  # older runtimes read only this field
            oc.version = version
            codes.append(oc)
        model.operatorCodes = codes
        fb = flatbuffers.Builder(1024)
        fb.Finish(model.Pack(fb), file_identifier=TFLITE_IDENTIFIER)
        return bytes(fb.Output())


class _AlignedBuffer:
    """A schema Buffer whose data vector starts on a 16-byte boundary."""

    def __init__(self, buf: Any) -> None:
        self.data: np.ndarray | None = buf.data

    def Pack(self, builder: Any) -> int:  # the schema's object API calls it by this name
        schema = _schema()
        vec = None
        if self.data is not None and self.data.size:
            payload = self.data.tobytes()
            builder.StartVector(1, len(payload), _BUFFER_ALIGNMENT)
            builder.head = builder.head - len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            builder.vectorNumElems = len(payload)
            vec = builder.EndVector()
        schema.BufferStart(builder)
        if vec is not None:
            schema.BufferAddData(builder, vec)
        return int(schema.BufferEnd(builder))


def _explicit_pad(layer: ConvLayer) -> int:
    """Zeros a PAD operator must add before `layer` (0 when the convolution's own padding suffices)."""
    if layer.pad is None:
        return 0
    k = layer.weights.shape[1]
    # Stride 1 with pad (k-1)/2 is exactly TFLite's SAME: no separate operator, as converters do.
    if layer.stride == 1 and 2 * layer.pad == k - 1:
        return 0
    return layer.pad


def to_tflite(
    net: TinyNet,
    *,
    int8: bool = False,
    calibration_seed: int = 1,
    description: str = "",
    per_tensor_fc: bool = False,
) -> bytes:
    """Serialise the network as a TFLite flatbuffer: float32, or full-integer int8 (per-channel
    weights; `per_tensor_fc`: one scale for the fully-connected weights, as TFLite converters before
    2.14 make them and TVM 0.13's TFLite front end requires)."""
    s = _schema()
    b = _Builder(s)
    tt, ops, kinds = s.TensorType, s.BuiltinOperator, s.BuiltinOptions
    relu6, same, valid = s.ActivationFunctionType.RELU6, s.Padding.SAME, s.Padding.VALID
    in_shape = tuple(net.input_shape)
    n_classes = net.num_classes
    act_quants: list[_Quant] = []
    if int8:
        # Activation ranges from a float pass over random inputs in the input range [-1, 1].
        x = np.random.default_rng(calibration_seed).uniform(-1, 1, (8, *in_shape[1:])).astype(np.float32)
        _, acts = reference_forward(net, x, return_activations=True)
        act_quants = [_act_quant(-1.0, 1.0)] + [_act_quant(float(a.min()), float(a.max())) for a in acts[1:]]
    atype = tt.INT8 if int8 else tt.FLOAT32

    def aq(i: int) -> _Quant | None:
        return act_quants[i] if int8 else None

    cur = b.tensor("input", in_shape, atype, quant=aq(0))
    model_in = cur
    h, w = in_shape[1], in_shape[2]
    for i, layer in enumerate(net.layers):
        in_ch = layer.weights.shape[3]  # OHWI, or 1HWC for depthwise: channels in are last
        name = f"{layer.kind}{i}"
        pad = _explicit_pad(layer)
        if pad:
            h, w = h + 2 * pad, w + 2 * pad
            pads = b.tensor(
                f"{name}/paddings", (4, 2), tt.INT32, np.array([[0, 0], [pad, pad], [pad, pad], [0, 0]], dtype=np.int32)
            )
            # PAD keeps its input's quantization, so the zeros it adds are the input's zero point.
            padded = b.tensor(f"{name}/padded", (1, h, w, in_ch), atype, quant=aq(i))
            b.op(ops.PAD, 2 if int8 else 1, [cur, pads], [padded], kinds.PadOptions, s.PadOptionsT())
            cur = padded
        k = layer.weights.shape[1]
        if pad or layer.pad == 0:
            h, w = (h - k) // layer.stride + 1, (w - k) // layer.stride + 1
            padding = valid
        else:  # TFLite SAME, asked for or equal to the PyTorch padding (see _explicit_pad)
            h, w = _same_pads(h, k, layer.stride)[0], _same_pads(w, k, layer.stride)[0]
            padding = same
        ch = in_ch if layer.kind == "depthwise" else layer.weights.shape[0]
        if int8:
            axis = 3 if layer.kind == "depthwise" else 0
            qw, wq = _weight_quant(layer.weights, axis)
            in_scale = act_quants[i].scale[0]
            bscale = tuple(in_scale * sw for sw in wq.scale)
            qb = _bias_int32(layer.bias, bscale)
            wt = b.tensor(f"{name}/weights", layer.weights.shape, tt.INT8, qw, wq)
            bt = b.tensor(f"{name}/bias", (ch,), tt.INT32, qb, _Quant(scale=bscale, zero_point=(0,) * ch))
        else:
            wt = b.tensor(f"{name}/weights", layer.weights.shape, tt.FLOAT32, layer.weights)
            bt = b.tensor(f"{name}/bias", (ch,), tt.FLOAT32, layer.bias)
        out = b.tensor(f"{name}/out", (1, h, w, ch), atype, quant=aq(i + 1))
        if layer.kind == "depthwise":
            opts = s.DepthwiseConv2DOptionsT()
            opts.depthMultiplier = 1
            code, otype = ops.DEPTHWISE_CONV_2D, kinds.DepthwiseConv2DOptions
        else:
            opts = s.Conv2DOptionsT()
            code, otype = ops.CONV_2D, kinds.Conv2DOptions
        opts.padding, opts.fusedActivationFunction = padding, relu6
        opts.strideH = opts.strideW = layer.stride
        # Op versions as the TFLite converter assigns them: int8 per-channel needs version 3.
        b.op(code, 3 if int8 else 1, [cur, wt, bt], [out], otype, opts)
        cur = out
    ch = net.fc_weights.shape[1]
    n_layers = len(net.layers)
    # Average pooling keeps its input's quantization (int8 kernels require it).
    pool_q = aq(n_layers)
    pooled = b.tensor("pool/out", (1, 1, 1, ch), atype, quant=pool_q)
    popts = s.Pool2DOptionsT()
    popts.padding, popts.strideH, popts.strideW, popts.filterHeight, popts.filterWidth = valid, 1, 1, h, w
    b.op(ops.AVERAGE_POOL_2D, 2 if int8 else 1, [cur], [pooled], kinds.Pool2DOptions, popts)
    shape_t = b.tensor("reshape/shape", (2,), tt.INT32, np.array([1, ch], dtype=np.int32))
    flat = b.tensor("reshape/out", (1, ch), atype, quant=pool_q)
    ropts = s.ReshapeOptionsT()
    ropts.newShape = [1, ch]
    b.op(ops.RESHAPE, 1, [pooled, shape_t], [flat], kinds.ReshapeOptions, ropts)
    if int8:
        assert pool_q is not None
        qw, wq = _weight_quant_per_tensor(net.fc_weights) if per_tensor_fc else _weight_quant(net.fc_weights, 0)
        bscale = tuple(pool_q.scale[0] * sw for sw in wq.scale)
        fw = b.tensor("fc/weights", net.fc_weights.shape, tt.INT8, qw, wq)
        fb_ = b.tensor(
            "fc/bias",
            (n_classes,),
            tt.INT32,
            _bias_int32(net.fc_bias, bscale),
            _Quant(scale=bscale, zero_point=(0,) * len(bscale)),
        )
        logit_q: _Quant | None = act_quants[n_layers + 2]
    else:
        fw = b.tensor("fc/weights", net.fc_weights.shape, tt.FLOAT32, net.fc_weights)
        fb_ = b.tensor("fc/bias", (n_classes,), tt.FLOAT32, net.fc_bias)
        logit_q = None
    logits = b.tensor("fc/out", (1, n_classes), atype, quant=logit_q)
    b.op(
        ops.FULLY_CONNECTED,
        4 if int8 else 1,
        [flat, fw, fb_],
        [logits],
        kinds.FullyConnectedOptions,
        s.FullyConnectedOptionsT(),
    )
    kind = "int8" if int8 else "float32"
    if not net.softmax:
        return b.finish([model_in], [logits], description or f"ant-kpi MobileNet-like model ({kind})")
    # int8 softmax output is fixed by the kernel: scale 1/256, zero point -128.
    probs = b.tensor(
        "softmax/out", (1, n_classes), atype, quant=_Quant(scale=(1.0 / 256,), zero_point=(-128,)) if int8 else None
    )
    sopts = s.SoftmaxOptionsT()
    sopts.beta = 1.0
    b.op(ops.SOFTMAX, 2 if int8 else 1, [logits], [probs], kinds.SoftmaxOptions, sopts)
    return b.finish([model_in], [probs], description or f"ant-kpi tiny MobileNet-like test model ({kind})")


def tiny_mobilenet_like(
    path: str | os.PathLike[str],
    *,
    sparsity: float = 0.0,
    int8: bool = False,
    seed: int = 0,
    per_tensor_fc: bool = False,
) -> GeneratedModel:
    """Write a tiny MobileNet-like .tflite (32x32x3 input) to `path`; same seed, same bytes."""
    net = tiny_net(seed=seed, sparsity=sparsity)
    data = to_tflite(net, int8=int8, per_tensor_fc=per_tensor_fc)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    size, sha = size_and_sha256(p)
    return GeneratedModel(path=p, size=size, sha256=sha, int8=int8, sparsity=net.pointwise_sparsity, net=net)
