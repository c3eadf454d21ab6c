"""Benchmarks of the harness itself; figures are printed, never asserted.

    python bench/bench.py            # all
    python bench/bench.py dry_run    # one

dry_run: wall time of `ant-kpi plan --json` for all eight KPIs in a fresh interpreter (what a
user waits for), median of 5 after one warm-up; target < 0.5 s on a 2-core machine.
sampler_cpu: CPU time the PSS sampler itself uses at 100 Hz, as % of one core; target < 1 %.
    Printed beside it, the floor of this machine: what a loop that only wakes 100 times a second
    costs, in Python (as the sampler waits) and in C, alone and with one /proc/PID/stat read per
    wake-up (the least a tick of the sampler does). On a VM each wake-up is a timer exit to the
    hypervisor, so the floor differs much from machine to machine.
overhead: wall time of a fixed workload run under the sampler vs bare (the KPI 1 measurement
phase), median of 5 each, interleaved; target <= 3 %.
plan_repeats: time to plan KPIs 1 and 2 (every target) at 100, 250, 500 and 1000 repeats (the
--repeats maximum), in-process, without printing; median of 3 each, and the time per planned step,
which stays flat when planning is linear in the number of steps.
build_arm: `ant-kpi build` cold (empty cache) then warm, with the user's sources (mirrors through
GIT_CONFIG_GLOBAL or the network); only when named explicitly, as it builds upstream code.
labgrid_overhead: what reaching a board through a labgrid place adds per board (take + release),
vs the built-in lease; needs root (namespace boards) and labgrid; only when named.
boards_parallel: a measure run over two labgrid namespace boards, serial vs parallel, interleaved;
BENCH_KPI=boards for KPI 6 with ANT (mirrors); only when named.
"""

from __future__ import annotations

import os
import select
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
    from harness.payload import pss

    with tempfile.TemporaryDirectory() as d:
        alloc = _alloc_binary(Path(d))
        res = pss.sample_process([str(alloc), "32", "5"], interval=0.01, stdout=subprocess.DEVNULL)
        floor = _wake_floor(Path(d), alloc)
    share = 100 * res.sampler_cpu_s / res.wall_s
    # The peak shows that the cheaper sampling still finds the 32 MiB block.
    print(
        f"sampler_cpu: {res.samples} samples in {res.wall_s:.2f} s ({res.rate_hz:.0f} Hz), "
        f"{res.measured_samples} with PSS read ({res.measured_rate_hz:.1f} Hz, remeasure "
        f"{res.remeasure_s} s), peak PSS {res.peak()} KB: sampler CPU {res.sampler_cpu_s:.3f} s = "
        f"{share:.2f} % of one core; target < 1 %: {'met' if share < 1 else 'NOT met'}"
    )
    print(floor)


_WAKE_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* usage: wake TICKS INTERVAL_NS [FILE]: wake TICKS times on a fixed grid, pread FILE each time;
 * print the process CPU seconds used. */
int main(int argc, char **argv)
{
    long ticks = atol(argv[1]), step = atol(argv[2]);
    int fd = argc > 3 ? open(argv[3], O_RDONLY) : -1;
    char buf[1024];
    struct timespec next, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &next);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    for (long i = 0; i < ticks; i++) {
        if (fd >= 0 && pread(fd, buf, sizeof buf, 0) < 0)
            return 1;
        next.tv_nsec += step;
        while (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    printf("%.6f\n", (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9);
    return 0;
}
"""


def _python_wake_cpu(ticks: int, interval: float, path: str | None) -> float:
    """CPU seconds of `ticks` wake-ups on a fixed grid, waiting as the sampler does (poll)."""
    fd = os.open(path, os.O_RDONLY) if path else -1
    waiter = select.poll()
    try:
        c0 = time.process_time()
        next_tick = time.monotonic()
        for _ in range(ticks):
            if fd >= 0:
                os.pread(fd, 1024, 0)
            next_tick += interval
            waiter.poll(max(0, round((next_tick - time.monotonic()) * 1000)))
        return time.process_time() - c0
    finally:
        if fd >= 0:
            os.close(fd)


def _wake_floor(work: Path, alloc: Path, ticks: int = 500, interval: float = 0.01) -> str:
    """The floor line: wake-up cost in Python and C, alone and with one /proc/PID/stat read."""
    wall = ticks * interval
    held = subprocess.Popen([str(alloc), "32", str(4 * wall + 2)], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)  # let it allocate: the read is then of an idle 32 MiB process, as above
        stat = f"/proc/{held.pid}/stat"
        parts = [
            f"Python wake-up only {100 * _python_wake_cpu(ticks, interval, None) / wall:.2f} %",
            f"+ one stat read {100 * _python_wake_cpu(ticks, interval, stat) / wall:.2f} %",
        ]
        src = work / "wake.c"
        src.write_text(_WAKE_C)
        try:
            subprocess.run(["gcc", "-O2", "-o", str(work / "wake"), str(src)], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError):
            parts.append("C: no gcc here")
        else:
            for label, extra in (("C wake-up only", []), ("+ one stat read", [stat])):
                out = subprocess.run(
                    [str(work / "wake"), str(ticks), str(round(interval * 1e9)), *extra],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                parts.append(f"{label} {100 * float(out) / wall:.2f} %")
    finally:
        held.kill()
        held.wait()
    return f"sampler_cpu floor ({ticks} wake-ups at {1 / interval:.0f} Hz): " + "; ".join(parts)


def bench_overhead(n: int = 5) -> None:
    from harness.payload import pss

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
    print(
        f"overhead: fixed workload bare {b:.3f} s vs under the sampler {s:.3f} s (medians of {n}): "
        f"{pct:+.2f} %; target <= 3 %: {'met' if pct <= 3 else 'NOT met'}"
    )


def bench_plan_repeats(n: int = 3) -> None:
    from dataclasses import replace

    from harness.core.manifest import load_manifest
    from harness.kpis import plan_kpi
    from harness.options import EnvSettings

    m = load_manifest(ROOT / "kpis.toml")
    for repeats in (100, 250, 500, 1000):
        mr = replace(m, defaults=replace(m.defaults, repeats=repeats, smoke_repeats=repeats))
        times, steps = [], 0
        for _ in range(n):
            t0 = time.perf_counter()
            plans = [
                plan_kpi(mr, mr.kpi(k), mode="smoke", targets=(), project_root=ROOT, env=EnvSettings(), boards={})
                for k in ("js_memory", "app_latency")
            ]
            times.append(time.perf_counter() - t0)
            steps = sum(len(p.steps) for p in plans)
        med = statistics.median(times)
        print(f"plan_repeats: {repeats:5} repeats, {steps:6} steps: {med:.3f} s ({1e6 * med / steps:.1f} µs per step)")


def bench_build_arm() -> None:
    with tempfile.TemporaryDirectory() as d:
        env = {**os.environ, "ANT_KPI_CACHE": str(Path(d) / "cache"), "ANT_KPI_RUNS": str(Path(d) / "runs")}
        for label in ("cold", "warm"):
            t0 = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "harness", "--manifest", str(ROOT / "kpis.toml"), "build"],
                env=env,
                capture_output=True,
                text=True,
            )
            took = time.perf_counter() - t0
            if proc.returncode != 0:
                print(f"build_arm {label}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
                return
            print(f"build_arm {label}: {took:.1f} s")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _lab_or_skip(name: str) -> bool:
    sys.path.insert(0, str(ROOT))
    from harness.env.lab import labgrid
    from harness.errors import Blocked
    from tests import netns_board

    missing = netns_board.missing_tools()
    try:
        labgrid.client_path()
    except Blocked as e:
        missing.append(str(e))
    if missing:
        print(f"{name}: not measured here: {'; '.join(missing)}")
        return False
    return True


def bench_labgrid_overhead(n: int = 5) -> None:
    """What a labgrid place adds per board: reserve (tags) or name + acquire + show + release, vs
    the built-in lease, on a coordinator and exporter on loopback; median of n each, interleaved."""
    if not _lab_or_skip("labgrid_overhead"):
        return
    from harness.env.lab import labgrid
    from harness.env.lab.inventory import Board
    from harness.env.lab.lease import lease
    from tests import labgrid_lab

    with tempfile.TemporaryDirectory() as d, labgrid_lab.running(Path(d) / "lab", 1) as lab:
        common = {"name": "pi-a", "model": "Raspberry Pi 2", "arch": "armhf", "target": "rpi2", "transport": "ssh"}
        named = Board(**common, place=lab.place(0), coordinator=lab.coordinator)  # type: ignore[arg-type]
        tagged = Board(**common, reserve=(("lab", "ci"),), coordinator=lab.coordinator)  # type: ignore[arg-type]
        times: dict[str, list[float]] = {"built-in lease": [], "labgrid place": [], "labgrid reserve by tags": []}
        before = _load()
        for i in range(n):
            for label in times:
                t0 = time.perf_counter()
                if label == "built-in lease":
                    with lease("pi-a", leases_dir=Path(d) / "leases", run_id=f"b{i}", ttl_s=60):
                        pass
                else:
                    board = named if label == "labgrid place" else tagged
                    with labgrid.hold(
                        board, run_id=f"b{i}", leases_dir=Path(d) / "leases", wait=False, wait_timeout_s=None
                    ):
                        pass
                times[label].append(time.perf_counter() - t0)
        after = _load()
    for label, ts in times.items():
        print(
            f"labgrid_overhead: {label}: take + release per board: median {statistics.median(ts):.3f} s of {n} "
            f"(min {min(ts):.3f}, max {max(ts):.3f})"
        )
    print(f"labgrid_overhead: load before {before}, after {after}")


def bench_boards_parallel(n: int = 3) -> None:
    """Wall time of a measure run over two labgrid boards (namespace SSH boards), serial
    (--board-workers 1) vs parallel, n interleaved pairs after one warm-up run (builds cached).

    BENCH_KPI=boards runs KPI 6 from kpis.toml (ANT's sources: mirrors through GIT_CONFIG_GLOBAL),
    otherwise KPI 1 on the end-to-end tests' small local runtime (two repeats, two workloads).
    """
    if not _lab_or_skip("boards_parallel"):
        return
    from tests import labgrid_lab

    kpi = os.environ.get("BENCH_KPI", "js_memory")
    with tempfile.TemporaryDirectory() as d, labgrid_lab.running(Path(d) / "lab", 2) as lab:
        tmp = Path(d)
        if kpi == "boards":
            manifest = ROOT / "kpis.toml"
        else:
            from tests.test_labgrid import _two_arch_manifest

            manifest = _two_arch_manifest(tmp)
        inventory = lab.inventory(
            tmp / "boards.toml",
            [("pi-a", "Raspberry Pi 2", "armhf", "rpi2"), ("tx2-b", "Jetson TX2", "arm64", "arm64")],
        )
        env = {**os.environ, "COLUMNS": "160"}
        if kpi != "boards":
            env["ANT_KPI_CACHE"] = str(tmp / "cache")

        def one(run_id: str, *extra: str) -> tuple[float, int, str, str]:
            argv = [
                sys.executable, "-m", "harness", "--manifest", str(manifest), "--runs-dir", str(tmp / "runs"),
                "run", kpi, "--target", "pi-a", "--target", "tx2-b", "--boards", str(inventory),
                "--run-id", run_id, *extra,
            ]  # fmt: skip
            before = _load()
            t0 = time.perf_counter()
            res = subprocess.run(argv, env=env, capture_output=True, text=True)
            took = time.perf_counter() - t0
            if res.returncode not in (0, 1):
                print(res.stdout[-3000:], res.stderr[-3000:])
            return took, res.returncode, before, _load()

        warm = one("warm-up")
        print(f"boards_parallel: {kpi}: warm-up run {warm[0]:.1f} s (exit {warm[1]}): builds and images cached")
        times: dict[str, list[float]] = {"serial": [], "parallel": []}
        for i in range(n):
            for label in ("serial", "parallel") if i % 2 == 0 else ("parallel", "serial"):
                extra = ("--board-workers", "1") if label == "serial" else ()
                took, rc, before, after = one(f"{label}-{i}", *extra)
                times[label].append(took)
                print(f"boards_parallel: {kpi}: {label} #{i}: {took:.1f} s, exit {rc}, load {before} → {after}")
    s_med, p_med = statistics.median(times["serial"]), statistics.median(times["parallel"])
    print(
        f"boards_parallel: {kpi}, two boards: serial median {s_med:.1f} s, parallel median {p_med:.1f} s of {n} "
        f"each (interleaved): parallel/serial {p_med / s_med:.2f}"
    )


BENCHES = {
    "dry_run": bench_dry_run,
    "sampler_cpu": bench_sampler_cpu,
    "overhead": bench_overhead,
    "plan_repeats": bench_plan_repeats,
    "build_arm": bench_build_arm,
    "labgrid_overhead": bench_labgrid_overhead,
    "boards_parallel": bench_boards_parallel,
}
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
