"""Logs of Auto-Compression's tinyml/patch-aware-training/patch_aware_train.py.

Lines read (accuracies are percentages):
  `Test:  Acc@1 X Acc@5 Y`        end of each evaluation (`Test: EMA Acc@1 …` for the EMA model)
  `Training time H:MM:SS`          last line of a completed run
  `MyConv_function_…(` / `MySqueezeExcitation(` at the start of a line: zero_borderkernel prints each
                                   patch-wise layer as it replaces one (0 for the plain model)
The script prints no memory figure: peak memory is measured by the harness (harness.payload.patch_memory).
A Python traceback in the log is reported as `error` (the last exception line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness.errors import BadInput
from harness.parsers.benchmark_model import read_text
from harness.parsers.traininglog import Traceback, training_seconds

_NUM: Final = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_TEST_RE: Final = re.compile(
    rf"^Test:\s+(?:(?P<suffix>\S+)\s+)?Acc@1\s+(?P<top1>{_NUM})\s+Acc@5\s+(?P<top5>{_NUM})\s*$", re.ASCII
)
_WRAPPER_RE: Final = re.compile(r"^(?P<cls>MyConv_function_\w+|MySqueezeExcitation)\($")


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """One `Test: … Acc@1 X Acc@5 Y` line (suffix 'EMA' for the EMA model, '' otherwise)."""

    line: int
    top1: float
    top5: float
    suffix: str = ""


@dataclass(frozen=True, kw_only=True)
class PatchAwareLog:
    """What a patch_aware_train.py run printed."""

    evaluations: tuple[Evaluation, ...]
    training_time_s: int | None  # None when the run did not finish
    patchwise_layers: int  # layers zero_borderkernel replaced (conv and squeeze-excitation wrappers)
    wrapper_classes: tuple[str, ...]
    error: str = ""

    @property
    def top1(self) -> float | None:
        """The last evaluation of the trained model (not the EMA copy): the script keeps no best."""
        own = [e for e in self.evaluations if not e.suffix]
        return own[-1].top1 if own else None

    @property
    def top5(self) -> float | None:
        own = [e for e in self.evaluations if not e.suffix]
        return own[-1].top5 if own else None


def parse_patch_aware_text(text: str, *, source: str = "patch_aware_train.py log") -> PatchAwareLog:
    """Parse a patch_aware_train.py log; BadInput when it has neither an accuracy line nor a traceback."""
    evals: list[Evaluation] = []
    seconds: int | None = None
    classes: list[str] = []
    crash = Traceback()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if m := _TEST_RE.match(line):
            evals.append(
                Evaluation(line=number, top1=float(m["top1"]), top5=float(m["top5"]), suffix=m["suffix"] or "")
            )
        elif (took := training_seconds(line)) is not None:
            seconds = took
        elif m := _WRAPPER_RE.match(line):
            classes.append(m["cls"])
        else:
            crash.feed(line)
    error = crash.error
    if not evals and not error:
        raise BadInput(f"{source}: no 'Test:  Acc@1 … Acc@5 …' line and no traceback (not a patch_aware_train.py log?)")
    return PatchAwareLog(
        evaluations=tuple(evals),
        training_time_s=seconds,
        patchwise_layers=len(classes),
        wrapper_classes=tuple(sorted(set(classes))),
        error=error,
    )


def parse_patch_aware_file(path: str | Path) -> PatchAwareLog:
    """Parse a patch_aware_train.py log file."""
    return parse_patch_aware_text(read_text(path), source=str(path))


def measurements(path: Path) -> list[dict[str, Any]]:
    """The registry entry: top1 (%) of one run; a crashed run → BadInput."""
    log = parse_patch_aware_file(path)
    if log.error:
        raise BadInput(f"{path}: the run crashed: {log.error}")
    top1 = log.top1
    if top1 is None:
        raise BadInput(f"{path}: only EMA evaluations, no 'Test:  Acc@1' line of the trained model")
    n = sum(1 for e in log.evaluations if not e.suffix)
    return [
        {
            "metric": "top1",
            "value": top1,
            "unit": "%",
            "note": f"last of {n} 'Test:  Acc@1' line(s); {log.patchwise_layers} patch-wise layer(s)",
        }
    ]
