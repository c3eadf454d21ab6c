"""The lab inventory (boards.toml): which boards exist, what they are, and how to reach them.

boards.toml is local to a lab and never committed (boards.example.toml is): it names hosts, users
and key files. Those credentials stay inside `Board` (hidden from its repr) and are never part of
`Board.public()`, the record that goes into results, logs and reports.
"""

from __future__ import annotations

import math
import os
import posixpath
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal, cast, get_args

from harness.core.fsio import read_regular
from harness.core.strict_toml import StrictTable, did_you_mean, type_name
from harness.errors import Blocked, ManifestError
from harness.options import EnvSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SCHEMA_VERSION: Final = 1
DEFAULT_PATH: Final = "boards.toml"
ENV_PATH: Final = "ANT_KPI_BOARDS"

Arch = Literal["armhf", "arm64", "x86_64"]
TransportKind = Literal["ssh", "local"]
ARCHES: Final[tuple[str, ...]] = get_args(Arch)
TRANSPORTS: Final[tuple[str, ...]] = get_args(TransportKind)

# The nine boards the seed procedure lists for KPI 6; other models are accepted as extra boards.
SEED_MODELS: Final[tuple[str, ...]] = (
    "Raspberry Pi 2",
    "Raspberry Pi 3",
    "Raspberry Pi 4",
    "Raspberry Pi 5",
    "ODROID XU3",
    "ODROID XU4",
    "Jetson TX1",
    "Jetson TX2",
    "Jetson Xavier",
)
# kpis.toml targets and their arch; load_boards(targets=...) takes the manifest's own table instead.
DEFAULT_TARGETS: Final[Mapping[str, str]] = {"rpi2": "armhf", "arm64": "arm64", "x86_64": "x86_64"}
CAMERA_KEYWORDS: Final[tuple[str, ...]] = ("rpi", "nvidia", "test")
PUBLIC_FIELDS: Final[tuple[str, ...]] = ("name", "model", "arch", "target", "transport", "tags")
SSH_ONLY: Final[tuple[str, ...]] = (
    "host",
    "port",
    "user",
    "identity_file",
    "known_hosts",
    "connect_timeout_s",
)

LABGRID_KEYS: Final[tuple[str, ...]] = ("place", "reserve", "coordinator")
# Tag keys as labgrid's client accepts them (labgrid.remote.common.TAG_KEY); values without space
# or '=', which `labgrid-client reserve k=v` could not carry.
_TAG_KEY_RE: Final = re.compile(r"^[a-z][a-z0-9_]+$")
_TAG_VAL_RE: Final = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_PLACE_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_COORDINATOR_RE: Final = re.compile(r"^[A-Za-z0-9_.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")

# The longest timeout a board entry may set (a week): beyond it a value is a typo, and inf or NaN
# would reach `timeout` on the board as text it cannot read.
MAX_TIMEOUT_S: Final = 7 * 24 * 3600.0
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_VIDEO_RE: Final = re.compile(r"^/dev/video[0-9]+$")
_IFACE_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,15}$")
_USER_RE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_HOST_RE: Final = re.compile(r"^[A-Za-z0-9_.:%\-]+$")


@dataclass(frozen=True, kw_only=True)
class Board:
    """One board of the lab; `user` and `identity_file` are credentials and stay out of repr and public()."""

    name: str
    model: str
    arch: Arch
    target: str
    transport: TransportKind
    host: str = ""
    port: int = 22
    user: str = field(default="", repr=False)
    identity_file: str = field(default="", repr=False)
    known_hosts: str = ""
    connect_timeout_s: float = 10.0
    command_timeout_s: float = 3600.0
    camera_source: str | None = None
    # The network interface whose address streaming.js serves on (upstream hard-codes eth0).
    interface: str = "eth0"
    # "" is the per-user default, /tmp/ant-kpi-<uid> on the board (env.transport.prepare_work_dir).
    work_dir: str = ""
    tags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # A board of a labgrid lab: the place to acquire, or the tags to reserve one of several
    # identical places by; its SSH address then comes from the place's NetworkService.
    place: str = ""
    reserve: tuple[tuple[str, str], ...] = ()
    coordinator: str = ""  # HOST[:PORT]; "" = $LG_COORDINATOR, else labgrid's default

    @property
    def labgrid(self) -> bool:
        """True when the board is reached through a labgrid place (acquired for the run)."""
        return bool(self.place or self.reserve)

    def reserve_filter(self) -> str:
        """The reservation's tags as labgrid writes them: k=v k=v."""
        return " ".join(f"{k}={v}" for k, v in self.reserve)

    @property
    def seed_model(self) -> bool:
        """True for one of the nine boards the seed procedure lists."""
        return self.model in SEED_MODELS

    @property
    def address(self) -> str:
        """Where the board is, for messages: host:port over ssh, "this machine" when local."""
        if self.transport != "ssh":
            return "this machine"
        if self.host:
            return f"{self.host}:{self.port}"
        return f"labgrid place {self.place}" if self.place else f"a labgrid place tagged {self.reserve_filter()}"

    def public(self) -> dict[str, Any]:
        """The board as provenance: name, model, arch, target, transport, tags (no credentials)."""
        record: dict[str, Any] = {
            "name": self.name,
            "model": self.model,
            "arch": self.arch,
            "target": self.target,
            "transport": self.transport,
            "tags": list(self.tags),
        }
        if self.labgrid:
            record["labgrid_place"] = self.place
            if self.reserve:
                record["labgrid_reserve"] = self.reserve_filter()
        return record


def inventory_path(path: str | os.PathLike[str] | None = None, *, env: EnvSettings | None = None) -> Path:
    """The inventory file: `path` (--boards), else $ANT_KPI_BOARDS, else ./boards.toml."""
    if path is not None:
        return Path(path)
    if env is not None and env.boards is not None:
        return env.boards
    return Path(DEFAULT_PATH)


def load_boards(
    path: str | os.PathLike[str] | None = None, *, targets: Mapping[str, str] | None = None
) -> dict[str, Board]:
    """Read boards.toml strictly; `targets` maps kpis.toml target names to their arch."""
    p = inventory_path(path)
    try:
        text = read_regular(p).decode("utf-8")
    except FileNotFoundError:
        raise Blocked(
            f"no board inventory at {p}",
            f"copy boards.example.toml to {DEFAULT_PATH} and describe the lab's boards, or set {ENV_PATH}",
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(p, "", f"cannot read: {getattr(e, 'strerror', None) or e}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(p, "", f"not valid TOML: {e}") from None
    return parse_boards(raw, p, targets=targets)


def parse_boards(raw: Mapping[str, Any], path: Path, *, targets: Mapping[str, str] | None = None) -> dict[str, Board]:
    """Check an already-parsed inventory document; errors name `path` and the key."""
    known_targets = dict(DEFAULT_TARGETS if targets is None else targets)
    top = StrictTable(path, "", raw)
    top.only(("schema", "boards"))
    schema = top.get("schema", int, required=False)
    if schema is not None and schema != SCHEMA_VERSION:
        raise ManifestError(path, "schema", f"version {schema} is not supported (this harness reads {SCHEMA_VERSION})")
    tables = top.get("boards", dict, required=True)
    boards: dict[str, Board] = {}
    for name, table in tables.items():
        if not _NAME_RE.match(name):
            raise ManifestError(path, f"boards.{name}", "board names use letters, digits, '_', '-', '.'")
        boards[name] = _read_board(name, StrictTable(path, f"boards.{name}", table), known_targets)
    return boards


def boards_for_target(boards: Mapping[str, Board], target: str) -> list[Board]:
    """The boards of one kpis.toml target, by name."""
    return [b for _, b in sorted(boards.items()) if b.target == target]


# -- strict reading ------------------------------------------------------------------------------


_KNOWN_KEYS: Final[tuple[str, ...]] = (
    "model",
    "arch",
    "target",
    "transport",
    *SSH_ONLY,
    "command_timeout_s",
    "camera_source",
    "interface",
    "work_dir",
    "tags",
    *LABGRID_KEYS,
)


def _seconds(t: StrictTable, key: str) -> float | None:
    """A timeout in seconds: a finite number above 0 and at most MAX_TIMEOUT_S (None when absent)."""
    value = t.get(key, float, required=False)
    if value is None:
        return None
    if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT_S:
        raise t.error(key, f"must be a number of seconds above 0 and at most {MAX_TIMEOUT_S:g}, got {value!r}")
    return float(value)


def _work_dir(t: StrictTable) -> str:
    """work_dir as given, normalised; '' when absent (the per-user default on the board)."""
    given = t.get("work_dir", str, required=False)
    if given is None:
        return ""
    parts = PurePosixPath(given).parts
    if not given.startswith("/") or ".." in parts or any(c in given for c in "\0\n\r"):
        raise t.error("work_dir", "must be an absolute directory on the board, without '..' (it is cleaned up)")
    normal = posixpath.normpath("/" + given.lstrip("/"))
    if normal == "/" or len(PurePosixPath(normal).parts) < 2:
        raise t.error("work_dir", "must be a directory below '/', not '/' itself")
    return normal


def _read_board(name: str, t: StrictTable, targets: Mapping[str, str]) -> Board:
    t.only(_KNOWN_KEYS)
    notes: list[str] = []
    model = t.get("model", str, required=True).strip()
    if not model:
        raise t.error("model", "must not be empty")
    if model not in SEED_MODELS:
        notes.append(
            f"model {model!r} is not one of the nine seed boards{did_you_mean(model, SEED_MODELS)}; "
            "it counts as an extra board"
        )
    arch = t.get("arch", str, required=True)
    if arch not in ARCHES:
        raise t.error("arch", f"{arch!r} is not one of {', '.join(ARCHES)}{did_you_mean(arch, ARCHES)}")
    target = t.get("target", str, required=True)
    if target not in targets:
        names = tuple(targets)
        raise t.error(
            "target", f"{target!r} is not a kpis.toml target ({', '.join(names)}){did_you_mean(target, names)}"
        )
    if targets[target] != arch:
        raise t.error("arch", f"{arch!r} does not match target {target!r}, whose arch is {targets[target]!r}")
    transport = t.get("transport", str, required=True)
    if transport not in TRANSPORTS:
        raise t.error(
            "transport", f"{transport!r} is not one of {', '.join(TRANSPORTS)}{did_you_mean(transport, TRANSPORTS)}"
        )

    lab = _labgrid_keys(t, transport)
    ssh: dict[str, Any] = {}
    if transport == "ssh" and lab:
        # The place's NetworkService gives address, port and user when the place is acquired.
        for key in ("host", "port"):
            if key in t.table:
                raise t.error(key, "comes from the labgrid place's NetworkService: leave it out, or drop place/reserve")
    if transport == "ssh":
        host = t.get("host", str, required=not lab) or ""
        if not lab and (not host or not _HOST_RE.match(host) or host.startswith("-")):
            raise t.error("host", "must be a host name or an IP address")
        ssh["host"] = host
        port = t.get("port", int, required=False)
        if port is not None and not 1 <= port <= 65535:
            raise t.error("port", "must be a TCP port (1-65535)")
        ssh["port"] = 22 if port is None else port
        user = t.get("user", str, required=False)
        if user is not None and not _USER_RE.match(user):
            # The value is not echoed: a user name is a credential.
            raise t.error("user", "must be a plain user name (letters, digits, '_', '-', '.')")
        ssh["user"] = user or ""
        for key in ("identity_file", "known_hosts"):
            v = t.get(key, str, required=False)
            if v is not None and not v.strip():
                raise t.error(key, "must not be empty (leave the key out instead)")
            ssh[key] = os.path.expanduser(v) if v else ""
        timeout = _seconds(t, "connect_timeout_s")
        ssh["connect_timeout_s"] = 10.0 if timeout is None else timeout
    else:
        for key in SSH_ONLY:
            if key in t.table:
                raise t.error(key, f"only for transport = 'ssh' (this board's transport is {transport!r})")

    command_timeout = _seconds(t, "command_timeout_s")
    camera = t.get("camera_source", str, required=False)
    if camera is not None and camera not in CAMERA_KEYWORDS and not _VIDEO_RE.match(camera):
        raise t.error(
            "camera_source",
            f"{camera!r} is not one of {', '.join(CAMERA_KEYWORDS)} or a /dev/videoN "
            f"path{did_you_mean(camera, CAMERA_KEYWORDS)}",
        )
    interface = t.get("interface", str, required=False)
    if interface is not None and not _IFACE_RE.match(interface):
        raise t.error("interface", "must be a network interface name (letters, digits, '.', '_', '-'; ≤ 15)")
    work_dir = _work_dir(t)
    tags = t.get("tags", list, required=False) or []
    for i, tag in enumerate(tags):
        if not isinstance(tag, str):
            raise t.error(f"tags[{i}]", f"must be a string, not {type_name(tag)}")
    return Board(
        name=name,
        model=model,
        arch=cast(Arch, arch),
        target=target,
        transport=cast(TransportKind, transport),
        **ssh,
        command_timeout_s=3600.0 if command_timeout is None else float(command_timeout),
        camera_source=camera,
        interface=interface or "eth0",
        work_dir=work_dir,
        tags=tuple(tags),
        notes=tuple(notes),
        **lab,
    )


def _labgrid_keys(t: StrictTable, transport: str) -> dict[str, Any]:
    """place / reserve / coordinator, checked: a labgrid board is an ssh board without a host."""
    present = [k for k in LABGRID_KEYS if k in t.table]
    if not present:
        return {}
    if transport != "ssh":
        raise t.error(
            present[0], f"only for transport = 'ssh' (a labgrid place gives an SSH address), not {transport!r}"
        )
    place = t.get("place", str, required=False)
    reserve = t.get("reserve", dict, required=False)
    if place is None and reserve is None:
        raise t.error("coordinator", "names a labgrid coordinator but no place or reserve: add one of them")
    if place is not None and reserve is not None:
        raise t.error("reserve", "give either place (one named place) or reserve (tags of identical places), not both")
    out: dict[str, Any] = {}
    if place is not None:
        if not _PLACE_RE.match(place):
            raise t.error("place", "must be a labgrid place name (letters, digits, '_', '-', '.')")
        out["place"] = place
    if reserve is not None:
        if not reserve:
            raise t.error("reserve", 'names no tag: give tags such as { board = "rpi2" }')
        pairs = []
        for k, v in reserve.items():
            if not isinstance(v, str):
                raise t.error(f"reserve.{k}", f"must be a string, not {type_name(v)}")
            if not _TAG_KEY_RE.match(k):
                raise t.error(f"reserve.{k}", "a labgrid tag key is lower-case letters, digits and '_', from a letter")
            if not _TAG_VAL_RE.match(v):
                raise t.error(f"reserve.{k}", "a labgrid tag value is letters, digits, '_', '.', ':', '-'")
            pairs.append((k, v))
        out["reserve"] = tuple(sorted(pairs))
    coordinator = t.get("coordinator", str, required=False)
    if coordinator is not None:
        if not _COORDINATOR_RE.match(coordinator):
            raise t.error("coordinator", "must be HOST or HOST:PORT of a labgrid coordinator")
        out["coordinator"] = coordinator
    return out
