"""Peak activation memory of one inference, layer by layer and with patch-based execution.

The harness copies this file into the cuda-train image and runs it on a checkpoint written by
Auto-Compression's tinyml/patch-aware-training/patch_aware_train.py:

    python3 patch_memory.py --src DIR --checkpoint FILE --model efficientnet_b0 \
        --num-patches 4 --num-per-patch-stage 5 --out memory.json

It is standalone (stdlib and torch; torchvision and the upstream zero_borderkernel module are
imported only to rebuild the trained model). What it measures, on the real model and weights:

- BatchNorm is folded into the convolution before it, as an inference engine does; the folded
  network must give the same output as the checkpoint's.
- Hooks on every module record the tensors entering and leaving it. A tensor is live from the
  module that produces it to the last module boundary it crosses (a block's residual input stays
  live until the block returns); in-place results and views share storage and count once.
  Parameters are not activations and are not counted. Peak = the largest sum of live bytes.
- layer by layer: the whole network on one input image.
- patch-based: the leading units of `features` that hold every patch-wise layer run on one tile
  of a p x p grid at a time, with those layers set to one patch (each tile is computed exactly as
  in training, where each patch is zero-padded on its own). The full input and the stage output
  stay live while a tile runs. The remaining units run layer by layer on the assembled stage
  output. The result must match the whole-network output, or the measurement fails.

This is a host-side analysis of fp32 PyTorch tensors (fidelity `host`), not the SRAM an MCU
runtime allocates: that needs an int8 TFLite export through the TinyEngine memory scheduler.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT_VERSION = 1
REL_TOLERANCE = 1e-3  # largest allowed |difference| / max |output| between execution schedules


# --------------------------------------------------------------------------------------------
# Liveness of the tensors crossing module boundaries
# --------------------------------------------------------------------------------------------


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def storage_key(t: torch.Tensor) -> int:
    return int(t.untyped_storage().data_ptr())


@dataclass(kw_only=True)
class Live:
    """One storage seen at a module boundary: its size and the first and last event it appears in."""

    nbytes: int
    elements: int
    shape: list[int]
    origin: str
    first: int
    last: int


@dataclass(frozen=True, kw_only=True)
class Peak:
    """The largest sum of live bytes, where it happened and what was live then."""

    peak_bytes: int
    peak_elements: int
    at: str
    live: list[dict[str, Any]] = field(default_factory=list)


_PASS_THROUGH = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


class LivenessTrace:
    """Context manager: hooks every module of `root`, records the storages crossing module boundaries.

    `root` is taken to hand its input to its first child and not read it again (as a network's
    forward does); a Sequential likewise, and a block that says it has no residual connection
    (torchvision's `use_res_connect = False`). Any other module may read its input until it returns.
    """

    def __init__(self, root: nn.Module, *, exclude: Iterable[torch.Tensor] = ()) -> None:
        self.root = root
        self.events: list[str] = []
        self.storages: dict[int, Live] = {}
        # Parameters and buffers are weights, not activations.
        self.exclude = {storage_key(t) for t in exclude}
        self.exclude |= {storage_key(p) for p in root.parameters()} | {storage_key(b) for b in root.buffers()}
        self._keep: list[torch.Tensor] = []  # holding a reference stops the allocator reusing an address
        self._handles: list[Any] = []

    def __enter__(self) -> LivenessTrace:
        for name, module in self.root.named_modules():
            label = name or "<root>"
            # A Sequential (and the network itself) hands its input to its first child and never
            # reads it again; any other module may (a residual add, a squeeze-excitation product).
            reads_input_late = not (module is self.root or isinstance(module, _PASS_THROUGH)
                                    or getattr(module, "use_res_connect", None) is False)
            self._handles.append(module.register_forward_pre_hook(self._pre(label), with_kwargs=True))
            self._handles.append(
                module.register_forward_hook(self._post(label, reads_input_late), with_kwargs=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _pre(self, label: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, kwargs: Any) -> None:
            self._see(f"{label} (in)", (args, kwargs))

        return hook

    def _post(self, label: str, reads_input_late: bool) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
            self._see(f"{label} (out)", (args, kwargs, output) if reads_input_late else output)

        return hook

    def _see(self, where: str, obj: Any) -> None:
        idx = len(self.events)
        self.events.append(where)
        for t in _tensors(obj):
            key = storage_key(t)
            nbytes = t.untyped_storage().nbytes()
            if nbytes == 0 or key in self.exclude:
                continue
            live = self.storages.get(key)
            if live is None:
                self.storages[key] = Live(nbytes=nbytes, elements=nbytes // t.element_size(), shape=list(t.shape),
                                          origin=where, first=idx, last=idx)
                self._keep.append(t)
            else:
                live.last = idx

    def peak(self, *, ignore: Iterable[torch.Tensor] = ()) -> Peak:
        """The peak over all events; `ignore` drops storages counted elsewhere (e.g. a stage output buffer)."""
        skip = {storage_key(t) for t in ignore}
        lives = [lv for k, lv in self.storages.items() if k not in skip]
        if not self.events:
            return Peak(peak_bytes=0, peak_elements=0, at="")
        delta = [0] * (len(self.events) + 1)
        delta_el = [0] * (len(self.events) + 1)
        for lv in lives:
            delta[lv.first] += lv.nbytes
            delta[lv.last + 1] -= lv.nbytes
            delta_el[lv.first] += lv.elements
            delta_el[lv.last + 1] -= lv.elements
        best, best_at, running, running_el, best_el = -1, 0, 0, 0, 0
        for i in range(len(self.events)):
            running += delta[i]
            running_el += delta_el[i]
            if running > best:
                best, best_at, best_el = running, i, running_el
        at_peak = sorted((lv for lv in lives if lv.first <= best_at <= lv.last), key=lambda lv: -lv.nbytes)
        live = [{"shape": lv.shape, "bytes": lv.nbytes, "from": lv.origin} for lv in at_peak]
        return Peak(peak_bytes=best, peak_elements=best_el, at=self.events[best_at], live=live)


# --------------------------------------------------------------------------------------------
# The model as an inference engine sees it
# --------------------------------------------------------------------------------------------


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    mean, var, gamma, beta = bn.running_mean, bn.running_var, bn.weight, bn.bias
    assert mean is not None and var is not None and gamma is not None and beta is not None
    scale = gamma.detach() / torch.sqrt(var + bn.eps)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(mean)
    with torch.no_grad():
        conv.weight.mul_(scale.reshape(-1, *([1] * (conv.weight.dim() - 1))))
        new_bias = (bias - mean) * scale + beta.detach()
        if conv.bias is None:
            conv.bias = nn.Parameter(new_bias)
        else:
            conv.bias.copy_(new_bias)


def fold_batchnorm(model: nn.Module) -> int:
    """Fold every BatchNorm2d that follows a convolution in a Sequential into it; the count folded."""
    folded = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for prev, cur in itertools.pairwise(names):
            bn, before = seq._modules[cur], seq._modules[prev]
            if not isinstance(bn, nn.BatchNorm2d) or before is None or not bn.affine \
                    or not bn.track_running_stats:
                continue
            convs = [before] if isinstance(before, nn.Conv2d) else [
                m for m in before.modules() if isinstance(m, nn.Conv2d)]
            # A wrapper around one convolution (a patch-wise layer) only re-tiles its output:
            # per-channel scaling commutes with that, and the output check below confirms it.
            if len(convs) != 1 or convs[0].out_channels != bn.num_features:
                continue
            _fold(convs[0], bn)
            seq._modules[cur] = nn.Identity()
            folded += 1
    return folded


def is_patchwise(module: nn.Module) -> bool:
    """An upstream patch-wise layer: it tiles its input into num_patches x num_patches patches."""
    return isinstance(getattr(module, "num_patches", None), int)


def _grid(module: nn.Module) -> int:
    return int(module.__dict__["num_patches"])


def flat_units(seq: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    """The children of nested plain Sequentials, in execution order (blocks stay whole)."""
    units: list[tuple[str, nn.Module]] = []
    for name, child in seq.named_children():
        full = f"{prefix}.{name}"
        if type(child) is nn.Sequential:
            units += flat_units(child, full)
        else:
            units.append((full, child))
    return units


_MIXING = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)


def _not_tilewise(unit: nn.Module, name: str) -> list[str]:
    """Modules of `unit` that mix neighbouring pixels and are not inside a patch-wise layer."""
    found: list[str] = []

    def walk(m: nn.Module, path: str) -> None:
        if is_patchwise(m):
            return
        spatial_conv = isinstance(m, nn.Conv2d) and max(m.kernel_size) > 1
        if spatial_conv or isinstance(m, _MIXING):
            found.append(f"{path} ({type(m).__name__})")
        for n, c in m.named_children():
            walk(c, f"{path}.{n}")

    walk(unit, name)
    return found


def _rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = float(a.abs().max().clamp_min(1e-12))
    return float((a - b).abs().max()) / scale


class _Given(nn.Module):
    """Returns a precomputed tensor whatever it is given: the stage output, for the rest of the network."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value


@contextlib.contextmanager
def _patches_set_to(modules: list[nn.Module], n: int) -> Iterator[None]:
    saved = [_grid(m) for m in modules]
    try:
        for m in modules:
            m.__dict__["num_patches"] = n
        yield
    finally:
        for m, s in zip(modules, saved, strict=True):
            m.__dict__["num_patches"] = s


@contextlib.contextmanager
def _features_replaced(model: nn.Module, features: nn.Module) -> Iterator[None]:
    saved = model.features
    try:
        model.features = features
        yield
    finally:
        model.features = saved


def layer_by_layer(model: nn.Module, x: torch.Tensor) -> tuple[Peak, torch.Tensor]:
    with torch.inference_mode(), LivenessTrace(model) as tr:
        y = model(x)
    return tr.peak(), y


def patch_based(model: nn.Module, x: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    """Run the patch-wise leading stage tile by tile, the rest layer by layer; peak and check."""
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Module):
        raise ValueError("the model has no `features` module to split into a patch stage and the rest")
    units = flat_units(features, "features")
    holding = [i for i, (_, u) in enumerate(units) if any(is_patchwise(m) for m in u.modules())]
    if not holding:
        raise LookupError("no patch-wise layer in the model (a plain model runs layer by layer only)")
    stage, rest = units[: holding[-1] + 1], units[holding[-1] + 1:]
    blockers = [b for name, u in stage for b in _not_tilewise(u, name)]
    if blockers:
        raise ValueError("the leading stage mixes pixels across tiles outside patch-wise layers: "
                         + ", ".join(blockers[:5]))
    pw = [m for _, u in stage for m in u.modules() if is_patchwise(m)]
    grid = {_grid(m) for m in pw}
    if len(grid) != 1:
        raise ValueError(f"patch-wise layers disagree on the patch grid: {sorted(grid)}")
    p = grid.pop()
    _, _, h, w = x.shape
    if h % p or w % p:
        raise ValueError(f"input {h}x{w} does not split into a {p}x{p} grid")
    th, tw = h // p, w // p
    stage_net = nn.Sequential(OrderedDict((n.replace(".", "/"), u) for n, u in stage))
    tile_peaks: list[Peak] = []
    stage_out: torch.Tensor | None = None
    with torch.inference_mode(), _patches_set_to(pw, 1):
        for i in range(p):
            for j in range(p):
                tile = x[:, :, i * th:(i + 1) * th, j * tw:(j + 1) * tw]
                # The tile is a view of the input buffer, which is counted on its own below.
                with LivenessTrace(stage_net, exclude=[x]) as tr:
                    out = stage_net(tile)
                tile_peaks.append(tr.peak(ignore=[out]))
                if stage_out is None:
                    b, c, oh, ow = out.shape
                    stage_out = torch.empty(b, c, oh * p, ow * p, dtype=out.dtype)
                oh, ow = out.shape[2], out.shape[3]
                stage_out[:, :, i * oh:(i + 1) * oh, j * ow:(j + 1) * ow] = out
    assert stage_out is not None
    with torch.inference_mode():
        whole_stage = stage_net(x)
    stage_diff = _rel_diff(whole_stage, stage_out)
    # Module names cannot hold dots: features.3.1 is labelled features.3/1 in the rest's trace.
    rest_net = nn.Sequential(OrderedDict([("stage_output", _Given(stage_out)),
                                          *((n.removeprefix("features.").replace(".", "/"), u) for n, u in rest)]))
    dummy = torch.zeros(1)
    with torch.inference_mode(), _features_replaced(model, rest_net), LivenessTrace(model, exclude=[dummy]) as tr:
        y = model(dummy)
    rest_peak = tr.peak()
    worst = max(tile_peaks, key=lambda pk: pk.peak_bytes)
    in_bytes, in_el = x.numel() * x.element_size(), x.numel()
    so_bytes, so_el = stage_out.numel() * stage_out.element_size(), stage_out.numel()
    tile_phase = in_bytes + so_bytes + worst.peak_bytes
    tile_phase_el = in_el + so_el + worst.peak_elements
    in_tiles = tile_phase >= rest_peak.peak_bytes
    return {
        "peak_bytes": tile_phase if in_tiles else rest_peak.peak_bytes,
        "peak_elements": tile_phase_el if in_tiles else rest_peak.peak_elements,
        "phase": "patch stage" if in_tiles else "rest of the network",
        "at": worst.at if in_tiles else rest_peak.at,
        "grid": p,
        "tile": [th, tw],
        "stage_units": [n for n, _ in stage],
        "stage_output_shape": list(stage_out.shape),
        "input_bytes": in_bytes,
        "stage_output_bytes": so_bytes,
        "tile_peak_bytes": worst.peak_bytes,
        "tile_phase_bytes": tile_phase,
        "rest_peak_bytes": rest_peak.peak_bytes,
        "rest_peak_at": rest_peak.at,
        "stage_max_rel_diff": stage_diff,
        "max_rel_diff": _rel_diff(reference, y),
        "live_at_tile_peak": worst.live[:8],
    }


def measure(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """Both schedules on `model` (eval, BatchNorm folded) for input `x`; raises if they disagree."""
    model.eval()
    with torch.inference_mode():
        original = model(x)
    folded = fold_batchnorm(model)
    lbl, y = layer_by_layer(model, x)
    fold_diff = _rel_diff(original, y)
    if fold_diff > REL_TOLERANCE:
        raise ArithmeticError(f"folding BatchNorm changed the output (relative difference {fold_diff:.2e})")
    doc: dict[str, Any] = {
        "input_shape": list(x.shape),
        "dtype": str(x.dtype).removeprefix("torch."),
        "bn_folded": folded,
        "fold_max_rel_diff": fold_diff,
        "param_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
        "patchwise_layers": sum(1 for m in model.modules() if is_patchwise(m)),
        "layer_by_layer": {**asdict(lbl), "live": lbl.live[:8]},
    }
    try:
        pb = patch_based(model, x, y)
    except LookupError as e:
        doc["patch_based"], doc["patch_based_reason"] = None, str(e)
        return doc
    if pb["max_rel_diff"] > REL_TOLERANCE or pb["stage_max_rel_diff"] > REL_TOLERANCE:
        raise ArithmeticError(
            f"patch-based execution differs from the whole network (relative difference "
            f"{max(pb['max_rel_diff'], pb['stage_max_rel_diff']):.2e}): the stage is not patch-separable")
    doc["patch_based"] = pb
    return doc


# --------------------------------------------------------------------------------------------
# Command line: rebuild the trained model as patch_aware_train.py built it
# --------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_weights_only(path: Path) -> Any:
    """torch.load(weights_only=True): tensors and containers, plus what training scripts keep beside
    them (argparse.Namespace, numpy arrays and scalars). Any other pickled object is refused, so a
    checkpoint cannot run code here."""
    import importlib

    import numpy

    try:
        multiarray = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 2
        multiarray = importlib.import_module("numpy.core.multiarray")
    allowed = [argparse.Namespace, numpy.ndarray, numpy.dtype, multiarray._reconstruct, multiarray.scalar]
    allowed += [type(numpy.dtype(t)) for t in ("bool", "int8", "int16", "int32", "int64", "uint8", "float16",
                                               "float32", "float64")]
    with torch.serialization.safe_globals(allowed):
        return torch.load(path, map_location="cpu", weights_only=True)


def load_trained(src: Path, checkpoint: Path, model_name: str, num_patches: int, per_stage: int,
                 num_classes: int) -> nn.Module:
    """torchvision's model, changed by upstream's change_model_with_se, with the checkpoint's weights."""
    sys.path.insert(0, str(src))
    import torchvision  # the image has it; the host-side tests never reach this
    from zero_borderkernel import change_model_with_se, module_to_mapping

    model = torchvision.models.get_model(model_name, weights=None, num_classes=num_classes)
    change_model_with_se(model, num_patches, module_to_mapping, per_stage)
    # The checkpoint holds argparse.Namespace next to the weights (allowed; nothing else is).
    ckpt = load_weights_only(checkpoint)
    model.load_state_dict(ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt)
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--src", type=Path, required=True, help="the patch-aware-training directory")
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--model", default="efficientnet_b0")
    ap.add_argument("--num-patches", type=int, required=True)
    ap.add_argument("--num-per-patch-stage", type=int, required=True)
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    torch.manual_seed(a.seed)
    model = load_trained(a.src, a.checkpoint, a.model, a.num_patches, a.num_per_patch_stage, a.num_classes)
    x = torch.randn(1, 3, a.input_size, a.input_size)
    doc = {"format": FORMAT_VERSION, "tool": "patch_memory", "model": a.model, "num_patches": a.num_patches,
           "num_per_patch_stage": a.num_per_patch_stage, "checkpoint": str(a.checkpoint),
           "checkpoint_sha256": _sha256(a.checkpoint), "torch": torch.__version__,
           **measure(model, x)}
    a.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    lbl, pb = doc["layer_by_layer"], doc["patch_based"]
    print(f"layer-by-layer peak: {lbl['peak_bytes'] / 1024:.1f} KB at {lbl['at']}")
    if pb is None:
        print(f"patch-based: not applicable ({doc['patch_based_reason']})")
    else:
        print(f"patch-based peak: {pb['peak_bytes'] / 1024:.1f} KB ({pb['phase']}, {pb['grid']}x{pb['grid']} tiles, "
              f"stage {pb['stage_units'][0]}..{pb['stage_units'][-1]}, max rel diff {pb['max_rel_diff']:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
