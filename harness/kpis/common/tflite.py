"""MobileNet-like TFLite models written from weights, and file facts (size, sha256) of .tflite files.

Tests and smoke runs need real .tflite files but may download nothing, so the models here are
generated from seeded random weights and serialised straight into the TFLite flatbuffer schema
that ships with the LiteRT runtime (ai-edge-litert): no TensorFlow, no converter, no network.
`reference_forward` runs the same float network in numpy, so a test can check that the runtime
computes what the weights say. `harness.kpis.ml.convert` writes KPI 3's trained MobileNetV1 with the
same writer: PyTorch-style explicit padding, any input size and class count, logits as output.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np

from harness.errors import BadInput, Blocked

INPUT_SHAPE: Final = (1, 32, 32, 3)
NUM_CLASSES: Final = 10
# UVP's "v4": pruning removes 4x1 vectors along the output channels of the 1x1 convolutions.
VECTOR_SIZE: Final = 4
TFLITE_IDENTIFIER: Final = b"TFL3"
SCHEMA_VERSION: Final = 3
LITERT_FIX: Final = "pip install ai-edge-litert (the LiteRT runtime, which also ships the TFLite schema)"
# TFLite aligns constant buffers so kernels may read them in place with wide loads.
_BUFFER_ALIGNMENT: Final = 16

LayerKind = Literal["conv", "depthwise", "pointwise"]


@dataclass(frozen=True, kw_only=True)
class ConvLayer:
    """One convolution with fused ReLU6: weights in TFLite layout (OHWI, or 1HWC for depthwise).

    `pad` None is TFLite's SAME padding; an integer is PyTorch's `Conv2d(padding=pad)`: that many
    zeros on every side, then a VALID convolution. The two differ for stride 2 on even sizes
    (SAME pads after, PyTorch before), so a PyTorch model needs the integer.
    """

    kind: LayerKind
    weights: np.ndarray
    bias: np.ndarray
    stride: int
    pad: int | None = None


@dataclass(frozen=True, kw_only=True)
class TinyNet:
    """The float weights of a MobileNet-like classifier (convs, global average pool, FC)."""

    layers: tuple[ConvLayer, ...]
    fc_weights: np.ndarray  # [classes, channels]
    fc_bias: np.ndarray
    input_shape: tuple[int, int, int, int] = INPUT_SHAPE  # NHWC, batch 1
    softmax: bool = True  # False: the model ends in logits, as a PyTorch classifier does

    @property
    def num_classes(self) -> int:
        return int(self.fc_weights.shape[0])

    @property
    def pointwise_sparsity(self) -> float:
        """Fraction of zero weights over all 1x1 convolutions (the layers UVP prunes)."""
        pw = [layer.weights for layer in self.layers if layer.kind == "pointwise"]
        total = sum(w.size for w in pw)
        return float(sum(int((w == 0).sum()) for w in pw) / total) if total else 0.0


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
# File facts
# --------------------------------------------------------------------------------------------


def size_and_sha256(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file; BadInput when it cannot be read."""
    p = Path(path)
    h = hashlib.sha256()
    size = 0
    try:
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
    except OSError as e:
        raise BadInput(f"{p}: cannot read ({e.strerror or e})") from None
    return size, h.hexdigest()


def looks_like_tflite(path: str | os.PathLike[str]) -> bool:
    """Whether the file carries the TFLite flatbuffer identifier (bytes 4-8 are 'TFL3')."""
    try:
        with Path(path).open("rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[4:8] == TFLITE_IDENTIFIER


def lfs_pointer(path: str | os.PathLike[str]) -> bool:
    """Whether the file is a Git LFS pointer stub rather than the content itself."""
    try:
        with Path(path).open("rb") as f:
            return f.read(40).startswith(b"version https://git-lfs")
    except OSError:
        return False


@dataclass(frozen=True, kw_only=True)
class GraphFacts:
    """What a .tflite holds, read back from its flatbuffer: operators and 1x1-convolution zeros."""

    ops: tuple[str, ...]
    pointwise_zero: int
    pointwise_total: int

    @property
    def pointwise_sparsity(self) -> float:
        return self.pointwise_zero / self.pointwise_total if self.pointwise_total else 0.0


_WEIGHT_DTYPES: Final = {"FLOAT32": np.float32, "INT8": np.int8, "FLOAT16": np.float16}


def read_graph(path: str | os.PathLike[str]) -> GraphFacts:
    """Operators of the first subgraph, and the zeros stored in its 1x1 CONV_2D weights."""
    s = _schema()
    p = Path(path)
    if not looks_like_tflite(p):
        raise BadInput(f"{p}: not a TFLite flatbuffer")
    try:
        model = s.ModelT.InitFromPackedBuf(p.read_bytes(), 0)
        graph = model.subgraphs[0]
    except Exception as e:  # a damaged flatbuffer fails with whatever the generated reader hits
        raise BadInput(f"{p}: unreadable TFLite flatbuffer ({type(e).__name__}: {e})") from None
    op_names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
    ops, zero, total = [], 0, 0
    for op in graph.operators:
        oc = model.operatorCodes[op.opcodeIndex]
        name = op_names.get(max(oc.builtinCode, oc.deprecatedBuiltinCode), "CUSTOM")
        ops.append(name)
        if name != "CONV_2D":
            continue
        w = graph.tensors[op.inputs[1]]
        shape = [int(d) for d in w.shape]
        dtype = _WEIGHT_DTYPES.get(type_names.get(w.type, ""))
        data = model.buffers[w.buffer].data
        if len(shape) != 4 or shape[1:3] != [1, 1] or dtype is None or data is None:
            continue
        values = np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=dtype)
        zero += int((values == 0).sum())
        total += values.size
    return GraphFacts(ops=tuple(ops), pointwise_zero=zero, pointwise_total=total)


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


def tiny_net(*, seed: int = 0, sparsity: float = 0.0, width: int = 8) -> TinyNet:
    """Seeded random weights: 3x3 conv, three depthwise/pointwise blocks, average pool, FC."""
    if not 0.0 <= sparsity < 1.0:
        raise BadInput(f"sparsity must be in [0, 1), got {sparsity}")
    rng = np.random.default_rng(seed)

    def he(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def bias(n: int) -> np.ndarray:
        return (rng.standard_normal(n) * 0.05).astype(np.float32)

    c = width
    layers = [ConvLayer(kind="conv", weights=he((c, 3, 3, 3), 27), bias=bias(c), stride=2)]
    for out, stride in ((2 * c, 1), (4 * c, 2), (8 * c, 1)):
        layers.append(ConvLayer(kind="depthwise", weights=he((1, 3, 3, c), 9), bias=bias(c), stride=stride))
        w = he((out, 1, 1, c), c)
        layers.append(ConvLayer(kind="pointwise", weights=_prune_vectors(w, sparsity), bias=bias(out), stride=1))
        c = out
    return TinyNet(layers=tuple(layers), fc_weights=he((NUM_CLASSES, c), c), fc_bias=bias(NUM_CLASSES))


def _prune_vectors(w: np.ndarray, sparsity: float) -> np.ndarray:
    """Zero the 4x1 output-channel vectors of smallest L1 norm until `sparsity` of weights are zero."""
    if sparsity <= 0.0:
        return w
    out_ch, in_ch = w.shape[0], w.shape[3]
    if out_ch % VECTOR_SIZE:
        raise BadInput(f"{out_ch} output channels do not split into {VECTOR_SIZE}x1 vectors")
    groups = np.abs(w.reshape(out_ch // VECTOR_SIZE, VECTOR_SIZE, in_ch)).sum(axis=1)
    n_zero = round(sparsity * groups.size)
    order = np.argsort(groups, axis=None, kind="stable")[:n_zero]
    mask = np.ones(groups.size, dtype=bool)
    mask[order] = False
    mask = np.repeat(mask.reshape(groups.shape), VECTOR_SIZE, axis=0)
    return (w.reshape(out_ch, in_ch) * mask).reshape(w.shape).astype(np.float32)


def _same_pads(size: int, k: int, stride: int) -> tuple[int, int, int]:
    """(output size, pad before, pad after) of TFLite SAME padding."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


def _pads(size: int, layer: ConvLayer) -> tuple[int, int, int]:
    """(output size, pad before, pad after) of one spatial axis of `layer`."""
    k, s = layer.weights.shape[1], layer.stride
    if layer.pad is None:
        return _same_pads(size, k, s)
    p = layer.pad
    out = (size + 2 * p - k) // s + 1
    if out < 1:
        raise BadInput(f"a {k}x{k} convolution with padding {p} does not fit a {size}-pixel input")
    return out, p, p


def _conv_nhwc(x: np.ndarray, layer: ConvLayer) -> np.ndarray:
    w = layer.weights
    k, s = w.shape[1], layer.stride
    _, h, wd, c = x.shape
    oh, pt, pb = _pads(h, layer)
    ow, pl, pr = _pads(wd, layer)
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    # Gather every kernel tap as a strided view, then contract channels: no loops over pixels.
    taps = np.stack(
        [xp[:, i : i + s * oh : s, j : j + s * ow : s, :] for i in range(k) for j in range(k)], axis=3
    )  # [n, oh, ow, k*k, c]
    if layer.kind == "depthwise":
        y = np.einsum("nhwtc,tc->nhwc", taps, w.reshape(k * k, c))
    else:
        y = np.einsum("nhwtc,otc->nhwo", taps, w.reshape(w.shape[0], k * k, c))
    return np.clip(y + layer.bias, 0.0, 6.0)


def reference_forward(net: TinyNet, x: np.ndarray, *, return_activations: bool = False) -> Any:
    """The float network in numpy (NHWC): its output (softmax or logits), optionally every activation."""
    acts = [x.astype(np.float32)]
    for layer in net.layers:
        acts.append(_conv_nhwc(acts[-1], layer))
    pooled = acts[-1].mean(axis=(1, 2))
    logits = pooled @ net.fc_weights.T + net.fc_bias
    if net.softmax:
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        out = e / e.sum(axis=1, keepdims=True)
    else:
        out = logits
    if return_activations:
        return out, [*acts, pooled[:, None, None, :], logits]
    return out


# --------------------------------------------------------------------------------------------
# Serialisation into the TFLite schema
# --------------------------------------------------------------------------------------------


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as e:
        raise Blocked(f"the LiteRT runtime is not installed ({e})", LITERT_FIX) from None
    return schema


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


def to_tflite(net: TinyNet, *, int8: bool = False, calibration_seed: int = 1, description: str = "") -> bytes:
    """Serialise the network as a TFLite flatbuffer: float32, or full-integer int8."""
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
        qw, wq = _weight_quant(net.fc_weights, 0)
        bscale = tuple(pool_q.scale[0] * sw for sw in wq.scale)
        fw = b.tensor("fc/weights", net.fc_weights.shape, tt.INT8, qw, wq)
        fb_ = b.tensor(
            "fc/bias",
            (n_classes,),
            tt.INT32,
            _bias_int32(net.fc_bias, bscale),
            _Quant(scale=bscale, zero_point=(0,) * n_classes),
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
    path: str | os.PathLike[str], *, sparsity: float = 0.0, int8: bool = False, seed: int = 0
) -> GeneratedModel:
    """Write a tiny MobileNet-like .tflite (32x32x3 input) to `path`; same seed, same bytes."""
    net = tiny_net(seed=seed, sparsity=sparsity)
    data = to_tflite(net, int8=int8)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    size, sha = size_and_sha256(p)
    return GeneratedModel(path=p, size=size, sha256=sha, int8=int8, sparsity=net.pointwise_sparsity, net=net)
