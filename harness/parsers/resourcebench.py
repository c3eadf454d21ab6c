"""ANT resourcebench output: `(N)Legacy mode elapsed time: Tms` / `(N)Resource API mode elapsed time: Tms`.

What T means depends on the script: the upstream scripts stamp the request once, at app load, so
T is the time since load (about 2000·N ms plus the round trip); the harness's per-send copies
stamp every request, so T is one round trip. The parser only reads the numbers; the caller names
the metric. A line whose T is NaN (a reply that carried no number) is kept, as NaN.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from harness.errors import BadInput

Mode = Literal["Legacy", "Resource API"]
LINE_RE: Final = re.compile(r"^\((\d+)\)(Legacy|Resource API) mode elapsed time: (-?\d+|NaN)ms$")
# What companion.py counts as a result line (it takes the pattern as text).
LINE_PATTERN: Final = LINE_RE.pattern
WARMUP: Final = 1
# A log whose values rise with every reply by at least this much (ms per reply counter) reads as
# the upstream scripts' time since load (≈ 2000 ms per reply), not as round trips.
SINCE_LOAD_MIN_MS_PER_REPLY: Final = 250.0


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One printed result line."""

    index: int  # the script's own counter, (N)
    mode: Mode
    ms: float  # NaN when the script printed NaN
    line: int  # line number in the log


def parse_text(text: str, *, source: str = "resourcebench log") -> list[Sample]:
    """Every result line of `text`, in order; a log mixing both modes → BadInput."""
    out: list[Sample] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        m = LINE_RE.match(raw.strip())
        if m is None:
            continue
        value = math.nan if m.group(3) == "NaN" else float(m.group(3))
        out.append(Sample(index=int(m.group(1)), mode=m.group(2), ms=value, line=number))  # type: ignore[arg-type]
    modes = {s.mode for s in out}
    if len(modes) > 1:
        raise BadInput(f"{source}: lines of both modes ({', '.join(sorted(modes))}) in one log")
    return out


def parse(path: str | Path) -> list[Sample]:
    p = Path(path)
    try:
        return parse_text(p.read_text(errors="replace"), source=str(p))
    except OSError as e:
        raise BadInput(f"{p}: cannot read: {e.strerror or e}") from None


def growth_per_reply(samples: Sequence[Sample]) -> float | None:
    """ms per reply by which the values grow, when they look like time since load; else None.

    Time since load (the upstream scripts stamp the request once) rises with every reply; round
    trips scatter around a level. Three or more finite values that rise at every reply, by at least
    SINCE_LOAD_MIN_MS_PER_REPLY on average, are taken for time since load.
    """
    pts = [(s.index, s.ms) for s in samples if math.isfinite(s.ms)]
    if len(pts) < 3 or any(b[0] <= a[0] or b[1] <= a[1] for a, b in itertools.pairwise(pts)):
        return None
    slope = (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
    return slope if slope >= SINCE_LOAD_MIN_MS_PER_REPLY else None


def without_warmup(samples: Sequence[Sample], warmup: int = WARMUP) -> list[Sample]:
    """The samples after the first `warmup` ones (first connection, first JIT-less parse)."""
    return list(samples[warmup:])


def measurements(path: Path) -> list[dict[str, Any]]:
    """Rows' measurements of one log: `rtt` per line after the warm-up (per-send logs)."""
    samples = parse(path)
    if not samples:
        raise BadInput(f"{path}: no '(N)… mode elapsed time: Tms' line")
    return [
        {"metric": "rtt", "value": s.ms, "unit": "ms", "note": f"sample {s.index} ({s.mode})"}
        for s in without_warmup(samples)
    ]
