"""A labgrid lab on loopback: a coordinator, an exporter, and namespace SSH boards as places.

Each namespace board (tests/netns_board.py) is exported as a NetworkService and made a place
`nsboard-<i>` tagged `board=<board tag>` and `lab=ci`. The coordinator keeps its state in the
lab's own directory; `close` stops both daemons and takes the boards down.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.env.lab import labgrid
from tests import netns_board

START_TIMEOUT_S = 30.0


@dataclass(kw_only=True)
class LabgridLab:
    root: Path
    coordinator: str
    client: labgrid.Client  # an administrator's client (creates places; not a run)
    boards: list[netns_board.NetnsBoard]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def place(self, i: int) -> str:
        return f"nsboard-{i}"

    def holders(self) -> dict[str, str]:
        """Who holds each of the lab's places ("" when free)."""
        names = {self.place(i) for i in range(len(self.boards))}
        return {p.name: p.acquired for p in self.client.places() if p.name in names}

    def inventory(self, path: Path, entries: Sequence[tuple[str, str, str, str]]) -> Path:
        """boards.toml with one labgrid board per (name, model, arch, target), board i on place i."""
        text = ""
        for i, (name, model, arch, target) in enumerate(entries):
            b = self.boards[i]
            text += (
                f'[boards.{name}]\nmodel = "{model}"\narch = "{arch}"\ntarget = "{target}"\ntransport = "ssh"\n'
                f'place = "{self.place(i)}"\ncoordinator = "{self.coordinator}"\n'
                f'identity_file = "{b.client_key}"\nknown_hosts = "{b.known_hosts}"\n'
                f'connect_timeout_s = 3\ncamera_source = "test"\ninterface = "{b.board_if}"\n'
                f'work_dir = "{b.root / "board-work"}"\n\n'
            )
        path.write_text(text)
        return path

    def close(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        for b in self.boards:
            b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"labgrid-coordinator did not listen on 127.0.0.1:{port}")


def _wait_resources(client: labgrid.Client, n: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        res = client.call("resources")
        if res.returncode == 0 and res.stdout.count("NetworkService") >= n:
            return
        time.sleep(0.2)
    raise RuntimeError("the exporter's resources did not reach the coordinator")


def start(root: Path, n: int = 2, *, board_tag: str = "rpi2") -> LabgridLab:
    """n namespace boards, a coordinator on a free loopback port, an exporter, n places."""
    bindir = Path(labgrid.client_path()).parent
    root.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    coordinator = f"127.0.0.1:{port}"
    lab = LabgridLab(
        root=root,
        coordinator=coordinator,
        client=labgrid.Client(coordinator=coordinator, username="admin"),
        boards=[],
    )
    try:
        lab.boards += [netns_board.start(root / f"ns{i}") for i in range(n)]
        (root / "coordinator").mkdir(exist_ok=True)
        lab.procs.append(
            subprocess.Popen(
                [str(bindir / "labgrid-coordinator"), "-l", coordinator],
                cwd=root / "coordinator",  # it keeps places.yaml and resources in its working directory
                stdout=(root / "coordinator.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        _wait_port(port)
        config = root / "exporter.yaml"
        config.write_text(
            "".join(
                f"nsboard-{i}:\n  NetworkService:\n    address: {b.board_ip}\n    username: root\n    port: {b.port}\n"
                for i, b in enumerate(lab.boards)
            )
        )
        exporter = [str(bindir / "labgrid-exporter"), "-c", coordinator, "-n", "testlab", "--hostname", "127.0.0.1"]
        lab.procs.append(
            subprocess.Popen(
                [*exporter, str(config)], stdout=(root / "exporter.log").open("wb"), stderr=subprocess.STDOUT
            )
        )
        _wait_resources(lab.client, n)
        for i in range(n):
            for args in (
                ("create",),
                ("add-match", f"testlab/nsboard-{i}/*"),
                ("set-tags", f"board={board_tag}", "lab=ci"),
            ):
                res = lab.client.call("-p", lab.place(i), *args)
                if res.returncode != 0:
                    raise RuntimeError(f"labgrid-client {' '.join(args)}: {res.stdout}{res.stderr}")
    except BaseException:
        lab.close()
        raise
    return lab


@contextlib.contextmanager
def running(root: Path, n: int = 2) -> Iterator[LabgridLab]:
    lab = start(root, n)
    try:
        yield lab
    finally:
        lab.close()
