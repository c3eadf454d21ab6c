"""Benchmarks of the harness itself; figures are printed, never asserted.

    python bench/bench.py            # all
    python bench/bench.py dry_run    # one

dry_run: wall time of `ant-kpi plan --json` for all eight KPIs in a fresh interpreter (what a
user waits for), median of 5 after one warm-up; target < 0.5 s on a 2-core machine.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
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


BENCHES = {"dry_run": bench_dry_run}


def main(names: list[str]) -> int:
    for name in names or list(BENCHES):
        if name not in BENCHES:
            print(f"unknown bench {name!r}; known: {', '.join(BENCHES)}", file=sys.stderr)
            return 2
        BENCHES[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
