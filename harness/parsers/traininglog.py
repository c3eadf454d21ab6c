"""What the logs of the PyTorch training scripts share: an uncaught exception and the training time.

ADMM_baseline, PackViT and patch_aware_train.py all print a Python traceback when they crash, and
the last two end a completed run with `Training time [D days, ]H:MM:SS` (DeiT's engine).
"""

from __future__ import annotations

import re
from typing import Final

_TRACEBACK: Final = "Traceback (most recent call last):"
_EXC_RE: Final = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_.]*)(?:Error|Exception|Interrupt|Exit)\b.*")
_TIME_RE: Final = re.compile(
    r"^Training time (?:(?P<days>[0-9]+) days?, )?(?P<h>[0-9]+):(?P<m>[0-9]{2}):(?P<s>[0-9]{2})"
)


class Traceback:
    """Fed the lines no other pattern took, keeps the exception line of the last traceback."""

    def __init__(self) -> None:
        self.error = ""
        self._inside = False

    def feed(self, line: str) -> None:
        if line.startswith(_TRACEBACK):
            self._inside = True
        elif self._inside and (m := _EXC_RE.match(line)):
            self.error, self._inside = m.group()[:200], False


def training_seconds(line: str) -> int | None:
    """The seconds of a `Training time …` line; None for any other line."""
    m = _TIME_RE.match(line)
    if m is None:
        return None
    return int(m["days"] or 0) * 86400 + int(m["h"]) * 3600 + int(m["m"]) * 60 + int(m["s"])
