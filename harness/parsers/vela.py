"""Arm Vela (ethos-u-vela) output: the network summary it prints and the summary CSV it writes.

Vela compiles a TFLite model for an Ethos-U NPU and prints a "Network summary" block:
  `Accelerator configuration   Ethos_U55_128`, `System configuration …`, `Memory mode …`,
  `Accelerator clock  500 MHz`, `Total SRAM used  8.73 KiB` (one line per memory area),
  `CPU operators = N (x%)`, `NPU operators = M (y%)` (with `--show-cpu-operations`, one
  `   CPU: …` / `   NPU: …` line per operator after each count),
  `Neural network macs  N MACs/batch`, and with `--verbose-cycle-estimate`
  `NPU cycles  N cycles/batch` … `Total cycles  N cycles/batch` and
  `Batch Inference time  0.05 ms, 20993.41 inferences/s (batch size 1)`.
Operators Vela cannot place on the NPU are announced as `Warning (supported operators) operator:
OP, ofm: 'NAME'` followed by a `Reason:` line. A failed compilation ends in a Python traceback.

The counts are of Vela's own (lowered) operators, not of the TFLite graph's: a softmax becomes
some thirty NPU operations. The cycle and time figures are Vela's performance-model estimates.
The CSV (`<network>_summary_<system config>.csv`) holds one row with the same estimates
(`cycles_npu`, `cycles_total`, `inference_time` in seconds, `*_memory_used` in KiB) but no
operator counts.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from harness.errors import BadInput

_NUM: Final = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|nan|inf"
_SUMMARY_RE: Final = re.compile(r"^Network summary for (?P<name>.+?)\s*$")
_SETTING_RE: Final = re.compile(
    r"^(?P<key>Accelerator configuration|System configuration|Memory mode)\s+(?P<val>\S.*?)\s*$"
)
_CLOCK_RE: Final = re.compile(rf"^Accelerator clock\s+(?P<mhz>{_NUM})\s*MHz")
_USED_RE: Final = re.compile(rf"^Total (?P<area>.+?) used\s+(?P<kib>{_NUM})\s*KiB\s*$")
_OPS_RE: Final = re.compile(r"^(?P<where>CPU|NPU) operators = (?P<n>[0-9]+)\b")
_OP_LINE_RE: Final = re.compile(r"^\s+(?P<where>CPU|NPU): (?P<op>.+?)\s*$")
_MACS_RE: Final = re.compile(rf"^Neural network macs\s+(?P<macs>{_NUM})\s*MACs/batch")
_CYCLES_RE: Final = re.compile(r"^(?P<kind>.+?) cycles\s+(?P<n>[0-9]+)\s*cycles/batch\s*$")
_TIME_RE: Final = re.compile(rf"^Batch Inference time\s+(?P<ms>{_NUM})\s*ms,\s*(?P<ips>{_NUM})\s*inferences/s")
_UNSUPPORTED_RE: Final = re.compile(
    r"^Warning \(supported operators\) operator: (?P<op>[A-Z0-9_]+), ofm: '(?P<ofm>.*)'"
)
_REASON_RE: Final = re.compile(r"^Reason: (?P<reason>.+?)\s*$")
# A traceback's last line (`RuntimeError: …`), or Vela's own `Error: …`.
_ERROR_RE: Final = re.compile(r"^(?P<type>[A-Za-z_.]*(?:Error|Exception)): (?P<msg>.*)$")
# Metric name of each memory area's "Total … used" line.
_AREA_METRICS: Final = {
    "SRAM": "sram_kb",
    "DRAM": "dram_kb",
    "On-chip Flash": "onchip_flash_kb",
    "Off-chip Flash": "flash_kb",
}
_CSV_AREAS: Final = {
    "sram_memory_used": "SRAM",
    "dram_memory_used": "DRAM",
    "on_chip_flash_memory_used": "On-chip Flash",
    "off_chip_flash_memory_used": "Off-chip Flash",
}


@dataclass(frozen=True, kw_only=True)
class UnsupportedOperator:
    """A `Warning (supported operators)` entry: an operator Vela leaves to the CPU, and why."""

    op: str
    ofm: str
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class VelaSummary:
    """What one Vela compilation reported; memory in KiB, time in ms, cycles per batch."""

    network: str = ""
    accelerator: str = ""
    system_config: str = ""
    memory_mode: str = ""
    clock_mhz: float | None = None
    memory_used_kib: dict[str, float] = field(default_factory=dict)
    cpu_ops: int | None = None
    npu_ops: int | None = None
    cpu_operations: tuple[str, ...] = ()
    npu_operations: tuple[str, ...] = ()
    macs: int | None = None
    cycles: dict[str, int] = field(default_factory=dict)
    inference_ms: float | None = None
    inferences_per_s: float | None = None
    unsupported: tuple[UnsupportedOperator, ...] = ()
    error: str = ""

    @property
    def compiled(self) -> bool:
        """A summary was printed and no error ended the compilation."""
        return bool(self.network) and self.npu_ops is not None and not self.error

    @property
    def npu_cycles(self) -> int | None:
        """Vela's estimate of NPU cycles per batch (needs --verbose-cycle-estimate)."""
        return self.cycles.get("NPU")

    @property
    def total_cycles(self) -> int | None:
        """Vela's estimate of total cycles per batch, memory accesses included."""
        return self.cycles.get("Total")


def _num(text: str) -> float:
    return float(text)


def parse_vela_text(text: str, *, source: str = "vela output") -> VelaSummary:
    """The summary of one Vela run's stdout (+stderr); BadInput when it is neither a summary nor an error."""
    lines = text.splitlines()
    fields: dict[str, Any] = {}
    memory: dict[str, float] = {}
    cycles: dict[str, int] = {}
    ops: dict[str, list[str]] = {"CPU": [], "NPU": []}
    unsupported: list[UnsupportedOperator] = []
    error = ""
    listing = ""  # which operator list the indented `CPU:`/`NPU:` lines belong to
    for i, raw in enumerate(lines):
        line = raw.rstrip()
        if m := _SUMMARY_RE.match(line):
            fields["network"] = m["name"]
        elif m := _SETTING_RE.match(line):
            key = {
                "Accelerator configuration": "accelerator",
                "System configuration": "system_config",
                "Memory mode": "memory_mode",
            }[m["key"]]
            fields[key] = m["val"]
        elif m := _CLOCK_RE.match(line):
            fields["clock_mhz"] = _num(m["mhz"])
        elif m := _USED_RE.match(line):
            memory[m["area"]] = _num(m["kib"])
        elif m := _OPS_RE.match(line):
            fields[f"{m['where'].lower()}_ops"] = int(m["n"])
            listing = m["where"]
            continue
        elif (m := _OP_LINE_RE.match(raw)) and listing == m["where"]:
            ops[listing].append(m["op"])
            continue
        elif m := _MACS_RE.match(line):
            fields["macs"] = int(_num(m["macs"]))
        elif m := _CYCLES_RE.match(line):
            cycles[m["kind"].strip()] = int(m["n"])
        elif m := _TIME_RE.match(line):
            fields["inference_ms"] = _num(m["ms"])
            ips = _num(m["ips"])
            fields["inferences_per_s"] = None if math.isnan(ips) else ips
        elif m := _UNSUPPORTED_RE.match(line):
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            reason = r["reason"] if (r := _REASON_RE.match(nxt)) else ""
            unsupported.append(UnsupportedOperator(op=m["op"], ofm=m["ofm"], reason=reason))
        elif m := _ERROR_RE.match(line):
            error = f"{m['type']}: {m['msg']}".strip()
        listing = ""
    summary = VelaSummary(
        memory_used_kib=memory,
        cycles=cycles,
        cpu_operations=tuple(ops["CPU"]),
        npu_operations=tuple(ops["NPU"]),
        unsupported=tuple(unsupported),
        error=error,
        **fields,
    )
    if not summary.network and not summary.error:
        raise BadInput(f"{source}: no Vela network summary and no error in it")
    return summary


def parse_vela_file(path: str | Path) -> VelaSummary:
    """parse_vela_text of a log file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise BadInput(f"cannot read {p}: {e.strerror or e}") from None
    return parse_vela_text(text, source=str(p))


def parse_vela_csv_text(text: str, *, source: str = "vela summary csv") -> VelaSummary:
    """The estimates of a Vela summary CSV (one data row); no operator counts, which the CSV lacks."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if len(rows) != 1 or "cycles_total" not in rows[0]:
        raise BadInput(f"{source}: not a Vela summary CSV (want one row with a cycles_total column)")
    row = rows[0]
    try:
        seconds = float(row["inference_time"])
        ips = float(row["inferences_per_second"])
        return VelaSummary(
            network=row["network"],
            accelerator=row["accelerator_configuration"],
            system_config=row["system_config"],
            memory_mode=row["memory_mode"],
            clock_mhz=float(row["core_clock"]) / 1e6,
            memory_used_kib={area: float(row[col]) for col, area in _CSV_AREAS.items() if float(row[col]) > 0},
            macs=int(float(row["nn_macs"])),
            cycles={"NPU": int(float(row["cycles_npu"])), "Total": int(float(row["cycles_total"]))},
            inference_ms=seconds * 1000.0,
            inferences_per_s=None if math.isnan(ips) else ips,
        )
    except (KeyError, ValueError) as e:
        raise BadInput(f"{source}: bad Vela summary CSV ({type(e).__name__}: {e})") from None


def parse_vela_csv(path: str | Path) -> VelaSummary:
    """parse_vela_csv_text of a file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise BadInput(f"cannot read {p}: {e.strerror or e}") from None
    return parse_vela_csv_text(text, source=str(p))


def with_csv_estimates(text: VelaSummary, table: VelaSummary) -> VelaSummary:
    """The printed summary with the CSV's unrounded estimates (cycles, time, memory) put in."""
    return replace(
        text,
        cycles={**text.cycles, **table.cycles},
        inference_ms=table.inference_ms if table.inference_ms is not None else text.inference_ms,
        inferences_per_s=table.inferences_per_s if table.inferences_per_s is not None else text.inferences_per_s,
        memory_used_kib={**text.memory_used_kib, **table.memory_used_kib},
        macs=table.macs if table.macs is not None else text.macs,
    )


def describe(s: VelaSummary) -> str:
    """One line for a row note: where the operators went and the estimate."""
    if s.error:
        return f"Vela failed: {s.error}"
    parts = [f"{s.accelerator or 'Ethos-U'}"]
    if s.npu_ops is not None:
        parts.append(f"{s.npu_ops} NPU / {s.cpu_ops or 0} CPU operators")
    if s.npu_cycles is not None:
        parts.append(f"{s.npu_cycles} NPU cycles")
    if s.inference_ms is not None:
        parts.append(f"{s.inference_ms:g} ms estimated")
    return ", ".join(parts)


def summary_measurements(s: VelaSummary) -> list[dict[str, Any]]:
    """The registry form: one dict per figure the summary holds (none for a failed compilation)."""
    out: list[dict[str, Any]] = []
    if s.error:
        return out
    if s.npu_ops is not None:
        out.append({"metric": "npu_ops", "value": float(s.npu_ops), "unit": "count"})
    if s.cpu_ops is not None:
        out.append({"metric": "cpu_ops", "value": float(s.cpu_ops), "unit": "count"})
    if s.npu_cycles is not None:
        out.append({"metric": "npu_cycles", "value": float(s.npu_cycles), "unit": "cycles"})
    if s.total_cycles is not None:
        out.append({"metric": "total_cycles", "value": float(s.total_cycles), "unit": "cycles"})
    if s.inference_ms is not None and s.npu_ops != 0:
        out.append(
            {
                "metric": "inference_time",
                "value": s.inference_ms,
                "unit": "ms",
                "note": "Vela estimate (performance model, not a run)",
            }
        )
    for area, kib in s.memory_used_kib.items():
        metric = _AREA_METRICS.get(area)
        if metric is not None:
            out.append({"metric": metric, "value": kib, "unit": "KiB"})
    return out


def measurements(path: Path) -> list[dict[str, Any]]:
    """Registry entry: a Vela log (.txt/.log) or its summary CSV (.csv) → measurements."""
    p = Path(path)
    s = parse_vela_csv(p) if p.suffix.lower() == ".csv" else parse_vela_file(p)
    if s.error:
        raise BadInput(f"{p}: Vela failed: {s.error}")
    return summary_measurements(s)
