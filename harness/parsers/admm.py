"""Logs of Auto-Compression's UVP ADMM_baseline (pruning/UVP/ADMM_baseline/main.py).

Lines read (accuracies are percentages):
  ` * Acc@1 X Acc@5 Y`                 end of each validation: per ADMM epoch, after pruning, per FT epoch
  `Best accuracy: X.XXX`               after each fine-tuning epoch; the last one is the KPI's Top-1
  `total nonzero parameters after pruning: a / b (p%)`   over all parameters, so below the target
A Python traceback in the log is reported as `error` (the last exception line).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness.errors import BadInput
from harness.parsers.benchmark_model import read_text
from harness.parsers.traininglog import Traceback

_NUM: Final = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_ACC_RE: Final = re.compile(rf"^\s*\*\s+Acc@1\s+(?P<top1>{_NUM})\s+Acc@5\s+(?P<top5>{_NUM})", re.ASCII)
_BEST_RE: Final = re.compile(rf"^\s*Best accuracy:\s*(?P<best>{_NUM})", re.ASCII)
_NONZERO_RE: Final = re.compile(
    rf"^\s*total nonzero parameters after pruning:\s*(?P<nz>[0-9]+)\s*/\s*(?P<total>[0-9]+)"
    rf"\s*\((?P<pct>{_NUM})%\)",
    re.ASCII,
)


@dataclass(frozen=True, kw_only=True)
class Accuracy:
    """One ` * Acc@1 X Acc@5 Y` line."""

    line: int
    top1: float
    top5: float


@dataclass(frozen=True, kw_only=True)
class AdmmLog:
    """What an ADMM_baseline run printed."""

    accuracies: tuple[Accuracy, ...]
    best_accuracy: float | None  # the last `Best accuracy:`; None when no fine-tuning epoch ended
    best_lines: int  # how many `Best accuracy:` lines there were (one per fine-tuning epoch)
    nonzero: int | None = None
    total_params: int | None = None
    nonzero_pct: float | None = None
    error: str = ""  # the exception line of a traceback, if the run crashed

    @property
    def top1(self) -> float | None:
        """The KPI's Top-1: the last `Best accuracy`, else the last ` * Acc@1`."""
        if self.best_accuracy is not None:
            return self.best_accuracy
        return self.accuracies[-1].top1 if self.accuracies else None


def parse_admm_text(text: str, *, source: str = "ADMM log") -> AdmmLog:
    """Parse an ADMM_baseline log; BadInput when it has neither an accuracy line nor a traceback."""
    accs: list[Accuracy] = []
    best: float | None = None
    n_best = 0
    nonzero: tuple[int, int, float] | None = None
    crash = Traceback()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if m := _ACC_RE.match(line):
            accs.append(Accuracy(line=number, top1=float(m["top1"]), top5=float(m["top5"])))
        elif m := _BEST_RE.match(line):
            best, n_best = float(m["best"]), n_best + 1
        elif m := _NONZERO_RE.match(line):
            nonzero = (int(m["nz"]), int(m["total"]), float(m["pct"]))
        else:
            crash.feed(line)
    error = crash.error
    if not accs and best is None and not error:
        raise BadInput(f"{source}: no ' * Acc@1 … Acc@5 …' or 'Best accuracy:' line (not an ADMM_baseline log?)")
    return AdmmLog(
        accuracies=tuple(accs),
        best_accuracy=best,
        best_lines=n_best,
        nonzero=nonzero[0] if nonzero else None,
        total_params=nonzero[1] if nonzero else None,
        nonzero_pct=nonzero[2] if nonzero else None,
        error=error,
    )


def parse_admm_file(path: str | Path) -> AdmmLog:
    """Parse an ADMM_baseline log file."""
    return parse_admm_text(read_text(path), source=str(path))


def measurements(path: Path) -> list[dict[str, Any]]:
    """The registry entry: top1 (%) of one ADMM_baseline log; a crashed run → BadInput."""
    log = parse_admm_file(path)
    if log.error:
        raise BadInput(f"{path}: the run crashed: {log.error}")
    top1 = log.top1
    assert top1 is not None  # a log without accuracy and without error was rejected above
    which = (
        f"last of {log.best_lines} 'Best accuracy' line(s)"
        if log.best_accuracy is not None
        else "last ' * Acc@1' line (no fine-tuning epoch ended)"
    )
    out = [{"metric": "top1", "value": top1, "unit": "%", "note": which}]
    return out
