"""MobileNet-like TFLite models written from weights, and file facts (size, sha256) of .tflite files.

Tests and smoke runs need real .tflite files but may download nothing, so the models here are
generated from seeded random weights and serialised straight into the TFLite flatbuffer schema
that ships with the LiteRT runtime (ai-edge-litert): no TensorFlow, no converter, no network.
`reference_forward` runs the same float network in numpy, so a test can check that the runtime
computes what the weights say. `harness.kpis.ml.convert` writes KPI 3's trained MobileNetV1 with the
same writer: PyTorch-style explicit padding, any input size and class count, logits as output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np

from harness.errors import BadInput

INPUT_SHAPE: Final = (1, 32, 32, 3)
NUM_CLASSES: Final = 10
# UVP's "v4": pruning removes 4x1 vectors along the output channels of the 1x1 convolutions.
VECTOR_SIZE: Final = 4
SCHEMA_VERSION: Final = 3
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
