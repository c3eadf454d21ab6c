"""Parsers of tool output, by name: each turns one log file into measurements.

A parser returns a list of dicts with the keys `metric`, `value` (float) and `unit`, and
optionally `note`; the caller (a procedure, or `ant-kpi ingest`) adds run, variant, workload,
target, fidelity and provenance to make result rows. A bad file raises BadInput (one line).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from harness.errors import BadInput
from harness.parsers import admm, benchmark_model, packvit, patch_aware, resourcebench, streaming, vela, vminfo

Parser = Callable[[Path], list[dict[str, Any]]]

PARSERS: Final[dict[str, Parser]] = {
    "vminfo": vminfo.measurements,
    "benchmark_model": benchmark_model.measurements,
    "admm": admm.measurements,
    "vela": vela.measurements,
    "resourcebench": resourcebench.measurements,
    "streaming": streaming.measurements,
    "patch_aware": patch_aware.measurements,
    "packvit": packvit.measurements,
}


def get_parser(name: str) -> Parser:
    """The parser registered as `name`; an unknown name → BadInput with a suggestion."""
    try:
        return PARSERS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(PARSERS), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise BadInput(f"no parser {name!r}{hint}; parsers: {', '.join(sorted(PARSERS))}") from None
