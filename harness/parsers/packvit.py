"""Output of Auto-Compression's PackViT training (main_l2_vit_3keep_senet.py, engine_l2.py).

Lines read from the console log (accuracies are percentages):
  `Sparsity0:a,Sparsity1:b,Sparsity2:c,`      before each `* Acc@1`: share of tokens dropped at the
                                              three pruning locations over the evaluation
  `* Acc@1 X Acc@5 Y loss Z`                  end of each evaluation
  `Accuracy of the network on the N test images: X%`
  `Max accuracy: X%`                          running best over the epochs (the run's result)
  `number of params: N`
  `<header> Total time: H:MM:SS (S s / it)`   end of each training or evaluation loop
  `Training time H:MM:SS`                     last line of a completed run
and `output_dir/log.txt`: one JSON object per epoch (train_*, test_*, epoch, n_parameters).
PackViT prints no throughput; images/s come from the harness's own timer (harness.payload.vit_throughput_bench).
A Python traceback in the log is reported as `error` (the last exception line).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness.errors import BadInput
from harness.parsers.benchmark_model import read_text
from harness.parsers.traininglog import Traceback, training_seconds

_NUM: Final = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|nan|inf"
_SPARSITY_RE: Final = re.compile(
    rf"^Sparsity0:(?P<s0>{_NUM}),Sparsity1:(?P<s1>{_NUM}),Sparsity2:(?P<s2>{_NUM}),?\s*$", re.ASCII
)
_ACC_RE: Final = re.compile(
    rf"^\s*\*\s*Acc@1\s+(?P<top1>{_NUM})\s+Acc@5\s+(?P<top5>{_NUM})(?:\s+loss\s+(?P<loss>{_NUM}))?\s*$", re.ASCII
)
_NETWORK_RE: Final = re.compile(
    rf"^Accuracy of the network on the (?P<n>[0-9]+) test images: (?P<acc>{_NUM})%\s*$", re.ASCII
)
_MAX_RE: Final = re.compile(rf"^Max accuracy: (?P<acc>{_NUM})%\s*$", re.ASCII)
_PARAMS_RE: Final = re.compile(r"^number of params: (?P<n>[0-9]+)\s*$")
_LOOP_RE: Final = re.compile(
    rf"^(?P<header>.*?)\s*Total time: (?P<total>[0-9:]+(?:\.[0-9]+)?) \((?P<per>{_NUM}) s / it\)\s*$"
)


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """One `* Acc@1 … Acc@5 … loss …` line and the `Sparsity…` line before it, if any."""

    line: int
    top1: float
    top5: float
    loss: float | None = None
    sparsity: tuple[float, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Loop:
    """One `<header> Total time: … (S s / it)` line: seconds per iteration of a training or test loop."""

    line: int
    header: str
    seconds_per_it: float


@dataclass(frozen=True, kw_only=True)
class PackVitLog:
    """What a PackViT training run printed."""

    evaluations: tuple[Evaluation, ...]
    max_accuracy: float | None  # the last `Max accuracy:` line
    test_images: int | None  # N of `Accuracy of the network on the N test images`
    n_parameters: int | None
    loops: tuple[Loop, ...]
    training_time_s: int | None
    error: str = ""

    @property
    def top1(self) -> float | None:
        """The run's result: the last `Max accuracy`, else the last `* Acc@1`."""
        if self.max_accuracy is not None:
            return self.max_accuracy
        return self.evaluations[-1].top1 if self.evaluations else None


def parse_packvit_text(text: str, *, source: str = "PackViT log") -> PackVitLog:
    """Parse a PackViT console log; BadInput when it has neither an accuracy line nor a traceback."""
    evals: list[Evaluation] = []
    loops: list[Loop] = []
    sparsity: tuple[float, ...] = ()
    best: float | None = None
    images: int | None = None
    params: int | None = None
    seconds: int | None = None
    crash = Traceback()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if m := _SPARSITY_RE.match(line):
            sparsity = (float(m["s0"]), float(m["s1"]), float(m["s2"]))
        elif m := _ACC_RE.match(line):
            evals.append(
                Evaluation(
                    line=number,
                    top1=float(m["top1"]),
                    top5=float(m["top5"]),
                    loss=float(m["loss"]) if m["loss"] else None,
                    sparsity=sparsity,
                )
            )
            sparsity = ()
        elif m := _NETWORK_RE.match(line):
            images = int(m["n"])
        elif m := _MAX_RE.match(line):
            best = float(m["acc"])
        elif m := _PARAMS_RE.match(line):
            params = int(m["n"])
        elif m := _LOOP_RE.match(line):
            loops.append(Loop(line=number, header=m["header"].strip(), seconds_per_it=float(m["per"])))
        elif (took := training_seconds(line)) is not None:
            seconds = took
        else:
            crash.feed(line)
    error = crash.error
    if not evals and best is None and not error:
        raise BadInput(
            f"{source}: no '* Acc@1 … Acc@5 …' or 'Max accuracy:' line and no traceback (not a PackViT training log?)"
        )
    return PackVitLog(
        evaluations=tuple(evals),
        max_accuracy=best,
        test_images=images,
        n_parameters=params,
        loops=tuple(loops),
        training_time_s=seconds,
        error=error,
    )


def parse_packvit_file(path: str | Path) -> PackVitLog:
    """Parse a PackViT console log file."""
    return parse_packvit_text(read_text(path), source=str(path))


@dataclass(frozen=True, kw_only=True)
class EpochStats:
    """One line of output_dir/log.txt (accuracies in percent)."""

    epoch: int
    test_acc1: float
    test_acc5: float
    test_loss: float | None = None
    train_loss: float | None = None
    n_parameters: int | None = None


def parse_log_txt(text: str, *, source: str = "log.txt") -> tuple[EpochStats, ...]:
    """Parse PackViT's log.txt (JSON per line); BadInput on a line that is not an epoch record."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            out.append(
                EpochStats(
                    epoch=int(d["epoch"]),
                    test_acc1=float(d["test_acc1"]),
                    test_acc5=float(d["test_acc5"]),
                    test_loss=float(d["test_loss"]) if "test_loss" in d else None,
                    train_loss=float(d["train_loss"]) if "train_loss" in d else None,
                    n_parameters=int(d["n_parameters"]) if "n_parameters" in d else None,
                )
            )
        except (ValueError, KeyError, TypeError) as e:
            raise BadInput(f"{source}:{number}: not a PackViT epoch record ({type(e).__name__}: {e})") from None
    if not out:
        raise BadInput(f"{source}: no epoch record")
    return tuple(out)


def measurements(path: Path) -> list[dict[str, Any]]:
    """The registry entry: top1 (%) of one training run (log.txt or the console log); a crash → BadInput."""
    if path.name == "log.txt":
        stats = parse_log_txt(read_text(path), source=str(path))
        best = max(s.test_acc1 for s in stats)
        return [
            {
                "metric": "top1",
                "value": best,
                "unit": "%",
                "note": f"best test_acc1 of {len(stats)} epoch(s) in log.txt",
            }
        ]
    log = parse_packvit_file(path)
    if log.error:
        raise BadInput(f"{path}: the run crashed: {log.error}")
    top1 = log.top1
    assert top1 is not None  # a log without accuracy and without error was rejected above
    which = "last 'Max accuracy' line" if log.max_accuracy is not None else "last '* Acc@1' line"
    return [{"metric": "top1", "value": top1, "unit": "%", "note": which}]
