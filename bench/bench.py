"""Benchmarks of the harness itself; figures are printed, never asserted.

    python bench/bench.py            # all
    python bench/bench.py dry_run    # one

dry_run: wall time of `ant-kpi plan --json` for all eight KPIs in a fresh interpreter (what a
user waits for), median of 5 after one warm-up; target < 0.5 s on a 2-core machine.
sampler_cpu: CPU time the PSS sampler itself uses at 100 Hz, as % of one core; target < 1 %.
overhead: wall time of a fixed workload run under the sampler vs bare (the KPI 1 measurement
phase), median of 5 each, interleaved; target <= 3 %.
build_arm: `ant-kpi build` cold (empty cache) then warm, with the user's sources (mirrors through
GIT_CONFIG_GLOBAL or the network); only when named explicitly, as it builds upstream code.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_dry_run(n: int = 5) -> None:
    argv = [sys.executable, "-m", "harness", "--manifest", str(ROOT / "kpis.toml"), "plan", "--json"]
    subprocess.run(argv, check=True, capture_output=True)  # warm the page cache
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(
        f"dry_run: plan --json, all 8 KPIs, fresh interpreter: median {med:.3f} s of {n} "
        f"(min {min(times):.3f}, max {max(times):.3f}); target < 0.5 s: "
        f"{'met' if med < 0.5 else 'NOT met'}"
    )


def _alloc_binary(work: Path) -> Path:
    out = work / "alloc"
    subprocess.run(["gcc", "-O1", "-o", str(out), str(ROOT / "tests" / "fixtures" / "alloc.c")], check=True)
    return out


def bench_sampler_cpu() -> None:
    from harness import pss

    with tempfile.TemporaryDirectory() as d:
        alloc = _alloc_binary(Path(d))
        res = pss.sample_process([str(alloc), "32", "5"], interval=0.01, stdout=subprocess.DEVNULL)
    share = 100 * res.sampler_cpu_s / res.wall_s
    # The peak shows that the cheaper sampling still finds the 32 MiB block.
    print(f"sampler_cpu: {res.samples} samples in {res.wall_s:.2f} s ({res.rate_hz:.0f} Hz), "
          f"{res.measured_samples} with PSS read ({res.measured_rate_hz:.1f} Hz, remeasure "
          f"{res.remeasure_s} s), peak PSS {res.peak()} KB: sampler CPU {res.sampler_cpu_s:.3f} s = "
          f"{share:.2f} % of one core; target < 1 %: {'met' if share < 1 else 'NOT met'}")


def bench_overhead(n: int = 5) -> None:
    from harness import pss

    with tempfile.TemporaryDirectory() as d:
        alloc = _alloc_binary(Path(d))
        argv = [str(alloc), "64", "1"]
        bare, sampled = [], []
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
            bare.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            pss.sample_process(argv, interval=0.01, stdout=subprocess.DEVNULL)
            sampled.append(time.perf_counter() - t0)
    b, s = statistics.median(bare), statistics.median(sampled)
    pct = 100 * (s / b - 1)
    print(f"overhead: fixed workload bare {b:.3f} s vs under the sampler {s:.3f} s (medians of {n}): "
          f"{pct:+.2f} %; target <= 3 %: {'met' if pct <= 3 else 'NOT met'}")


def bench_build_arm() -> None:
    with tempfile.TemporaryDirectory() as d:
        env = {**os.environ, "ANT_KPI_CACHE": str(Path(d) / "cache"), "ANT_KPI_RUNS": str(Path(d) / "runs")}
        for label in ("cold", "warm"):
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "harness", "--manifest", str(ROOT / "kpis.toml"), "build"],
                                  env=env, capture_output=True, text=True)
            took = time.perf_counter() - t0
            if proc.returncode != 0:
                print(f"build_arm {label}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
                return
            print(f"build_arm {label}: {took:.1f} s")


BENCHES = {"dry_run": bench_dry_run, "sampler_cpu": bench_sampler_cpu, "overhead": bench_overhead,
           "build_arm": bench_build_arm}
DEFAULT = ("dry_run", "sampler_cpu", "overhead")


def main(names: list[str]) -> int:
    for name in names or DEFAULT:
        if name not in BENCHES:
            print(f"unknown bench {name!r}; known: {', '.join(BENCHES)}", file=sys.stderr)
            return 2
        BENCHES[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
