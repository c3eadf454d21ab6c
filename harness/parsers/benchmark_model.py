"""TFLite `benchmark_model` output (and harness.payload.litert_bench, which prints the same lines).

Timing summary, by format version (the last one in the text counts):
  current  `Inference timings in us: Init: I, First inference: F, Warmup (avg): W, Inference (avg): A`
  average  `Average inference timings in us: Warmup: W, Init: I, Inference (avg): A`
  no_stats `Average inference timings in us: Warmup: W, Init: I, no stats: A` (the oldest builds)
Also read: the per-phase stats lines `count=N first= curr= min= max= avg= std=` (the last is the
timed phase, the one before it the warm-up), memory footprint lines, delegate lines
`Replacing N out of M node(s) with delegate (NAME) node, yielding P partitions`, the thread count,
graph and model size. Lines may carry any log prefix (`INFO: `, logcat tags, timestamps). Doubles are
printed by C++ streams with 6 significant digits, so values of a second or more come as `1.23457e+06`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from harness.errors import BadInput

TimingFormat = Literal["current", "average", "no_stats"]

_NUM: Final = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_NUM_RE: Final = re.compile(_NUM, re.ASCII)
_CURRENT_RE: Final = re.compile(r"(?<!Average )Inference timings in us:(?P<body>.*)", re.ASCII)
_AVERAGE_RE: Final = re.compile(r"Average inference timings in us:(?P<body>.*)", re.ASCII)
_FIELD_RE: Final = re.compile(rf"(?P<key>[A-Za-z][A-Za-z ()]*?)\s*:\s*(?P<val>{_NUM})", re.ASCII)
_STATS_RE: Final = re.compile(r"(?:^|[\s:\]])count=(?P<body>[0-9].*)$", re.ASCII)
_KV_RE: Final = re.compile(rf"(?P<key>[a-z]+)=(?P<val>{_NUM})", re.ASCII)
_MEM_DELTA_RE: Final = re.compile(
    rf"Memory footprint delta from the start of the tool \(MB\):\s*init=(?P<init>{_NUM})\s+overall=(?P<overall>{_NUM})",
    re.ASCII,
)
_MEM_PEAK_RE: Final = re.compile(
    rf"(?<!Overall )Peak memory footprint \(MB\):\s*init=(?P<init>{_NUM})\s+overall=(?P<overall>{_NUM})", re.ASCII
)
_MEM_MONITOR_RE: Final = re.compile(
    rf"Overall peak memory footprint \(MB\) via periodic monitoring:\s*(?P<mb>{_NUM})", re.ASCII
)
_DELEGATE_RE: Final = re.compile(
    r"Replacing (?P<replaced>[0-9]+)(?: out of (?P<total>[0-9]+))? node\(s\) with delegate "
    r"\((?P<name>[^)]*)\)(?: node)?(?:, yielding (?P<partitions>[0-9]+) partitions?)?",
    re.ASCII,
)
_THREADS_RE: Final = re.compile(r"Num threads: \[(?P<n>-?[0-9]+)\]", re.ASCII)
_GRAPH_RE: Final = re.compile(r"Graph: \[(?P<graph>[^\]]*)\]")
_SIZE_RE: Final = re.compile(rf"The input model file size \(MB\):\s*(?P<mb>{_NUM})", re.ASCII)
_XNNPACK_RE: Final = re.compile(r"Created TensorFlow Lite XNNPACK delegate", re.ASCII)
_ERROR_RE: Final = re.compile(r"(?:ERROR|Error|error|Failed|failed)\b.*")


@dataclass(frozen=True, kw_only=True)
class PhaseStats:
    """One stats line: per-run times (us) of a warm-up or timed phase."""

    count: int
    first: float | None = None
    curr: float | None = None
    min: float | None = None
    max: float | None = None
    avg: float | None = None
    std: float | None = None


@dataclass(frozen=True, kw_only=True)
class DelegateReplacement:
    """`Replacing N out of M node(s) with delegate (NAME)`: how much of the graph a delegate took."""

    name: str
    replaced: int
    total: int | None
    partitions: int | None


@dataclass(frozen=True, kw_only=True)
class BenchmarkResult:
    """What one benchmark_model run printed; times in microseconds, memory in MB."""

    format: TimingFormat
    inference_avg_us: float
    init_us: float | None = None
    first_inference_us: float | None = None
    warmup_avg_us: float | None = None
    timed: PhaseStats | None = None
    warmup: PhaseStats | None = None
    memory_delta_init_mb: float | None = None
    memory_delta_overall_mb: float | None = None
    peak_memory_init_mb: float | None = None
    peak_memory_overall_mb: float | None = None
    monitored_peak_memory_mb: float | None = None
    delegates: tuple[DelegateReplacement, ...] = ()
    xnnpack_created: bool = False  # the runtime announced its XNNPACK delegate
    num_threads: int | None = None
    graph: str = ""
    model_size_mb: float | None = None
    summaries: int = 1  # how many timing summary lines the text held (the last is used)


def _fields(body: str) -> dict[str, float]:
    return {m["key"].strip().lower(): float(m["val"]) for m in _FIELD_RE.finditer(body)}


def _stats(body: str) -> PhaseStats | None:
    first = _NUM_RE.match(body)
    if first is None:
        return None
    kv = {m["key"]: float(m["val"]) for m in _KV_RE.finditer(body[first.end() :])}
    try:
        count = int(float(first.group()))
    except (ValueError, OverflowError):
        return None
    return PhaseStats(
        count=count,
        first=kv.get("first"),
        curr=kv.get("curr"),
        min=kv.get("min"),
        max=kv.get("max"),
        avg=kv.get("avg", kv.get("curr") if "first" not in kv else None),
        std=kv.get("std"),
    )


def parse_benchmark_text(text: str, *, source: str = "benchmark_model output") -> BenchmarkResult:
    """Parse benchmark_model output; BadInput (one line) when it holds no timing summary."""
    summary: tuple[TimingFormat, dict[str, float]] | None = None
    n_summaries = 0
    stats: list[PhaseStats] = []
    delegates: list[DelegateReplacement] = []
    mem: dict[str, float] = {}
    threads: int | None = None
    graph = ""
    size_mb: float | None = None
    first_error = ""
    xnnpack = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if m := _AVERAGE_RE.search(line):
            f = _fields(m["body"])
            fmt: TimingFormat = "no_stats" if "no stats" in f else "average"
            if "no stats" in f or "inference (avg)" in f:
                summary, n_summaries = (fmt, f), n_summaries + 1
            continue
        if m := _CURRENT_RE.search(line):
            f = _fields(m["body"])
            if "inference (avg)" in f:
                summary, n_summaries = ("current", f), n_summaries + 1
            continue
        if "Timings (microseconds)" in line or "Memory (bytes)" in line:
            continue  # op-profiling summaries repeat the count= format; they are not phases
        if m := _STATS_RE.search(line):
            st = _stats(m["body"])
            if st is not None:
                stats.append(st)
            continue
        if m := _MEM_DELTA_RE.search(line):
            mem["delta_init"], mem["delta_overall"] = float(m["init"]), float(m["overall"])
        elif m := _MEM_MONITOR_RE.search(line):
            mem["monitored"] = float(m["mb"])
        elif m := _MEM_PEAK_RE.search(line):
            mem["peak_init"], mem["peak_overall"] = float(m["init"]), float(m["overall"])
        elif m := _DELEGATE_RE.search(line):
            delegates.append(
                DelegateReplacement(
                    name=m["name"],
                    replaced=int(m["replaced"]),
                    total=int(m["total"]) if m["total"] else None,
                    partitions=int(m["partitions"]) if m["partitions"] else None,
                )
            )
        elif _XNNPACK_RE.search(line):
            xnnpack = True
        elif m := _THREADS_RE.search(line):
            threads = int(m["n"])
        elif m := _GRAPH_RE.search(line):
            graph = m["graph"]
        elif m := _SIZE_RE.search(line):
            size_mb = float(m["mb"])
        elif not first_error and (m := _ERROR_RE.search(line)):
            first_error = m.group()[:160]
    if summary is None:
        why = f"; first error: {first_error}" if first_error else ""
        raise BadInput(f"{source}: no benchmark_model timing summary ('Inference timings in us: …'){why}")
    fmt, f = summary
    avg = f.get("inference (avg)", f.get("no stats"))
    assert avg is not None  # only summaries carrying it are kept
    return BenchmarkResult(
        format=fmt,
        inference_avg_us=avg,
        init_us=f.get("init"),
        first_inference_us=f.get("first inference"),
        warmup_avg_us=f.get("warmup (avg)", f.get("warmup")),
        timed=stats[-1] if stats else None,
        warmup=stats[-2] if len(stats) >= 2 else None,
        memory_delta_init_mb=mem.get("delta_init"),
        memory_delta_overall_mb=mem.get("delta_overall"),
        peak_memory_init_mb=mem.get("peak_init"),
        peak_memory_overall_mb=mem.get("peak_overall"),
        monitored_peak_memory_mb=mem.get("monitored"),
        delegates=tuple(delegates),
        xnnpack_created=xnnpack,
        num_threads=threads,
        graph=graph,
        model_size_mb=size_mb,
        summaries=n_summaries,
    )


def read_text(path: str | Path) -> str:
    """A log file's text; BadInput when unreadable (undecodable bytes are replaced, logs may mix)."""
    p = Path(path)
    try:
        return p.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        raise BadInput(f"{p}: cannot read ({e.strerror or e})") from None


def parse_benchmark_file(path: str | Path) -> BenchmarkResult:
    """Parse a benchmark_model log file."""
    return parse_benchmark_text(read_text(path), source=str(path))


def describe(result: BenchmarkResult) -> str:
    """A short note for a result row: format, run count, spread, delegates."""
    parts = [f"benchmark_model format {result.format}"]
    if result.timed is not None:
        spread = f", std {result.timed.std:g} us" if result.timed.std is not None else ""
        parts.append(f"{result.timed.count} timed runs{spread}")
    if result.num_threads is not None:
        parts.append(f"{result.num_threads} threads")
    if result.xnnpack_created and not result.delegates:
        parts.append("XNNPACK delegate created")
    for d in result.delegates:
        of = f" of {d.total}" if d.total is not None else ""
        parts.append(f"{d.name}: {d.replaced}{of} nodes")
    return "; ".join(parts)


def measurements(path: Path) -> list[dict[str, Any]]:
    """The registry entry: inference_avg (us) of one benchmark_model log."""
    r = parse_benchmark_file(path)
    return [{"metric": "inference_avg", "value": r.inference_avg_us, "unit": "us", "note": describe(r)}]
