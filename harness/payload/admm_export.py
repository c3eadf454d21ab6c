#!/usr/bin/env python3
"""Export an ADMM_baseline MobileNetV1 checkpoint to an .npz for the harness's TFLite writer.

    python3 admm_export.py CKPT OUT.npz [--arch mobilenet_v1] [--width-mult W] [--input-size 224]
                                        [--seed 0] [--probes 2] [--model-dir DIR]

This half of the conversion runs where PyTorch is (the cuda-train image), so it imports nothing
but the standard library, numpy and torch; harness.kpis.ml.convert writes the .tflite on the host.

What it does: load the checkpoint (weights only, with its numpy permutation lists allowed), drop
DataParallel's `module.` prefix, multiply every `*.mask` buffer into its weight and drop it (the
forward hook ADMM_baseline registers does the same before each forward), rebuild MobileNetV1 from
the weight shapes, run PyTorch's forward on a seeded probe input, and write each convolution's
weight and BatchNorm statistics, the classifier, the probe and PyTorch's logits. With --model-dir
(ADMM_baseline's directory) the forward is that of upstream's own models/mobilenet_v1.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

FORMAT = "ant-kpi-admm-export/1"
ARCHS = ("mobilenet_v1",)
DP_PREFIX = "module."
MASK_SUFFIX = ".mask"
# MobileNetV1's 13 depthwise-separable blocks: (output channels at width 1.0, stride).
BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)
STEM_CHANNELS = 32


class ExportError(Exception):
    """A checkpoint this exporter cannot turn into a MobileNetV1 export."""


# --------------------------------------------------------------------------------------------
# Checkpoint
# --------------------------------------------------------------------------------------------


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


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint dict of an ADMM_baseline run (model_best.pth.tar and its siblings)."""
    if not path.is_file():
        raise ExportError(f"{path}: no such checkpoint file")
    try:
        ckpt = load_weights_only(path)
    except Exception as e:  # torch raises pickle, zip and runtime errors alike for a bad file
        raise ExportError(f"{path}: not a PyTorch checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), Mapping):
        what = f"a dict with keys {sorted(map(str, ckpt))[:8]}" if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ExportError(f"{path}: holds {what}, not an ADMM_baseline checkpoint (no 'state_dict')")
    return ckpt


def clean_state_dict(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Tensors without `module.` and without mask buffers (masks multiplied in); counts of what changed."""
    plain: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key[len(DP_PREFIX):] if key.startswith(DP_PREFIX) else key
        if not isinstance(value, torch.Tensor):
            raise ExportError(f"state_dict entry {key!r} is a {type(value).__name__}, not a tensor")
        plain[name] = value.detach().to("cpu")
    masks = {k: plain.pop(k) for k in [k for k in plain if k.endswith(MASK_SUFFIX)]}
    stray = 0
    for key, mask in masks.items():
        wkey = key[: -len(MASK_SUFFIX)] + ".weight"
        weight = plain.get(wkey)
        if weight is None or weight.shape != mask.shape:
            raise ExportError(f"mask {key!r} has no weight {wkey!r} of the same shape")
        # Fine-tuning steps after the last masked forward can leave values under a zero mask.
        stray += int(((mask == 0) & (weight != 0)).sum())
        plain[wkey] = weight * (mask != 0).to(weight.dtype)
    return plain, {"masks_applied": len(masks), "nonzero_under_mask": stray}


# --------------------------------------------------------------------------------------------
# MobileNetV1 keyed to ADMM_baseline's parameter names
# --------------------------------------------------------------------------------------------


def scaled_channels(base: int, width_mult: float, divisor: int = 4) -> int:
    """Channels of a layer at `width_mult`: the nearest multiple of 4, never 10 % below the exact value."""
    exact = base * width_mult
    n = max(divisor, int(exact + divisor / 2) // divisor * divisor)
    return n + divisor if n < 0.9 * exact else n


def channels_of(state: Mapping[str, torch.Tensor]) -> list[int]:
    """Output channels of the stem and of the 13 blocks, read from the weight shapes."""
    keys = ["features.0.0.weight", *(f"features.{i}.body.3.weight" for i in range(1, len(BLOCKS) + 1))]
    missing = [k for k in keys if k not in state]
    if missing or "classifier.0.weight" not in state:
        sample = ", ".join(sorted(state)[:6])
        raise ExportError(
            f"state_dict is not ADMM_baseline's MobileNetV1: missing {(missing or ['classifier.0.weight'])[0]!r} "
            f"(keys start: {sample})"
        )
    return [int(state[k].shape[0]) for k in keys]


class _Block(nn.Module):
    def __init__(self, inp: int, outp: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp), nn.ReLU6(inplace=True),
            nn.Conv2d(inp, outp, 1, 1, 0, bias=False), nn.BatchNorm2d(outp), nn.ReLU6(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MobileNetV1(nn.Module):
    """MobileNetV1 with ADMM_baseline's module names, sized by explicit channel counts."""

    def __init__(self, channels: list[int], num_classes: int, input_size: int) -> None:
        super().__init__()
        # ADMM_baseline's CIFAR variant (32x32) keeps the stem at stride 1 and downsamples 16x.
        stem_stride, downsample = (1, 16) if input_size == 32 else (2, 32)
        if input_size % downsample:
            raise ExportError(f"input size {input_size} is not a multiple of {downsample}")
        layers: list[nn.Module] = [nn.Sequential(
            nn.Conv2d(3, channels[0], 3, stem_stride, 1, bias=False), nn.BatchNorm2d(channels[0]),
            nn.ReLU6(inplace=True))]
        for (_, stride), inp, outp in zip(BLOCKS, channels[:-1], channels[1:], strict=True):
            layers.append(_Block(inp, outp, stride))
        layers.append(nn.AvgPool2d(input_size // downsample))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(channels[-1], num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def _upstream_class(model_dir: Path) -> type[nn.Module]:
    for name in ("models.mobilenet_v1", "models"):
        sys.modules.pop(name, None)  # another directory's `models` imported before in this process
    no_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # the checkout stays as it is
    sys.path.insert(0, str(model_dir))
    try:
        from models.mobilenet_v1 import MobileNetV1 as Upstream
    except ImportError as e:
        raise ExportError(f"{model_dir}: cannot import models.mobilenet_v1 ({e})") from None
    finally:
        sys.path.remove(str(model_dir))
        sys.dont_write_bytecode = no_bytecode
    return Upstream


def build_model(state: Mapping[str, torch.Tensor], *, input_size: int, width_mult: float | None = None,
                model_dir: Path | None = None) -> tuple[nn.Module, str]:
    """The network with `state` loaded strictly, in eval mode; and which definition it is."""
    channels = channels_of(state)
    num_classes = int(state["classifier.0.weight"].shape[0])
    if width_mult is not None:
        want = [scaled_channels(c, width_mult) for c in (STEM_CHANNELS, *(c for c, _ in BLOCKS))]
        if want != channels:
            raise ExportError(f"checkpoint channels {channels} are not MobileNetV1 at width {width_mult} ({want})")
    model: nn.Module
    if model_dir is not None:
        if width_mult is None:
            raise ExportError("--model-dir needs --width-mult (upstream's constructor takes it)")
        model = _upstream_class(model_dir)(num_classes=num_classes, input_size=input_size, width_mult=width_mult)
        reference = f"upstream {model_dir}/models/mobilenet_v1.py"
    else:
        model = MobileNetV1(channels, num_classes, input_size)
        reference = "admm_export.MobileNetV1"
    try:
        model.load_state_dict(dict(state), strict=True)
    except RuntimeError as e:
        raise ExportError(f"state_dict does not fit MobileNetV1 ({str(e).splitlines()[0]})") from None
    return model.eval(), reference


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


def _layers(model: nn.Module) -> list[dict[str, Any]]:
    """Each convolution with the BatchNorm and activation after it, in forward order."""
    mods = [(n, m) for n, m in model.named_modules() if not list(m.children())]
    found = []
    for i, (name, m) in enumerate(mods):
        if not isinstance(m, nn.Conv2d):
            continue
        bn_name, bn = mods[i + 1] if i + 1 < len(mods) else ("", None)
        act = mods[i + 2][1] if i + 2 < len(mods) else None
        if not isinstance(bn, nn.BatchNorm2d) or not isinstance(act, nn.ReLU6):
            raise ExportError(f"{name}: expected Conv2d → BatchNorm2d → ReLU6, the only pattern this exporter writes")
        if m.groups == m.in_channels == m.out_channels and m.groups > 1:
            kind = "depthwise"
        elif m.groups == 1:
            kind = "pointwise" if m.kernel_size == (1, 1) else "conv"
        else:
            raise ExportError(f"{name}: grouped convolution with {m.groups} groups is not supported")
        if len(set(m.stride)) != 1 or len(set(m.padding)) != 1 or m.bias is not None or m.dilation != (1, 1):
            raise ExportError(f"{name}: only square stride and padding, no bias, no dilation are supported")
        found.append({"name": name, "kind": kind, "stride": int(m.stride[0]), "pad": int(m.padding[0]),
                      "bn": bn_name, "bn_eps": float(bn.eps), "activation": "relu6"})
    return found


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _scalar(v: Any) -> Any:
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        return float(v.item())
    return v if isinstance(v, (int, float, str)) or v is None else str(v)


def export(ckpt_path: Path, out: Path, *, arch: str = "mobilenet_v1", width_mult: float | None = None,
           input_size: int = 224, seed: int = 0, probes: int = 2, model_dir: Path | None = None) -> dict[str, Any]:
    """Write the .npz for `ckpt_path`; returns its metadata."""
    if arch not in ARCHS:
        raise ExportError(f"--arch {arch}: this exporter writes {', '.join(ARCHS)} only")
    ckpt = load_checkpoint(ckpt_path)
    if ckpt.get("arch") not in (None, arch):
        raise ExportError(f"{ckpt_path}: checkpoint arch is {ckpt['arch']!r}, not {arch!r}")
    state, mask_facts = clean_state_dict(ckpt["state_dict"])
    model, reference = build_model(state, input_size=input_size, width_mult=width_mult, model_dir=model_dir)
    layers = _layers(model)
    mods = dict(model.named_modules())
    fc = model.classifier[0] if isinstance(model.classifier, nn.Sequential) else model.classifier
    if not isinstance(fc, nn.Linear):
        raise ExportError("the classifier is not a single Linear layer")

    arrays: dict[str, Any] = {}

    def put(key: str, t: torch.Tensor) -> None:
        arrays[key] = t.detach().to(torch.float32).cpu().numpy()

    pw_zero = pw_total = 0
    for i, layer in enumerate(layers):
        conv, bn = mods[layer["name"]], mods[layer["bn"]]
        put(f"layer{i}.weight", conv.weight)
        put(f"layer{i}.bn.weight", bn.weight)
        put(f"layer{i}.bn.bias", bn.bias)
        put(f"layer{i}.bn.running_mean", bn.running_mean)
        put(f"layer{i}.bn.running_var", bn.running_var)
        if layer["kind"] == "pointwise":
            pw_zero += int((conv.weight == 0).sum())
            pw_total += conv.weight.numel()
    put("fc.weight", fc.weight)
    put("fc.bias", fc.bias)

    x = np.random.default_rng(seed).standard_normal((probes, 3, input_size, input_size)).astype(np.float32)
    with torch.no_grad():
        logits = model(torch.from_numpy(x)).to(torch.float32).numpy()
    arrays["probe"] = x
    arrays["logits"] = logits

    meta = {
        "format": FORMAT,
        "arch": arch,
        "width_mult": width_mult,
        "input_size": input_size,
        "num_classes": int(fc.out_features),
        "seed": seed,
        "probes": probes,
        "layers": layers,
        "pointwise_zero": pw_zero,
        "pointwise_total": pw_total,
        "pointwise_sparsity": pw_zero / pw_total if pw_total else 0.0,
        **mask_facts,
        "reference": reference,
        "checkpoint": {
            "file": ckpt_path.name,
            "sha256": _sha256(ckpt_path),
            "arch": _scalar(ckpt.get("arch")),
            "best_acc1": _scalar(ckpt.get("best_acc1")),
            "admm_epoch": _scalar(ckpt.get("admm_epoch")),
            "ft_epoch": _scalar(ckpt.get("ft_epoch")),
        },
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(out)
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--arch", default="mobilenet_v1", choices=ARCHS)
    ap.add_argument("--width-mult", type=float, default=None,
                    help="checked against the checkpoint's channel counts (and given to upstream's class)")
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0, help="seed of the probe input")
    ap.add_argument("--probes", type=int, default=2, help="probe images")
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="ADMM_baseline's directory: run upstream's models/mobilenet_v1.py as the reference")
    a = ap.parse_args(argv)
    try:
        meta = export(a.checkpoint, a.out, arch=a.arch, width_mult=a.width_mult, input_size=a.input_size,
                      seed=a.seed, probes=a.probes, model_dir=a.model_dir)
    except ExportError as e:
        print(f"admm_export: error: {e}", file=sys.stderr)
        return 2
    print(f"admm_export: {a.checkpoint} -> {a.out}: {len(meta['layers'])} convolutions, "
          f"{meta['num_classes']} classes, 1x1 sparsity {meta['pointwise_sparsity']:.4f}, "
          f"{meta['masks_applied']} masks applied ({meta['nonzero_under_mask']} stray weights zeroed), "
          f"reference {meta['reference']}, torch {meta['torch']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
