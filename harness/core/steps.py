"""Plan steps: the unit the dry run prints and the runner executes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

StepKind = Literal["source", "image", "build", "deploy", "measure", "parse", "evaluate", "fetch", "train", "convert"]
# Where a step runs: the host itself, inside a container image, under QEMU user mode, or on a board.
Where = Literal["host", "image", "qemu", "board"]
Mode = Literal["smoke", "measure"]


@dataclass(frozen=True, kw_only=True)
class Step:
    """One ordered step of a KPI plan. `key` is a content hash of everything that defines it."""

    id: str
    kpi: str
    kind: StepKind
    where: Where
    description: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()
    image: str = ""
    target: str = ""
    variant: str = ""
    workload: str = ""
    repeat: int | None = None
    fidelity: str = ""
    notes: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    # Order only: run after these and read whatever they produced, but not blocked by them
    # (e.g. a deploy that stages every model it finds and leaves the missing ones to their rows).
    after: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    key: str = ""
    # Run every time (cheap, idempotent): e.g. parsing whatever measurements have completed so far.
    always: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def step_key(*parts: object) -> str:
    """A stable content hash of a step's defining inputs (sorted JSON, sha256, 16 hex digits)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
