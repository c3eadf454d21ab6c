"""The `utils` helpers patch_aware_train.py calls (torchvision references API), kept small.

Logging, accuracy, process-group helpers and weight-decay groups. Progress lines have this
module's own format; the script's accuracy line (`Test:  Acc@1 … Acc@5 …`) is printed by the
script itself and does not depend on it.
"""

from __future__ import annotations

import datetime
import os
import statistics
import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def _dist_on() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_main_process() -> bool:
    return not _dist_on() or dist.get_rank() == 0


def mkdir(path: str) -> None:
    os.makedirs(path, exist_ok=True)


def save_on_master(obj: Any, path: str) -> None:
    if is_main_process():
        torch.save(obj, path)


def init_distributed_mode(args: Any) -> None:
    """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK: join its process group; otherwise run alone."""
    env = os.environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        args.distributed = False
        args.rank, args.gpu = 0, None
        args.world_size = getattr(args, "world_size", 1) or 1
        return
    args.rank = int(env["RANK"])
    args.world_size = int(env["WORLD_SIZE"])
    args.gpu = int(env.get("LOCAL_RANK", "0"))
    args.distributed = True
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(args.gpu)
    dist.init_process_group(backend=backend, init_method=getattr(args, "dist_url", "env://"),
                            world_size=args.world_size, rank=args.rank)
    dist.barrier()


def reduce_across_processes(value: Any) -> Any:
    """Sum of `value` over all processes (the value itself when running alone)."""
    if not _dist_on():
        return value
    t = torch.tensor(value, dtype=torch.float64, device="cuda" if torch.cuda.is_available() else "cpu")
    dist.all_reduce(t)
    return t.item()


def accuracy(output: torch.Tensor, target: torch.Tensor, topk: Iterable[int] = (1,)) -> list[torch.Tensor]:
    """Top-k accuracies in percent, one tensor per k."""
    ks = tuple(topk)
    with torch.inference_mode():
        if target.ndim == 2:  # one-hot or mixed targets: score against the strongest class
            target = target.argmax(dim=1)
        _, pred = output.topk(max(ks), dim=1)
        hit = pred.eq(target.unsqueeze(1))
        n = target.shape[0]
        return [hit[:, :k].any(dim=1).float().sum() * (100.0 / n) for k in ks]


class SmoothedValue:
    """A running value: the last `window_size` samples and the total over everything seen."""

    def __init__(self, window_size: int = 20, fmt: str | None = None) -> None:
        self.window_size = window_size
        self.fmt = fmt or "{median:.4f} ({global_avg:.4f})"
        self.recent: list[float] = []
        self.total = 0.0
        self.count = 0

    def update(self, value: float, n: int = 1) -> None:
        self.recent = [*self.recent, float(value)][-self.window_size:]
        self.total += float(value) * n
        self.count += n

    def synchronize_between_processes(self) -> None:
        if not _dist_on():
            return
        t = torch.tensor([self.count, self.total], dtype=torch.float64,
                         device="cuda" if torch.cuda.is_available() else "cpu")
        dist.all_reduce(t)
        self.count, self.total = int(t[0].item()), float(t[1].item())

    @property
    def value(self) -> float:
        return self.recent[-1] if self.recent else 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.recent) if self.recent else 0.0

    @property
    def avg(self) -> float:
        return statistics.fmean(self.recent) if self.recent else 0.0

    @property
    def global_avg(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def max(self) -> float:
        return max(self.recent) if self.recent else 0.0

    def __str__(self) -> str:
        return self.fmt.format(value=self.value, median=self.median, avg=self.avg,
                               global_avg=self.global_avg, max=self.max)


class _Meters(dict):
    def __missing__(self, name: str) -> SmoothedValue:
        meter = self[name] = SmoothedValue()
        return meter


class MetricLogger:
    """Named SmoothedValues, with a progress line every `print_freq` iterations of `log_every`."""

    def __init__(self, delimiter: str = "  ") -> None:
        self.meters: dict[str, SmoothedValue] = _Meters()
        self.delimiter = delimiter

    def add_meter(self, name: str, meter: SmoothedValue) -> None:
        self.meters[name] = meter

    def update(self, **values: Any) -> None:
        for name, v in values.items():
            self.meters[name].update(v.item() if isinstance(v, torch.Tensor) else float(v))

    def __getattr__(self, name: str) -> SmoothedValue:
        meters = self.__dict__.get("meters", {})
        if name in meters:
            return meters[name]
        raise AttributeError(name)

    def __str__(self) -> str:
        return self.delimiter.join(f"{k}: {v}" for k, v in self.meters.items())

    def synchronize_between_processes(self) -> None:
        for m in self.meters.values():
            m.synchronize_between_processes()

    def log_every(self, iterable: Iterable[Any], print_freq: int, header: str = "") -> Iterator[Any]:
        total = len(iterable) if hasattr(iterable, "__len__") else None  # type: ignore[arg-type]
        started = time.perf_counter()
        last = started
        i = -1
        for i, item in enumerate(iterable):
            yield item
            now = time.perf_counter()
            if print_freq and (i % print_freq == 0 or (total is not None and i == total - 1)):
                of = f"/{total}" if total is not None else ""
                print(f"{header} step {i + 1}{of}{self.delimiter}{self}{self.delimiter}"
                      f"{now - last:.3f} s this step", flush=True)
            last = now
        n = i + 1
        spent = time.perf_counter() - started
        per = spent / n if n else 0.0
        print(f"{header} {n} steps in {datetime.timedelta(seconds=int(spent))} ({per:.4f} s per step)", flush=True)


_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
)


def set_weight_decay(
    model: nn.Module,
    weight_decay: float,
    norm_weight_decay: float | None = None,
    norm_classes: list[type[nn.Module]] | None = None,
    custom_keys_weight_decay: list[tuple[str, float]] | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups: custom keys first, then norm layers, then everything else."""
    norms = tuple(norm_classes) if norm_classes else _NORM_TYPES
    custom = dict(custom_keys_weight_decay or [])
    groups: dict[float, list[nn.Parameter]] = {}
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        for p_name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            key = next((k for k in custom if full == k or full.endswith("." + k) or p_name == k), None)
            if key is not None:
                wd = custom[key]
            elif norm_weight_decay is not None and isinstance(module, norms):
                wd = norm_weight_decay
            else:
                wd = weight_decay
            groups.setdefault(wd, []).append(p)
    return [{"params": ps, "weight_decay": wd} for wd, ps in groups.items()]


class ExponentialMovingAverage:
    """Not provided: patch_aware_train.py's --model-ema path is broken upstream (shifted evaluate arguments)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(
            "--model-ema is not supported by the ANT KPI harness stand-in for torchvision's utils.py "
            "(and patch_aware_train.py calls evaluate() with shifted arguments on that path)"
        )
