"""Outputs of KPI 7's simulator runs and compiles: VTA's fsim check on random weights, a Gemmini
tutorial on Spike, the Ethos-U55 compile of a generated model.

Each ends with a line the harness's payload prints (`ANT-KPI-VTA {json}`, `ANT-KPI-GEMMINI {json}`,
`ANT-KPI-ETHOSU {json}`); the rest is the tools' own output: VTA's execution statistics, the
bare-metal program's lines on Spike (`ERROR IN ... EXAMPLE!`, `SUCCESS!`/`FAIL!`) and the Spike
shim's `ANT-KPI-SPIKE exit=N argv=...`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Final

_VTA_LINE: Final = re.compile(r"^ANT-KPI-VTA (\{.*\})\s*$", re.MULTILINE)
_GEMMINI_LINE: Final = re.compile(r"^ANT-KPI-GEMMINI (\{.*\})\s*$", re.MULTILINE)
_ETHOSU_LINE: Final = re.compile(r"^ANT-KPI-ETHOSU (\{.*\})\s*$", re.MULTILINE)
_SPIKE_LINE: Final = re.compile(r"^ANT-KPI-SPIKE exit=(?P<rc>-?\d+) argv=(?P<argv>.*?)\s*$", re.MULTILINE)
_TUTORIAL_ERROR: Final = re.compile(r"^ANT-KPI-TUTORIAL-ERROR (?P<what>.*?)\s*$", re.MULTILINE)
# One line per element that differs from the reference (the program goes on after each).
_ELEMENT_ERROR: Final = re.compile(r"^ERROR IN [A-Z0-9 ]+ EXAMPLE! .*$", re.MULTILINE)
_VERDICT: Final = re.compile(r"^(?P<word>SUCCESS|FAIL)!(?: \(error_counter = (?P<n>\d+)\))?\s*$", re.MULTILINE)
_STARTING: Final = re.compile(r"^Starting (?P<what>.+?) test\.\.\.\s*$", re.MULTILINE)


def _last_json(pattern: re.Pattern[str], text: str) -> dict[str, Any] | None:
    found = pattern.findall(text)
    if not found:
        return None
    try:
        doc = json.loads(found[-1])
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def parse_vta_random(text: str) -> dict[str, Any] | None:
    """The closing `ANT-KPI-VTA` object of vta_random.py, or None when the run did not get there."""
    return _last_json(_VTA_LINE, text)


_OFFLOADS: Final = re.compile(
    r"^ANT-KPI-OFFLOADS-BEGIN\n(?P<body>.*?)\n?ANT-KPI-OFFLOADS-END$", re.MULTILINE | re.DOTALL
)
_OFFLOAD_TOTAL: Final = re.compile(r"^Total: (\d+)\s*$", re.MULTILINE)
_OFFLOAD_TARGET: Final = re.compile(r"^(?P<target>[\w.-]+): (?P<n>\d+)\s*$", re.MULTILINE)
# A group's first line: "<target padded to 10>     <-     <composite, or the Relay line of a generic op>".
_OFFLOAD_GROUP: Final = re.compile(r"^(?P<target>\S+)\s+<- {5}(?P<what>\S.*?)\s*$", re.MULTILINE)


@dataclass(frozen=True, kw_only=True)
class Offloads:
    """tvmc's `--dump-offloads` report: the initial Relay operators per target, and the composite
    patterns (one per offloaded operator: a convolution with its bias, requantize and clip is one)
    each target took."""

    total: int
    relay_ops: dict[str, int]  # target -> Relay calls of the initial module it took ("generic": left in C)
    composites: dict[str, list[str]]  # target -> its composites, in the report's order

    def operators(self, target: str) -> int:
        return len(self.composites.get(target, []))


def parse_offloads(text: str) -> Offloads | None:
    """The `--dump-offloads` report the Ethos-U compile printed between its markers, or None."""
    m = _OFFLOADS.search(text)
    if m is None:
        return None
    body = m.group("body")
    total = _OFFLOAD_TOTAL.search(body)
    if total is None:
        return None
    head = body[total.end() :].split("\n\n", 1)[0]
    relay_ops = {t.group("target"): int(t.group("n")) for t in _OFFLOAD_TARGET.finditer(head)}
    composites: dict[str, list[str]] = {}
    for g in _OFFLOAD_GROUP.finditer(body):
        if g.group("target") not in ("generic", "unknown"):
            composites.setdefault(g.group("target"), []).append(g.group("what"))
    return Offloads(total=int(total.group(1)), relay_ops=relay_ops, composites=composites)


def parse_ethosu_compile(text: str) -> dict[str, Any] | None:
    """The closing `ANT-KPI-ETHOSU` object of ethosu_compile.py, or None when it did not get there."""
    return _last_json(_ETHOSU_LINE, text)


@dataclass(frozen=True, kw_only=True)
class GemminiRun:
    """What one Gemmini tutorial run shows."""

    started: str = ""  # "add" from "Starting add test..." (the program began on Spike)
    spike_exit: int | None = None
    spike_argv: str = ""
    element_errors: int = 0  # lines "ERROR IN ... EXAMPLE!"
    program_verdict: str = ""  # SUCCESS or FAIL as the program printed it
    program_error_counter: int | None = None
    tutorial_error: str = ""
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def output_len(self) -> int | None:
        n = self.facts.get("output_len")
        return n if isinstance(n, int) else None

    @property
    def gemmini_calls(self) -> dict[str, int]:
        calls = self.facts.get("gemmini_calls")
        return {str(k): int(v) for k, v in calls.items()} if isinstance(calls, dict) else {}


def parse_gemmini_run(text: str) -> GemminiRun:
    spike = list(_SPIKE_LINE.finditer(text))
    verdict = list(_VERDICT.finditer(text))
    started = _STARTING.search(text)
    err = _TUTORIAL_ERROR.search(text)
    last = verdict[-1] if verdict else None
    return GemminiRun(
        started=started["what"] if started else "",
        spike_exit=int(spike[-1]["rc"]) if spike else None,
        spike_argv=spike[-1]["argv"] if spike else "",
        element_errors=len(_ELEMENT_ERROR.findall(text)),
        program_verdict=last["word"] if last else "",
        program_error_counter=int(last["n"]) if last and last["n"] is not None else None,
        tutorial_error=err["what"] if err else "",
        facts=_last_json(_GEMMINI_LINE, text) or {},
    )
