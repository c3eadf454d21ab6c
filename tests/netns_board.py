"""A test board: Debian's sshd inside its own network namespace, reached over a veth pair.

The namespace shares this machine's filesystem, so ARM binaries run "on the board" through the
host's binfmt_misc (qemu-user), and files the tests put there can be inspected directly. Every
name is claimed with a free index N (namespace ``antkpi-bN``, veth ``antkpi-hN``/``antkpi-vN``,
subnet 10.77.N.0/24), so parallel test runs on one machine do not collide. ``NetnsBoard.close``
kills every process in the namespace and deletes it (which also destroys the veth pair).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.fsio import process_alive
from harness.env.lab.inventory import Board

SSHD = Path("/usr/sbin/sshd")
PORT = 2222
MAX_INDEX = 250
START_TIMEOUT_S = 15.0
_PREFIX = "antkpi"
# Which process created each namespace, so a later run can remove boards left by a killed one.
OWNERS = Path(tempfile.gettempdir()) / "antkpi-netns-owners"


def missing_tools() -> list[str]:
    """What this machine lacks for a namespace board, each with its fix; empty when all is there."""
    missing = []
    if not SSHD.is_file():
        missing.append(f"{SSHD} (apt-get install openssh-server)")
    for tool, package in (("ip", "iproute2"), ("ssh", "openssh-client"), ("ssh-keygen", "openssh-client")):
        if shutil.which(tool) is None:
            missing.append(f"{tool} ({package})")
    if os.geteuid() != 0:
        missing.append("root (ip netns needs CAP_NET_ADMIN)")
    return missing


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _owner_file(n: int) -> Path:
    return OWNERS / f"{_PREFIX}-b{n}.pid"


def sweep_stale() -> list[str]:
    """Delete namespace boards whose creating process is gone (a test run killed before its teardown)."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(f"{_PREFIX}-b") or not name[len(_PREFIX) + 2 :].isdigit():
            continue
        n = int(name[len(_PREFIX) + 2 :])
        try:
            owner = int(_owner_file(n).read_text().strip())
        except (OSError, ValueError):
            continue  # no owner recorded: possibly being created right now; leave it alone
        if process_alive(owner):
            continue
        NetnsBoard(index=n, root=Path(tempfile.gettempdir())).close()
        removed.append(name)
    return removed


def _claim_namespace() -> int:
    """Create the first free antkpi-bN namespace; `ip netns add` fails if it exists, so this is atomic."""
    sweep_stale()
    OWNERS.mkdir(parents=True, exist_ok=True)
    start = os.getpid() % MAX_INDEX
    for k in range(MAX_INDEX):
        n = (start + k) % MAX_INDEX
        if _ip("netns", "add", f"{_PREFIX}-b{n}", check=False).returncode == 0:
            _owner_file(n).write_text(f"{os.getpid()}\n")
            return n
    raise RuntimeError(f"no free {_PREFIX}-bN network namespace (0..{MAX_INDEX - 1} all exist)")


@dataclass(kw_only=True)
class NetnsBoard:
    """One running namespace board and the files that describe it to the harness."""

    index: int
    root: Path
    port: int = PORT
    user: str = "root"
    sshd: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    closed: bool = False

    @property
    def netns(self) -> str:
        return f"{_PREFIX}-b{self.index}"

    @property
    def host_if(self) -> str:
        return f"{_PREFIX}-h{self.index}"

    @property
    def board_if(self) -> str:
        return f"{_PREFIX}-v{self.index}"

    @property
    def host_ip(self) -> str:
        return f"10.77.{self.index}.1"

    @property
    def board_ip(self) -> str:
        return f"10.77.{self.index}.2"

    @property
    def client_key(self) -> Path:
        return self.root / "client_ed25519"

    @property
    def host_key(self) -> Path:
        return self.root / "ssh_host_ed25519_key"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def sshd_log(self) -> Path:
        return self.root / "sshd.log"

    def board(self, name: str = "nsboard", **overrides: Any) -> Board:
        """A Board entry for this namespace board (fields can be overridden)."""
        values: dict[str, Any] = {
            "name": name,
            "model": "Raspberry Pi 2",
            "arch": "armhf",
            "target": "rpi2",
            "transport": "ssh",
            "host": self.board_ip,
            "port": self.port,
            "user": self.user,
            "identity_file": str(self.client_key),
            "known_hosts": str(self.known_hosts),
            "connect_timeout_s": 3,
            "command_timeout_s": 120,
            "camera_source": "test",
            "work_dir": str(self.root / "board-work"),
            "tags": ("netns", "test"),
        }
        values.update(overrides)
        return Board(**values)

    def toml(
        self, name: str = "nsboard", *, model: str = "Raspberry Pi 2", arch: str = "armhf", target: str = "rpi2"
    ) -> str:
        """The boards.toml text for this board (it runs armhf and arm64 binaries alike, through binfmt)."""
        return (
            f"[boards.{name}]\n"
            f'model = "{model}"\narch = "{arch}"\ntarget = "{target}"\ntransport = "ssh"\n'
            f'host = "{self.board_ip}"\nport = {self.port}\nuser = "{self.user}"\n'
            f'identity_file = "{self.client_key}"\nknown_hosts = "{self.known_hosts}"\n'
            f'connect_timeout_s = 3\ncamera_source = "test"\ninterface = "{self.board_if}"\n'
            f'work_dir = "{self.root / "board-work"}"\n'
            'tags = ["netns", "test"]\n'
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def _setup_network(self) -> None:
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.board_if, "netns", self.netns)
        _ip("addr", "add", f"{self.host_ip}/24", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        _ip("-n", self.netns, "link", "set", "lo", "up")
        _ip("-n", self.netns, "addr", "add", f"{self.board_ip}/24", "dev", self.board_if)
        _ip("-n", self.netns, "link", "set", self.board_if, "up")

    def _write_keys_and_config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        for key, comment in ((self.host_key, "antkpi-test-host"), (self.client_key, "antkpi-test-client")):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
                check=True,
                capture_output=True,
            )
        (self.root / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        host_pub = Path(f"{self.host_key}.pub").read_text().split()
        self.known_hosts.write_text(f"[{self.board_ip}]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        config = self.root / "sshd_config"
        # StrictModes off: the key files live under /tmp, whose mode (1777) sshd would reject.
        config.write_text(
            f"Port {self.port}\nListenAddress {self.board_ip}\nHostKey {self.host_key}\n"
            f"PidFile {self.root / 'sshd.pid'}\nAuthorizedKeysFile {self.root / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nX11Forwarding no\n"
            "AllowTcpForwarding no\nPrintMotd no\nUseDNS no\nLogLevel VERBOSE\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\n"
        )
        return config

    def start_sshd(self) -> None:
        """Start (or restart) sshd inside the namespace and wait until it accepts connections."""
        # Debian's sshd refuses to start without its privilege separation directory, which the
        # systemd unit normally creates.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        config = self.root / "sshd_config"
        log = self.sshd_log.open("ab")
        try:
            self.sshd = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, str(SSHD), "-D", "-e", "-f", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.sshd.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.sshd.returncode}: {self.sshd_log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection((self.board_ip, self.port), timeout=0.5):
                return
            time.sleep(0.05)
        raise RuntimeError(f"sshd in {self.netns} did not listen within {START_TIMEOUT_S:g} s")

    def pids(self) -> list[int]:
        """Every process inside the namespace (sshd, its sessions, the commands they run)."""
        out = _ip("netns", "pids", self.netns, check=False).stdout
        return [int(p) for p in out.split() if p.isdigit()]

    def kill_all(self) -> None:
        """Take the board down hard: kill sshd, its sessions and everything they started."""
        for _ in range(20):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        if self.sshd is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.sshd.wait(timeout=5)
            self.sshd = None

    def link(self, up: bool) -> None:
        """Pull (or re-plug) the board's cable: its veth end goes down, packets stop."""
        _ip("link", "set", self.host_if, "up" if up else "down")

    def close(self) -> None:
        """Kill every process in the namespace and delete it with its veth pair."""
        if self.closed:
            return
        self.closed = True
        self.kill_all()
        _ip("link", "del", self.host_if, check=False)
        _ip("netns", "del", self.netns, check=False)
        with contextlib.suppress(OSError):
            _owner_file(self.index).unlink()


def start(root: Path) -> NetnsBoard:
    """Create the namespace, the veth pair, the keys and a running sshd; close() undoes all of it."""
    board = NetnsBoard(index=_claim_namespace(), root=root)
    # Also undone at interpreter exit, should the caller's teardown never run (an interrupted session).
    atexit.register(board.close)
    try:
        board._setup_network()
        board._write_keys_and_config()
        board.start_sshd()
    except BaseException:
        board.close()
        raise
    return board


@contextlib.contextmanager
def running(root: Path) -> Iterator[NetnsBoard]:
    """A namespace board for the duration of a with-block."""
    board = start(root)
    try:
        yield board
    finally:
        board.close()
