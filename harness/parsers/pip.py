"""pip's failure, named from its own output: a certificate the interpreter does not trust, a host
name that does not resolve, a refused or unreachable connection, a pinned version that does not
exist (for that interpreter and platform), or a conflict with a constraint. pip itself ends every
one of them with "No matching distribution found", which hides the cause."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["certificate", "dns", "refused", "unreachable", "constraint", "no such version", "unknown"]


@dataclass(frozen=True, kw_only=True)
class PipCause:
    kind: Kind
    text: str  # the cause, with the line of pip's output that shows it
    fix: str


_RULES: Final[tuple[tuple[Kind, re.Pattern[str], str], ...]] = (
    (
        "certificate",
        re.compile(r"CERTIFICATE_VERIFY_FAILED[^\n]*?certificate verify failed: ([^\n(']+)"),
        "the interpreter does not trust the index's certificate (a TLS-inspecting proxy?): let the host's pip "
        "fill a wheelhouse (`ant-kpi images wheelhouse NAME`), or give the proxy's CA to this pip",
    ),
    (
        "dns",
        re.compile(r"Failed to establish a new connection: \[Errno -[23]\] ([^'\n]+)"),
        "the index's host name does not resolve here: check the index URL (pip config list) and DNS, or "
        "fill the wheelhouse on a connected machine and pass it with ANT_KPI_WHEELHOUSE",
    ),
    (
        "refused",
        re.compile(r"Failed to establish a new connection: \[Errno 111\] ([^'\n]+)"),
        "nothing listens at the index's address: check the index URL and proxy (pip config list)",
    ),
    (
        "unreachable",
        re.compile(r"(Network is unreachable|timed out|Connection reset by peer)"),
        "the index cannot be reached from here: a proxy (HTTPS_PROXY), or a wheelhouse filled elsewhere",
    ),
    (
        "constraint",
        re.compile(r"The user requested \(constraint\) ([^\n]+)"),
        "a pip constraint on this machine excludes the pinned version: see `pip config list` (constraint)",
    ),
    (
        "no such version",
        re.compile(r"No matching distribution found for ([^\n]+)"),
        "the index has no wheel of that version for the image's Python and platform: check the pin, or "
        "give the wheel in a folder through ANT_KPI_WHEELHOUSE",
    ),
)


def classify_pip_error(output: str) -> PipCause:
    """The first cause pip's output shows, in the order above (a network cause beats the
    "No matching distribution" it ends with)."""
    for kind, rx, fix in _RULES:
        m = rx.search(output)
        if m:
            detail = " ".join(m.group(1).split()).rstrip(" .:")
            words = {
                "certificate": f"certificate not trusted ({detail})",
                "dns": f"index host does not resolve ({detail})",
                "refused": f"connection refused ({detail})",
                "unreachable": f"index unreachable ({detail})",
                "constraint": f"a pip constraint excludes the pin ({detail})",
                "no such version": f"no matching wheel for {detail}",
            }
            return PipCause(kind=kind, text=words[kind], fix=fix)
    last = next((ln.strip() for ln in reversed(output.splitlines()) if ln.strip().startswith("ERROR:")), "")
    return PipCause(kind="unknown", text=last or "pip failed (no ERROR line)", fix="see pip's output in the log")
