"""Boards inside a run: `--target <board>` resolution, one lease and one transport per board.

A board named on the command line stands for its kpis.toml target (rpi2, arm64, ...) in the plan;
the run leases it on first use (the lease ends with the run's process) and talks to it only
through the transport protocols.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.boards import Board, inventory_path, load_boards
from harness.errors import BadInput, Blocked
from harness.lease import lease
from harness.manifest import Manifest
from harness.runner import Run
from harness.transport import Transport, transport_for


def resolve_targets(
    manifest: Manifest, names: Sequence[str], boards_path: Path | None
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
            path = inventory_path(boards_path)
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


def board_for(run: Run, target: str) -> Board:
    board: Board | None = run.options.get("boards", {}).get(target)
    if board is None:
        raise Blocked(
            f"a measure run on {target} needs a board",
            f"describe one in boards.toml (see boards.example.toml) and pass --target <board>; "
            f"smoke mode runs {target} here under QEMU",
        )
    return board


def session(run: Run, target: str) -> tuple[Board, Transport]:
    """The target's board and its transport; the board is leased for the rest of this run."""
    board = board_for(run, target)
    sessions: dict[str, Transport] = run.options.setdefault("transports", {})
    if board.name not in sessions:
        stack: contextlib.ExitStack = run.options["exit_stack"]
        stack.enter_context(
            lease(
                board.name,
                leases_dir=run.cache_dir / "leases",
                run_id=run.run_id,
                ttl_s=run.manifest.defaults.timeout_s * 4,
                wait=bool(run.options.get("wait")),
            )
        )
        sessions[board.name] = transport_for(board)
    return board, sessions[board.name]


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
    # The inventory's model names the board for the KPI; what the hardware reports stays visible.
    if probed.get("model") and probed["model"] != board.model:
        ident["hardware_model"] = probed["model"]
    return ident
