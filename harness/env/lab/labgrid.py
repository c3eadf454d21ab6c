"""Boards of a labgrid lab: reserve and acquire a place through the coordinator, release it after.

An inventory entry with `place` (or `reserve` tags for one of several identical places) is reached
through labgrid, the reservation layer embedded labs already run, instead of the harness's own
lease file: the run acquires the place with `labgrid-client` (its documented interface for scripts),
reads the SSH address from the place's NetworkService, and releases it when the run ends, on
Ctrl-C or SIGTERM, or when a step crashes. Host keys are checked as for any SSH board.

Each run acquires as `<user>+<run id>` (LG_USERNAME), so a place held by another run names that run,
and two runs of one machine never take each other's place for their own. labgrid never expires an
acquisition: a run killed with SIGKILL leaves its place acquired, so every run records what it
holds under <cache>/leases/labgrid/ and the next run on this machine releases the places of runs
whose process is gone (`sweep`).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness.core.fsio import atomic_write_text, process_alive
from harness.env.lab.inventory import Board
from harness.errors import Blocked
from harness.parsers import labgrid as lgtext

CLIENT: Final = "labgrid-client"
INSTALL: Final = "pip install 'ant-kpi-harness[lab]'"
POLL_S: Final = 1.0
CALL_TIMEOUT_S: Final = 60.0
# Without --wait / --board-wait, how long a reservation may take to be allocated before the run
# says the places are busy (an idle matching place is allocated within the coordinator's next pass).
RESERVE_GRACE_S: Final = 5.0
RECORDS: Final = "labgrid"


@dataclass(frozen=True, kw_only=True)
class Held:
    """A place this run holds, and the SSH service it gives."""

    place: str
    token: str  # the reservation's token, "" for a place named directly
    username: str  # the labgrid user this run acquired as
    host: str
    port: int
    user: str


def client_path() -> str:
    """labgrid-client beside this Python, else on PATH; BLOCKED with the install command."""
    beside = Path(sys.executable).parent / CLIENT
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(CLIENT)
    if found:
        return found
    raise Blocked(
        "a board of the inventory names a labgrid place, and labgrid is not installed here",
        f"{INSTALL} (labgrid's client reaches the lab's coordinator)",
    )


def run_username(run_id: str) -> str:
    """The labgrid user a run acquires as: this user, '+', the run id (shown to whoever waits)."""
    return f"{getpass.getuser()}+{run_id}"


@dataclass(kw_only=True)
class Client:
    """`labgrid-client` for one coordinator, acting as one labgrid user."""

    coordinator: str
    username: str
    binary: str = ""

    def argv(self, *args: str) -> list[str]:
        base = [self.binary or client_path()]
        if self.coordinator:
            base += ["-x", self.coordinator]
        return [*base, *args]

    def env(self) -> dict[str, str]:
        return {**os.environ, "LG_USERNAME": self.username, "PYTHONUNBUFFERED": "1"}

    def where(self) -> str:
        return self.coordinator or os.environ.get("LG_COORDINATOR", "") or "127.0.0.1:20408 (labgrid's default)"

    def call(self, *args: str, timeout: float = CALL_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        try:
            res = subprocess.run(
                self.argv(*args), capture_output=True, text=True, timeout=timeout, env=self.env(), check=False
            )
        except subprocess.TimeoutExpired:
            raise Blocked(
                f"labgrid coordinator {self.where()}: `{CLIENT} {' '.join(args)}` did not answer in {timeout:g} s",
                "check the coordinator, or set coordinator in boards.toml / LG_COORDINATOR",
            ) from None
        text = res.stdout + res.stderr
        if res.returncode != 0 and lgtext.coordinator_unreachable(text):
            raise Blocked(
                f"labgrid coordinator {self.where()} does not answer ({lgtext.error(text)})",
                "start labgrid-coordinator there, or set coordinator in boards.toml / LG_COORDINATOR",
            )
        return res

    def places(self) -> list[lgtext.Place]:
        res = self.call("-v", "places")
        if res.returncode != 0:
            raise Blocked(f"labgrid: cannot list places: {lgtext.error(res.stdout + res.stderr)}", "check the lab")
        return lgtext.parse_places(res.stdout)

    def show(self, place: str) -> lgtext.Place:
        res = self.call("-p", place, "show")
        found = lgtext.parse_places(res.stdout)
        if res.returncode != 0 or not found:
            raise Blocked(
                f"labgrid place {place}: {lgtext.error(res.stdout + res.stderr) or 'not shown'}",
                f"check the place's name with `{CLIENT} places`",
            )
        return found[0]

    def acquire(self, place: str) -> tuple[bool, str]:
        """(True, "") when acquired; (False, holder) when another user holds it; BLOCKED otherwise."""
        res = self.call("-p", place, "acquire")
        if res.returncode == 0:
            return True, ""
        text = res.stdout + res.stderr
        who = lgtext.holder(text)
        if who is not None:
            return False, who
        raise Blocked(
            f"labgrid place {place}: {lgtext.error(text) or 'acquire failed'}",
            f"check the place with `{CLIENT} -p {place} show`",
        )

    def release(self, place: str) -> str:
        """ "released"; "free" when nobody held it; "other" when another user holds it (left alone)."""
        res = self.call("-p", place, "release")
        text = res.stdout + res.stderr
        if res.returncode == 0:
            return "released"
        if lgtext.not_acquired(text):
            return "free"
        if lgtext.other_user(text):
            return "other"
        raise Blocked(f"labgrid place {place}: release failed: {lgtext.error(text)}", "release it by hand")

    def cancel(self, token: str) -> None:
        self.call("cancel-reservation", token)


def _records_dir(leases_dir: Path) -> Path:
    d = Path(leases_dir) / RECORDS
    d.mkdir(parents=True, exist_ok=True)
    return d


def _record(leases_dir: Path, board: Board, data: dict[str, Any]) -> Path:
    path = _records_dir(leases_dir) / f"{board.name}.json"
    atomic_write_text(path, json.dumps(data, sort_keys=True) + "\n")
    return path


def sweep(leases_dir: Path, *, say: Callable[[str], None] = lambda _: None) -> list[str]:
    """Release the places, and cancel the reservations, of runs of this machine whose process is gone.

    labgrid keeps a place acquired until its holder releases it; a run killed with SIGKILL could
    not. Returns one line per place released.
    """
    d = Path(leases_dir) / RECORDS
    if not d.is_dir():
        return []
    done = []
    for path in sorted(d.glob("*.json")):
        try:
            rec = json.loads(path.read_text())
            pid = int(rec["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if rec.get("host") != socket.gethostname() or process_alive(pid):
            continue
        client = Client(coordinator=str(rec.get("coordinator", "")), username=str(rec.get("username", "")))
        try:
            released = client.release(str(rec["place"])) == "released" if rec.get("place") else False
            if rec.get("token"):
                client.cancel(str(rec["token"]))
        except Blocked as e:
            say(f"labgrid: could not release what run {rec.get('run_id', '?')} left: {e}")
            continue
        path.unlink(missing_ok=True)
        if not released and not rec.get("token"):
            continue  # it never held the place (killed while waiting for it)
        line = (
            f"released {'labgrid place ' + str(rec['place']) if released else 'nothing acquired'}"
            f"{', cancelled reservation ' + str(rec['token']) if rec.get('token') else ''}: left by run "
            f"{rec.get('run_id', '?')} (pid {pid}, no longer running)"
        )
        say(line)
        done.append(line)
    return done


def _reserve(client: Client, board: Board, *, deadline: float | None, on_token: Callable[[str], None]) -> str:
    """A reservation of a place with the board's tags, waited for until `deadline`; its token."""
    filters = [f"{k}={v}" for k, v in board.reserve]
    proc = subprocess.Popen(
        client.argv("reserve", "--shell", "--wait", *filters),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=client.env(),
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    token = lgtext.parse_token(first)
    if token is None:
        rest = first + proc.stdout.read()
        proc.wait()
        if lgtext.coordinator_unreachable(rest):
            raise Blocked(
                f"labgrid coordinator {client.where()} does not answer ({lgtext.error(rest)})",
                "start labgrid-coordinator there, or set coordinator in boards.toml / LG_COORDINATOR",
            )
        raise Blocked(
            f"board {board.name}: labgrid refused a reservation of {board.reserve_filter()}: {lgtext.error(rest)}",
            "check the tags in boards.toml against `labgrid-client -v places`",
        )
    on_token(token)
    try:
        proc.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        client.cancel(token)
        held = [
            f"{p.name} by {p.acquired}" if p.acquired else f"{p.name} (reservation {p.reservation})"
            for p in client.places()
            if all(p.tags.get(k) == v for k, v in board.reserve) and (p.acquired or p.reservation)
        ]
        raise Blocked(
            f"board {board.name}: no labgrid place tagged {board.reserve_filter()} came free "
            f"(held: {', '.join(held) or 'none, or no such place'})",
            "wait, or pass --board-wait S to wait up to S seconds",
        ) from None
    if proc.returncode != 0:
        raise Blocked(f"board {board.name}: labgrid reservation {token} ended with {proc.returncode}", "check the lab")
    return token


def _acquire(client: Client, place: str, board: Board, *, deadline: float | None) -> None:
    while True:
        ok, who = client.acquire(place)
        if ok:
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise Blocked(
                f"board {board.name}: labgrid place {place} is acquired by {who}",
                "wait, or pass --board-wait S to wait up to S seconds",
            )
        time.sleep(POLL_S)


def _service(client: Client, place: str, board: Board) -> tuple[str, int, str]:
    shown = client.show(place)
    svc = shown.network_service()
    if svc is None:
        raise Blocked(
            f"board {board.name}: labgrid place {place} has no NetworkService resource",
            "export the board's SSH service as a NetworkService and add it to the place (add-match)",
        )
    params = svc.params
    extra = params.get("extra") or {}
    if isinstance(extra, dict) and extra.get("proxy_required"):
        raise Blocked(
            f"board {board.name}: place {place}'s SSH service is reachable only through its exporter "
            f"({extra.get('proxy')}), and the harness connects to a board directly",
            "export the service on an address this machine reaches (an exporter without --isolated)",
        )
    address = str(params.get("address") or "")
    if not address:
        raise Blocked(f"board {board.name}: place {place}'s NetworkService names no address", "fix the exporter")
    return address, int(params.get("port") or 22), str(params.get("username") or "")


@contextlib.contextmanager
def hold(
    board: Board,
    *,
    run_id: str,
    leases_dir: Path,
    wait: bool,
    wait_timeout_s: float | None,
    client: Client | None = None,
) -> Iterator[Held]:
    """Reserve (by tags) or name the board's place, acquire it, yield its SSH service; release after.

    Without `wait`, a busy place is BLOCKED at once (a reservation gets RESERVE_GRACE_S to be
    allocated); with it, the run waits up to `wait_timeout_s` (None: without limit) and then ends
    BLOCKED naming the holder.
    """
    cl = client or Client(
        coordinator=board.coordinator or os.environ.get("LG_COORDINATOR", ""), username=run_username(run_id)
    )
    if not wait:
        budget: float | None = RESERVE_GRACE_S if board.reserve else 0.0
    else:
        budget = wait_timeout_s
    deadline = None if budget is None else time.monotonic() + budget
    base = {
        "board": board.name,
        "run_id": run_id,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "coordinator": cl.coordinator,
        "username": cl.username,
    }
    record: Path | None = None
    token = ""
    place = board.place
    acquired = False

    def note_token(t: str) -> None:
        nonlocal record, token
        token = t
        record = _record(leases_dir, board, {**base, "token": t, "place": ""})

    try:
        if board.reserve:
            token = _reserve(cl, board, deadline=deadline, on_token=note_token)
            allocated = [p.name for p in cl.places() if p.reservation == token]
            if not allocated:
                raise Blocked(f"board {board.name}: reservation {token} was allocated no place", "check the lab")
            place = allocated[0]
            _acquire(cl, f"+{token}", board, deadline=deadline)
        else:
            # Recorded before the acquire: a SIGKILL right after it still leaves a record to sweep.
            record = _record(leases_dir, board, {**base, "token": "", "place": place})
            _acquire(cl, place, board, deadline=deadline)
        acquired = True
        record = _record(leases_dir, board, {**base, "token": token, "place": place})
        host, port, user = _service(cl, place, board)
        yield Held(place=place, token=token, username=cl.username, host=host, port=port, user=user)
    finally:
        try:
            if acquired:
                cl.release(place)
            if token:
                cl.cancel(token)
        finally:
            if record is not None:
                record.unlink(missing_ok=True)
