"""What `labgrid-client` prints: places, a place's resources, a reservation token, who holds a place.

labgrid's command-line client is the interface the harness uses to a lab's coordinator (it is
the one labgrid documents for scripts). These readers take its text as it is printed by
labgrid 24 to 26: `-v places` and `-p PLACE show` (a block per place, then each matching or acquired
resource as a Python dict literal), `reserve --shell` (`export LG_TOKEN=...`), and its one-line
errors (`labgrid-client: Error: ...`).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any, Final

_PLACE_RE: Final = re.compile(r"^Place '(?P<name>[^']+)':\s*$")
_FIELD_RE: Final = re.compile(r"^  (?P<key>[a-z ]+):\s?(?P<value>.*)$")
_RESOURCE_RE: Final = re.compile(r"^(?P<kind>Acquired|Matching) resource '(?P<name>[^']+)' \((?P<path>[^)]+)\):\s*$")
_TOKEN_RE: Final = re.compile(r"^export LG_TOKEN=(?P<token>[A-Za-z0-9]+)\s*$", re.M)
_HOLDER_RE: Final = re.compile(r"already acquired by (?P<holder>[^\s/]+/[^\s.]+(?:\.[^\s.]+)*)\.(?:\s|$)")
_ERROR_RE: Final = re.compile(r"^(?:labgrid-client: )?(?:Server error: )?Error: (?P<message>.+)$", re.M)
_NO_COORDINATOR: Final = ("Could not connect to coordinator", "coordinator is unavailable")


@dataclass(frozen=True, kw_only=True)
class Resource:
    """One resource of a place: its class and parameters as the exporter published them."""

    name: str
    path: str  # exporter/group/class/name
    cls: str
    params: dict[str, Any]
    acquired: bool  # listed as acquired by the place (else only matching)
    avail: bool


@dataclass(frozen=True, kw_only=True)
class Place:
    """A place as the coordinator describes it."""

    name: str
    tags: dict[str, str] = field(default_factory=dict)
    acquired: str = ""  # "host/user" of the holder, "" when free
    reservation: str = ""  # token of the reservation it is allocated to
    resources: tuple[Resource, ...] = ()

    def network_service(self) -> Resource | None:
        return next((r for r in self.resources if r.cls == "NetworkService"), None)


def _tags(value: str) -> dict[str, str]:
    out = {}
    for pair in value.split():
        k, sep, v = pair.partition("=")
        if sep:
            out[k] = v
    return out


def parse_places(text: str) -> list[Place]:
    """`labgrid-client -v places` or `-p PLACE show`: every place block, with its resources."""
    places: list[dict[str, Any]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _PLACE_RE.match(line)
        if m:
            places.append({"name": m.group("name"), "tags": {}, "acquired": "", "reservation": "", "resources": []})
            i += 1
            continue
        r = _RESOURCE_RE.match(line)
        if r and places:
            body = []
            i += 1
            while i < len(lines) and lines[i].startswith("  "):
                body.append(lines[i])
                i += 1
            try:
                data = ast.literal_eval("\n".join(body).strip())
            except (SyntaxError, ValueError):
                data = {}
            if isinstance(data, dict):
                places[-1]["resources"].append(
                    Resource(
                        name=r.group("name"),
                        path=r.group("path"),
                        cls=str(data.get("cls", "")),
                        params=dict(data.get("params") or {}),
                        acquired=r.group("kind") == "Acquired",
                        avail=bool(data.get("avail", False)),
                    )
                )
            continue
        f = _FIELD_RE.match(line)
        if f and places:
            key, value = f.group("key"), f.group("value").strip()
            if key == "tags":
                places[-1]["tags"] = _tags(value)
            elif key == "acquired":
                places[-1]["acquired"] = "" if value in ("", "None") else value
            elif key == "reservation":
                places[-1]["reservation"] = value
        i += 1
    return [
        Place(
            name=p["name"],
            tags=p["tags"],
            acquired=p["acquired"],
            reservation=p["reservation"],
            resources=tuple(p["resources"]),
        )
        for p in places
    ]


def parse_token(text: str) -> str | None:
    """The token `labgrid-client reserve --shell` prints first (`export LG_TOKEN=...`)."""
    m = _TOKEN_RE.search(text)
    return m.group("token") if m else None


def holder(text: str) -> str | None:
    """ "host/user" from acquire's refusal ("Place X is already acquired by host/user. ...")."""
    m = _HOLDER_RE.search(text)
    return m.group("holder") if m else None


def error(text: str) -> str:
    """The client's own one-line error, without its prefix; the last line of text otherwise."""
    found = _ERROR_RE.findall(text)
    if found:
        return str(found[-1]).strip()
    rest = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return rest[-1] if rest else ""


def coordinator_unreachable(text: str) -> bool:
    """True when the client could not reach its coordinator at all."""
    return any(s in text for s in _NO_COORDINATOR)


def not_acquired(text: str) -> bool:
    """True for release's refusal of a place that is already free."""
    return bool(re.search(r"place \S+ is not acquired", text))


def other_user(text: str) -> bool:
    """True for release's refusal of a place another labgrid user holds."""
    return "is acquired by a different user" in text
