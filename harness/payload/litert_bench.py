"""Host reference benchmark of a .tflite model through the LiteRT Python runtime (ai-edge-litert).

    python -m harness.payload.litert_bench --graph M.tflite --num_threads N --warmup_runs W --num_runs R

It follows TFLite's `benchmark_model`: a warm-up phase (at least W runs and at least
--warmup_min_secs), then a timed phase (at least R runs and at least --min_secs, stopping after
--max_secs), timing Invoke only, inputs filled once with random data. Its output uses the
benchmark_model line formats, so one parser reads both. Figures are host reference figures: the
runtime is the Python-wrapped LiteRT interpreter (XNNPACK delegate by default), not the ANT
benchmark_model binary, and memory figures include the Python interpreter itself.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import numpy as np

TOOL = "harness.payload.litert_bench"


@dataclass(frozen=True, kw_only=True)
class BenchOptions:
    """The benchmark_model flags this tool understands."""

    graph: Path
    num_threads: int
    warmup_runs: int
    warmup_min_secs: float
    num_runs: int
    min_secs: float
    max_secs: float
    use_xnnpack: bool
    seed: int


def _bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def parse_args(argv: Sequence[str] | None = None) -> BenchOptions:
    """Parse benchmark_model-style flags (`--flag=value` or `--flag value`)."""
    p = argparse.ArgumentParser(
        prog=f"python -m {TOOL}", description="Benchmark a .tflite model on the host; benchmark_model-format output."
    )
    p.add_argument("--graph", required=True, type=Path, help=".tflite model to benchmark")
    p.add_argument("--num_threads", type=int, default=-1, help="interpreter threads (-1: runtime default)")
    p.add_argument("--warmup_runs", type=int, default=1)
    p.add_argument("--warmup_min_secs", type=float, default=0.5)
    p.add_argument("--num_runs", type=int, default=50)
    p.add_argument("--min_secs", type=float, default=1.0)
    p.add_argument("--max_secs", type=float, default=150.0)
    p.add_argument("--use_xnnpack", type=_bool, default=True, help="apply the default XNNPACK delegate")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input data")
    a = p.parse_args(argv)
    for name in ("warmup_runs", "num_runs"):
        if getattr(a, name) < 0:
            p.error(f"--{name} must be ≥ 0")
    return BenchOptions(
        graph=a.graph,
        num_threads=a.num_threads,
        warmup_runs=a.warmup_runs,
        warmup_min_secs=a.warmup_min_secs,
        num_runs=a.num_runs,
        min_secs=a.min_secs,
        max_secs=a.max_secs,
        use_xnnpack=a.use_xnnpack,
        seed=a.seed,
    )


@dataclass(frozen=True, kw_only=True)
class RunStats:
    """Per-run times (us) of one phase, summarised as benchmark_model's Stat prints them."""

    times_us: tuple[int, ...]

    def line(self) -> str:
        t = self.times_us
        if not t:
            return "count=0"
        if all(x == t[0] for x in t):
            return f"count={len(t)} curr={t[-1]}" + ("(all same)" if len(t) > 1 else "")
        avg = sum(t) / len(t)
        std = round(math.sqrt(max(sum(x * x for x in t) / len(t) - avg * avg, 0.0)))
        return f"count={len(t)} first={t[0]} curr={t[-1]} min={min(t)} max={max(t)} avg={_g(avg)} std={std}"

    @property
    def avg(self) -> float:
        return sum(self.times_us) / len(self.times_us) if self.times_us else 0.0


def _g(x: float) -> str:
    """A double as a C++ stream prints it by default (6 significant digits)."""
    return f"{x:.6g}"


def _maxrss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _fill_inputs(interp: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for d in interp.get_input_details():
        dtype = np.dtype(d["dtype"])
        shape = tuple(int(s) for s in d["shape"])
        if dtype.kind == "f":
            data = rng.uniform(-1.0, 1.0, shape).astype(dtype)
        elif dtype.kind in "iu":
            info = np.iinfo(dtype)
            data = rng.integers(max(info.min, -128), min(info.max, 127), shape, endpoint=True).astype(dtype)
        elif dtype.kind == "b":
            data = rng.integers(0, 1, shape, endpoint=True).astype(dtype)
        else:
            raise ValueError(f"input {d['name']!r} has type {dtype}, which this tool cannot fill")
        interp.set_tensor(d["index"], data)


def _phase(interp: Any, min_runs: int, min_secs: float, max_secs: float) -> RunStats:
    times: list[int] = []
    start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        if (len(times) >= min_runs and elapsed >= min_secs) or elapsed > max_secs:
            break
        t0 = time.perf_counter_ns()
        interp.invoke()
        times.append((time.perf_counter_ns() - t0) // 1000)
    return RunStats(times_us=tuple(times))


def _runtime_version() -> str:
    try:
        return metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        return "unknown"


def run(opts: BenchOptions, out: TextIO = sys.stdout) -> int:
    """Benchmark `opts.graph`, printing benchmark_model-format lines to `out`; the exit status."""

    def log(msg: str) -> None:
        print(f"INFO: {msg}", file=out, flush=True)

    def fail(msg: str) -> int:
        print(f"ERROR: {msg}", file=out, flush=True)
        print("ERROR: Benchmarking failed.", file=out, flush=True)
        return 1

    start_rss = _maxrss_mb()
    log("STARTING!")
    log(f"Tool: [{TOOL}, LiteRT Python runtime ai-edge-litert {_runtime_version()}; host reference]")
    log(f"Num threads: [{opts.num_threads}]")
    log(f"Graph: [{opts.graph}]")
    log(f"Use xnnpack: [{int(opts.use_xnnpack)}]")
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as e:
        return fail(f"the LiteRT runtime is not installed ({e}): pip install ai-edge-litert")
    if not opts.graph.is_file():
        return fail(f"Could not open '{opts.graph}'.")
    log(f"Loaded model {opts.graph}")
    log(f"The input model file size (MB): {_g(opts.graph.stat().st_size / 1e6)}")
    resolver = OpResolverType.AUTO if opts.use_xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    t0 = time.perf_counter_ns()
    try:
        interp = Interpreter(
            model_path=str(opts.graph),
            num_threads=opts.num_threads if opts.num_threads > 0 else None,
            experimental_op_resolver_type=resolver,
        )
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        return fail(f"Failed to construct interpreter: {' '.join(str(e).split())}")
    init_us = (time.perf_counter_ns() - t0) // 1000
    log(f"Initialized session in {_g(init_us / 1000)}ms.")
    init_rss = _maxrss_mb()
    try:
        _fill_inputs(interp, opts.seed)
        log(
            f"Running benchmark for at least {opts.warmup_runs} iterations and at least "
            f"{_g(opts.warmup_min_secs)} seconds but terminate if exceeding {_g(opts.max_secs)} seconds."
        )
        warm = _phase(interp, opts.warmup_runs, opts.warmup_min_secs, opts.max_secs)
        log(warm.line())
        print("", file=out)
        log(
            f"Running benchmark for at least {opts.num_runs} iterations and at least "
            f"{_g(opts.min_secs)} seconds but terminate if exceeding {_g(opts.max_secs)} seconds."
        )
        timed = _phase(interp, opts.num_runs, opts.min_secs, opts.max_secs)
        log(timed.line())
        print("", file=out)
    except (ValueError, RuntimeError) as e:
        return fail(f"Failed to invoke: {' '.join(str(e).split())}")
    if not timed.times_us:
        return fail("no timed run completed")
    first = warm.times_us[0] if warm.times_us else timed.times_us[0]
    log(
        f"Inference timings in us: Init: {init_us}, First inference: {first}, "
        f"Warmup (avg): {_g(warm.avg)}, Inference (avg): {_g(timed.avg)}"
    )
    overall_rss = _maxrss_mb()
    log(
        "Note: memory figures are the peak RSS of this Python process (getrusage), "
        "so they include the Python interpreter."
    )
    log(
        f"Memory footprint delta from the start of the tool (MB): init={_g(init_rss - start_rss)} "
        f"overall={_g(overall_rss - start_rss)}"
    )
    log(f"Peak memory footprint (MB): init={_g(init_rss)} overall={_g(overall_rss)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line entry point."""
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
