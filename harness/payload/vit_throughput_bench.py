"""Inference throughput (images/s) of PackViT's models, timed by the harness.

PackViT has no throughput script and no export, so the harness copies this file into the
cuda-train image and runs it on the training run's checkpoint:

    python3 vit_throughput_bench.py bench --src DIR --checkpoint FILE --model packvit --out r.json
    python3 vit_throughput_bench.py init-checkpoint --src DIR --out deit_small_random.pth

It is standalone (stdlib and torch); the model classes come from the PackViT tree given by --src.
Models (same backbone weights, batch 1, eval mode, inference mode, fp32):

- vit:            VisionTransformerTeacher of vit_l2_3keep_senet_inference (the plain ViT, all 197 tokens)
- packvit:        VisionTransformerDiffPruning of vit_l2_3keep_senet_inference: tokens are removed at
                  blocks 3, 6 and 9 (batch_index_select); that forward supports batch 1 only
- packvit_masked: VisionTransformerDiffPruning of vit_l2_3keep_senet, the model infer.py and training
                  evaluate: every token is kept and the dropped ones are masked in attention; its
                  forward appends scores to score_placeholder.json, which is sent to a null sink

Timing: warm-up forwards, then each timed forward between two perf_counter() calls (after
torch.cuda.synchronize() on a GPU); images/s = batch x iterations / their summed time. Upstream
prints from inside forward (the token count per block) go to a null sink, not the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT_VERSION = 1
ARCHS: dict[str, dict[str, int]] = {
    "deit_tiny": {"embed_dim": 192, "depth": 12, "num_heads": 3},
    "deit_small": {"embed_dim": 384, "depth": 12, "num_heads": 6},
    "deit_base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
}
# As main_l2_vit_3keep_senet.py builds the DeiT models (KEEP_RATE is hard-coded there).
PRUNING_LOC = [3, 6, 9]
KEEP_RATE = [0.617, 0.369, 0.137]
# model name -> (module in the PackViT tree, class)
MODELS: dict[str, tuple[str, str]] = {
    "vit": ("vit_l2_3keep_senet_inference", "VisionTransformerTeacher"),
    "packvit": ("vit_l2_3keep_senet_inference", "VisionTransformerDiffPruning"),
    "packvit_masked": ("vit_l2_3keep_senet", "VisionTransformerDiffPruning"),
}
BATCH_ONE_ONLY = {"packvit"}
PREDICTOR_PREFIX = "score_predictor."


class NullSink:
    """A text file that discards everything (no system call per write)."""

    def write(self, s: str) -> int:
        return len(s)

    def flush(self) -> None:
        pass

    def __enter__(self) -> NullSink:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _null_open(*args: Any, **kwargs: Any) -> NullSink:
    return NullSink()


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def token_counter(blocks: list[nn.Module]) -> Iterator[list[list[int]]]:
    """Per block, the token count of its input in each forward (x is the block's first argument)."""
    seen: list[list[int]] = [[] for _ in blocks]
    handles = []

    def make(i: int) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            if args and isinstance(args[0], torch.Tensor) and args[0].dim() == 3:
                seen[i].append(int(args[0].shape[1]))

        return hook

    for i, b in enumerate(blocks):
        handles.append(b.register_forward_pre_hook(make(i)))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def time_forward(model: nn.Module, x: torch.Tensor, *, warmup: int, iters: int,
                 sync: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Warm up, then time `iters` forwards one by one; images/s over the timed forwards."""
    if iters < 1:
        raise ValueError("iters must be at least 1")
    model.eval()
    blocks = list(getattr(model, "blocks", []))
    times: list[float] = []
    with torch.inference_mode(), contextlib.redirect_stdout(NullSink()):
        for _ in range(warmup):
            model(x)
        sync()
        with token_counter(blocks) as tokens:
            for _ in range(iters):
                t0 = time.perf_counter()
                model(x)
                sync()
                times.append(time.perf_counter() - t0)
    total = sum(times)
    return {
        "batch": int(x.shape[0]),
        "warmup": warmup,
        "iters": iters,
        "iteration_s": times,
        "total_s": total,
        "median_iteration_s": statistics.median(times),
        "images_per_s": x.shape[0] * iters / total,
        "tokens_per_block": [statistics.fmean(t) if t else None for t in tokens],
    }


# --------------------------------------------------------------------------------------------
# PackViT's models
# --------------------------------------------------------------------------------------------


def _module(src: Path, name: str) -> Any:
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    return importlib.import_module(name)


def build(src: Path, model: str, arch: str) -> nn.Module:
    """An untrained instance of `model` (vit/packvit/packvit_masked) with `arch`'s dimensions."""
    mod_name, cls_name = MODELS[model]
    mod = _module(src, mod_name)
    kw: dict[str, Any] = dict(patch_size=16, mlp_ratio=4, qkv_bias=True, **ARCHS[arch])
    if model != "vit":
        kw.update(pruning_loc=PRUNING_LOC, token_ratio=KEEP_RATE, distill=False)
    with contextlib.redirect_stdout(NullSink()):
        net: nn.Module = getattr(mod, cls_name)(**kw)
    if model == "packvit_masked":
        # forward() appends its scores to score_placeholder.json: send that to a null sink so
        # the timing holds no file I/O (the JSON serialisation itself stays in the forward).
        mod.open = _null_open
    return net


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


def state_dict_of(checkpoint: Path) -> dict[str, torch.Tensor]:
    # Training checkpoints hold argparse.Namespace beside the weights (allowed; nothing else is).
    ckpt = load_weights_only(checkpoint)
    sd = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
    if not isinstance(sd, dict):
        raise ValueError(f"{checkpoint} holds no state dict")
    return sd


def load_weights(net: nn.Module, model: str, sd: dict[str, torch.Tensor]) -> None:
    """The checkpoint's weights, strictly; the plain ViT takes the backbone without the predictors."""
    if model == "vit":
        sd = {k: v for k, v in sd.items() if not k.startswith(PREDICTOR_PREFIX)}
    net.load_state_dict(sd, strict=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cmd_bench(a: argparse.Namespace) -> dict[str, Any]:
    if a.model in BATCH_ONE_ONLY and a.batch != 1:
        raise SystemExit(f"{a.model}: {MODELS[a.model][0]} removes tokens for batch 1 only (got --batch {a.batch})")
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    net = build(a.src, a.model, a.arch)
    load_weights(net, a.model, state_dict_of(a.checkpoint))
    x = torch.randn(a.batch, 3, 224, 224)
    sync: Callable[[], None] = lambda: None  # noqa: E731
    if a.device == "cuda":
        net, x, sync = net.cuda(), x.cuda(), torch.cuda.synchronize
    result = time_forward(net, x, warmup=a.warmup, iters=a.iters, sync=sync)
    mod_name, cls_name = MODELS[a.model]
    return {
        "format": FORMAT_VERSION,
        "tool": "vit_throughput_bench",
        "model": a.model,
        "class": f"{mod_name}.{cls_name}",
        "arch": a.arch,
        "device": a.device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "seed": a.seed,
        "checkpoint": str(a.checkpoint),
        "checkpoint_sha256": _sha256(a.checkpoint),
        "parameters": sum(p.numel() for p in net.parameters()),
        **result,
    }


def cmd_init_checkpoint(a: argparse.Namespace) -> dict[str, Any]:
    """Random weights in the DeiT checkpoint layout {'model': state_dict}, for smoke runs without downloads."""
    torch.manual_seed(a.seed)
    mod = _module(a.src, "vit_l2_3keep_senet")
    with contextlib.redirect_stdout(NullSink()):
        teacher = mod.VisionTransformerTeacher(patch_size=16, mlp_ratio=4, qkv_bias=True, **ARCHS[a.arch])
    torch.save({"model": teacher.state_dict()}, a.out)
    return {"format": FORMAT_VERSION, "tool": "vit_throughput_bench", "made": str(a.out), "arch": a.arch,
            "seed": a.seed, "parameters": sum(p.numel() for p in teacher.parameters()),
            "sha256": _sha256(a.out), "note": "random initialisation (upstream's trunc_normal_), not trained weights"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench", help="time one model")
    b.add_argument("--src", type=Path, required=True, help="the PackViT directory")
    b.add_argument("--checkpoint", type=Path, required=True)
    b.add_argument("--model", choices=sorted(MODELS), required=True)
    b.add_argument("--arch", choices=sorted(ARCHS), default="deit_small")
    b.add_argument("--batch", type=int, default=1)
    b.add_argument("--warmup", type=int, default=5)
    b.add_argument("--iters", type=int, default=20)
    b.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    b.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", type=Path, required=True)
    i = sub.add_parser("init-checkpoint", help="write random DeiT weights as {'model': state_dict}")
    i.add_argument("--src", type=Path, required=True)
    i.add_argument("--arch", choices=sorted(ARCHS), default="deit_small")
    i.add_argument("--seed", type=int, default=0)
    i.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    doc = cmd_bench(a) if a.command == "bench" else cmd_init_checkpoint(a)
    if a.command == "bench":
        a.out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        toks = [round(t) for t in doc["tokens_per_block"] if t is not None]
        print(f"{doc['model']} ({doc['class']}, {doc['arch']}): {doc['images_per_s']:.3f} images/s, batch "
              f"{doc['batch']}, {doc['iters']} timed forwards, median {doc['median_iteration_s'] * 1e3:.1f} ms, "
              f"{doc['threads']} threads; tokens per block {toks}")
    else:
        print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
