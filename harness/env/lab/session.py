"""Boards inside a run: `--target <board>` resolution, one lease and one transport per board.

A board named on the command line stands for its kpis.toml target (rpi2, arm64, ...) in the plan;
the run leases it on first use (the lease ends with the run's process) and talks to it only
through the transport protocols.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import tarfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from harness.core.manifest import Manifest
from harness.core.runner import Run
from harness.env.lab.inventory import Board, inventory_path, load_boards
from harness.env.lab.lease import lease
from harness.env.transport import LocalTransport, SshTransport, Transport
from harness.errors import BadInput, Blocked
from harness.options import EnvSettings


def resolve_targets(
    manifest: Manifest, names: Sequence[str], boards_path: Path | None, env: EnvSettings | None = None
) -> tuple[list[str], dict[str, Board]]:
    """Split --target values into kpis.toml targets and boards (each board → its target)."""
    targets: list[str] = []
    boards: dict[str, Board] = {}
    inventory: dict[str, Board] | None = None
    for name in names:
        if name in manifest.targets:
            targets.append(name)
            continue
        if inventory is None:
            path = inventory_path(boards_path, env=env)
            if not path.exists():
                raise BadInput(
                    f"--target {name!r} is neither a target of {manifest.path} "
                    f"({', '.join(manifest.targets)}) nor a board: no inventory at {path} "
                    "(copy boards.example.toml to boards.toml, or pass --boards PATH)"
                )
            inventory = load_boards(path, targets={t.name: t.arch for t in manifest.targets.values()})
        if name not in inventory:
            raise BadInput(
                f"--target {name!r}: no such target or board; boards in the inventory: {', '.join(inventory) or 'none'}"
            )
        board = inventory[name]
        if board.target in boards:
            raise BadInput(
                f"boards {boards[board.target].name} and {name} are both {board.target}: "
                "measure one board per target in a run"
            )
        boards[board.target] = board
        targets.append(board.target)
    return targets, boards


TRANSPORTS: Final[Mapping[str, Callable[[Board], Transport]]] = {
    "ssh": SshTransport,
    "local": LocalTransport,
}


def transport_for(board: Board) -> Transport:
    """The driver for a board's `transport`."""
    try:
        make = TRANSPORTS[board.transport]
    except KeyError:
        raise BadInput(f"board {board.name}: unknown transport {board.transport!r}") from None
    return make(board)


@dataclass(kw_only=True)
class Lab:
    """The boards of one run: which board stands for which target, their leases and transports.

    A board is leased on first use and stays leased until the run ends (`close`), or until its
    process dies: the lease is a lock the kernel releases.
    """

    boards: Mapping[str, Board] = field(default_factory=dict)  # target -> board
    leases_dir: Path
    run_id: str
    ttl_s: float
    wait: bool = False
    # With wait: the longest a board held by another run is waited for (None: no limit).
    wait_timeout_s: float | None = None
    # Where messages go (the run's console), e.g. places released for a run that was killed.
    say: Callable[[str], None] = print
    # board name -> (the board as reached, its transport), once the board is held
    _held: dict[str, tuple[Board, Transport]] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    # Boards are measured on threads of their own: one lock for the tables, one per board for
    # taking it (a board being waited for does not hold up another).
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _board_locks: dict[str, threading.Lock] = field(default_factory=dict)
    _swept: bool = False

    def board_for(self, target: str) -> Board:
        board = self.boards.get(target)
        if board is None:
            raise Blocked(
                f"a measure run on {target} needs a board",
                f"describe one in boards.toml (see boards.example.toml) and pass --target <board>; "
                f"smoke mode runs {target} here under QEMU",
            )
        return board

    def session(self, target: str) -> tuple[Board, Transport]:
        """The target's board and its transport; the board is held for the rest of this run: by the
        harness's own lease, or for a labgrid board by acquiring its place through the coordinator."""
        board = self.board_for(target)
        with self._lock:
            board_lock = self._board_locks.setdefault(board.name, threading.Lock())
        with board_lock:
            with self._lock:
                if board.name in self._held:
                    return self._held[board.name]
            held = contextlib.ExitStack()
            try:
                resolved = self._take(board, held)
                transport = transport_for(resolved)
            except BaseException:
                held.close()
                raise
            with self._lock:
                self._stack.enter_context(held)
                self._held[board.name] = (resolved, transport)
            return resolved, transport

    def _take(self, board: Board, stack: contextlib.ExitStack) -> Board:
        """Hold the board on `stack`; the board as reached (a labgrid place's address filled in)."""
        if not board.labgrid:
            stack.enter_context(
                lease(
                    board.name,
                    leases_dir=self.leases_dir,
                    run_id=self.run_id,
                    ttl_s=self.ttl_s,
                    wait=self.wait,
                    wait_timeout_s=self.wait_timeout_s,
                )
            )
            return board
        from harness.env.lab import labgrid

        with self._lock:
            if not self._swept:  # places left acquired by runs of this machine that were killed
                self._swept = True
                labgrid.sweep(self.leases_dir, say=self.say)
        got = stack.enter_context(
            labgrid.hold(
                board,
                run_id=self.run_id,
                leases_dir=self.leases_dir,
                wait=self.wait,
                wait_timeout_s=self.wait_timeout_s,
            )
        )
        return dataclasses.replace(board, host=got.host, port=got.port, user=board.user or got.user, place=got.place)

    def close(self) -> None:
        with self._lock:
            self._held.clear()
        self._stack.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lab_of(run: Run) -> Lab:
    lab = run.lab
    if not isinstance(lab, Lab):
        lab = Lab(
            leases_dir=run.cache_dir / "leases",
            run_id=run.run_id,
            ttl_s=run.manifest.defaults.timeout_s * 4,
            say=run.console.print,
        )
        run.lab = lab
    return lab


def board_for(run: Run, target: str) -> Board:
    return lab_of(run).board_for(target)


def session(run: Run, target: str) -> tuple[Board, Transport]:
    """The target's board and its transport; the board is leased for the rest of this run."""
    return lab_of(run).session(target)


def put_tree(transport: Transport, local_dir: Path, remote_dir: str, work: Path) -> str:
    """Copy a directory to the board as one sha256-checked tar, unpacked there; returns the remote dir."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(local_dir, arcname=".")
    archive = work / f"{local_dir.name}.tar"
    archive.write_bytes(buf.getvalue())
    transport.put(archive, f"{remote_dir}.tar")  # sha256 checked on the board
    dest = transport.remote_path(remote_dir)
    res = transport.run(["mkdir", "-p", dest], timeout=60)
    if res.exit_code == 0:
        res = transport.run(["tar", "-xf", transport.remote_path(f"{remote_dir}.tar"), "-C", dest], timeout=300)
    if res.exit_code != 0:
        raise Blocked(
            f"board {transport.name}: cannot unpack {local_dir.name} ({res.stderr.strip()[:200]})",
            "the board needs tar and room in its work_dir",
        )
    return dest


def public_identity(board: Board, transport: Transport) -> dict[str, Any]:
    """The board as provenance: what it says of itself, and what the inventory calls it."""
    probed = transport.identity()
    ident = {**probed, **board.public()}
    # The inventory's model names the board for the KPI; what the hardware reports stays beside it
    # ("" when it reports none), so a count can check that the two agree.
    ident["hardware_model"] = str(probed.get("model") or "")
    return ident
