"""ANT test/compatibility/streaming.js: a pass or a fail from its log and the GDP client's exit.

The script itself has no pass signal: it prints `Pipeline ready!` and an average PSS line and
exits 0 even when the camera element does not exist. A pass therefore needs all of:

1. `Pipeline ready! (<ip>:<port>)` in the app's output;
2. no GStreamer `CRITICAL` and no `Error received from element` anywhere in it;
3. an external GDP client (`tcpclientsrc ! gdpdepay ! identity eos-after=N ! fakesink`) that
   received its frames and exited 0;
4. the final `NNN.NN KB` line (the script ran to its end).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness.errors import BadInput

READY_RE: Final = re.compile(r"Pipeline ready! \(([^():\s]*):(\d+)\)")
PSS_RE: Final = re.compile(r"^(\d+\.\d{2}) KB$")
ERROR_RES: Final = (
    re.compile(r"CRITICAL"),
    re.compile(r"Error received from element"),
)


@dataclass(frozen=True, kw_only=True)
class StreamingCheck:
    """The verdict of one streaming.js run, with the evidence each criterion rests on."""

    pipeline_ready: bool
    address: str  # "<ip>:<port>" from the ready line, "" without one
    errors: tuple[str, ...]  # the offending lines, first few
    client_exit: int | None  # None: no client was run
    pss_kb: float | None  # the final line's value; only meaningful natively on a board
    reasons: tuple[str, ...]  # why it failed; empty on a pass

    @property
    def passed(self) -> bool:
        return not self.reasons

    def summary(self) -> str:
        if self.passed:
            return f"pass: pipeline ready at {self.address}, client received its frames, final PSS line present"
        return "fail: " + "; ".join(self.reasons)


def app_lines(text: str) -> list[str]:
    """The app's output lines, without the harness's `$ command` header and `# exit code` trailer."""
    return [
        ln.rstrip()
        for ln in text.splitlines()
        if ln.strip() and not ln.startswith("$ ") and not ln.startswith("# exit code")
    ]


# JerryScript's internal-error report, e.g. "ICE: Assertion 'lit_is_valid_cesu8_string (...)' failed at ...".
_ICE_RE: Final = re.compile(r"ICE: Assertion '[^']*' failed")


def check(app_log: str, client_exit: int | None, *, stderr: str = "") -> StreamingCheck:
    """Apply the pass rule to the app's output and the GDP client's exit status.

    `stderr` is the app's error stream when it was kept apart (a board's run): its lines count for
    the error rule, while the final PSS line must end the output itself.
    """
    lines = app_lines(app_log)
    ready = next((m for m in map(READY_RE.search, lines) if m is not None), None)
    errors = tuple(ln for ln in [*lines, *app_lines(stderr)] if any(r.search(ln) for r in ERROR_RES))
    final = PSS_RE.match(lines[-1].strip()) if lines else None
    reasons = []
    crash = next((m.group(0) for m in map(_ICE_RE.search, lines) if m is not None), "")
    if crash:
        # ANT's runtime itself stopped (JerryScript's internal assertion): its own behaviour, named.
        reasons.append(f"the runtime stopped on a JerryScript internal assertion ({crash[:160]})")
    if ready is None:
        reasons.append("no 'Pipeline ready!' line")
    if errors:
        reasons.append(f"{len(errors)} GStreamer error line(s), first: {errors[0][:160]}")
    if client_exit is None:
        reasons.append("no GDP client was run (no address to connect to)")
    elif client_exit != 0:
        reasons.append(f"the GDP client exited {client_exit} (frames not received)")
    if final is None:
        reasons.append("the final 'NNN.NN KB' line is missing (the script did not run to its end)")
    return StreamingCheck(
        pipeline_ready=ready is not None,
        address=f"{ready.group(1)}:{ready.group(2)}" if ready is not None else "",
        errors=errors[:5],
        client_exit=client_exit,
        pss_kb=float(final.group(1)) if final is not None else None,
        reasons=tuple(reasons),
    )


def ready_address(text: str) -> tuple[str, int] | None:
    """(host, port) of the `Pipeline ready!` line, once it appeared."""
    for ln in app_lines(text):
        m = READY_RE.search(ln)
        if m is not None:
            return m.group(1), int(m.group(2))
    return None


_EXIT_RE: Final = re.compile(r"^# exit code (-?\d+)$", re.MULTILINE)


def client_exit_code(client_log: str) -> int | None:
    """The exit code the harness recorded at the end of the client's log."""
    codes = _EXIT_RE.findall(client_log)
    return int(codes[-1]) if codes else None


def measurements(path: Path) -> list[dict[str, Any]]:
    """`passed` of one app log whose GDP client log sits beside it (`<name>.client.log`)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise BadInput(f"{path}: cannot read: {e.strerror or e}") from None
    client = path.with_name(path.stem + ".client.log")
    exit_code = client_exit_code(client.read_text(errors="replace")) if client.is_file() else None
    c = check(text, exit_code)
    return [{"metric": "passed", "value": 1.0 if c.passed else 0.0, "unit": "count", "note": c.summary()}]
