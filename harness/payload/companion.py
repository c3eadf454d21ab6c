"""A loopback stand-in for ANT's Android companion, and a driver for one KPI 2 session.

ANT's companion channel is plain HTTP in both directions:

* device → companion: ``ant.companion.sendMessage(msg)`` POSTs the raw string to
  ``http://<companion>:8002/companion``;
* companion → device: the companion POSTs its reply to
  ``http://<device>:8001/runtime/currentApp/companion``, which ``app-core/main-old.js`` hands to
  the handlers registered with ``ant.companion.registerOnReceiveMessage``.

The resource benchmark's two message kinds are answered as the companion app's benchmark helper
answers them: a legacy message ``**ResourceBench** <ts>`` gets ``<ts>`` back, and a Resource API
request (``ResourceRequest\\n<id>\\n<method>\\n<uri>\\n<message>``) gets
``ResourceResponse\\n<id>\\n<method>\\n<uri>\\n<ts>``.

This module uses only the standard library: the harness copies it into the container or onto the
board that runs the ANT runtime and runs it there (``python3 companion.py session ...``), so the
whole exchange stays on that machine's loopback.
"""

from __future__ import annotations

import argparse
import http.client
import os
import pty
import queue
import re
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Final

COMPANION_PORT: Final = 8002  # main-old.js hard-codes it (and the path) for every companion
COMPANION_PATH: Final = "/companion"
DEVICE_PORT: Final = 8001
DEVICE_REPLY_PATH: Final = "/runtime/currentApp/companion"
LEGACY_PREFIX: Final = "**ResourceBench** "
RESOURCE_REQUEST: Final = "ResourceRequest"
RESOURCE_RESPONSE: Final = "ResourceResponse"


@dataclass(frozen=True, kw_only=True)
class ResourceRequest:
    """One Resource API request as antresource.js frames it."""

    request_id: str
    method: str
    uri: str
    message: str


def parse_resource_request(body: str) -> ResourceRequest | None:
    """The request framed in `body`, or None when it is not a Resource API request."""
    parts = body.split("\n", 4)
    if len(parts) < 5 or parts[0] != RESOURCE_REQUEST:
        return None
    return ResourceRequest(request_id=parts[1], method=parts[2], uri=parts[3], message=parts[4])


def _timestamp(message: str) -> str:
    # The benchmark helper answers with the number after the prefix, whatever it is.
    return message[len(LEGACY_PREFIX) :] if message.startswith(LEGACY_PREFIX) else message


def reply_for(body: str) -> str | None:
    """What the companion sends back for one message from the device; None if it ignores it."""
    req = parse_resource_request(body)
    if req is not None:
        return "\n".join((RESOURCE_RESPONSE, req.request_id, req.method, req.uri, _timestamp(req.message)))
    if body.startswith(LEGACY_PREFIX):
        return _timestamp(body)
    return None


@dataclass(kw_only=True)
class Counters:
    """What the stand-in saw: a lost reply shows as echoed > delivered."""

    received: int = 0
    legacy: int = 0
    resource: int = 0
    ignored: int = 0
    echoed: int = 0
    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    # The stand-in's own time per message, from the device's POST arriving to its reply handed to
    # the kernel: its share of each round trip, measured where it happens.
    own_ms: list[float] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"companion: received {self.received} (legacy {self.legacy}, resource {self.resource}, "
            f"ignored {self.ignored}), echoed {self.echoed}, delivered {self.delivered}, failed {self.failed}"
        )

    def own_line(self) -> str:
        """`companion: own ms: a b c ...`, one value per reply sent, in order."""
        return "companion: own ms: " + " ".join(f"{x:.3f}" for x in self.own_ms)


class CompanionStandIn:
    """The companion's HTTP server plus a sender thread that posts replies to the device."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = COMPANION_PORT,
        device_host: str = "127.0.0.1",
        device_port: int = DEVICE_PORT,
        timeout_s: float = 10.0,
    ) -> None:
        self.device_host = device_host
        self.device_port = device_port
        self.timeout_s = timeout_s
        self.counters = Counters()
        self._lock = threading.Lock()
        self._outbox: queue.Queue[tuple[str, float] | None] = queue.Queue()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as the phone's server: the device closes its connection, never the stand-in.
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", errors="replace")
                ok = self.path == COMPANION_PATH
                # Answer the device's POST first, as the phone's HTTP server does; the reply is a
                # separate POST back to the device.
                self.send_response(200 if ok else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if ok:
                    stand_in._received(body, arrived)

            def log_message(self, format: str, *args: object) -> None:
                return  # the counters are the record; per-request lines would drown the log

        return Handler

    def _received(self, body: str, arrived: float) -> None:
        reply = reply_for(body)
        with self._lock:
            self.counters.received += 1
            if reply is None:
                self.counters.ignored += 1
                return
            if body.startswith(RESOURCE_REQUEST):
                self.counters.resource += 1
            else:
                self.counters.legacy += 1
            self.counters.echoed += 1
        self._outbox.put((reply, arrived))

    def _send_loop(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            reply, arrived = item
            try:
                conn = http.client.HTTPConnection(self.device_host, self.device_port, timeout=self.timeout_s)
                conn.request("POST", DEVICE_REPLY_PATH, body=reply.encode(), headers={"Content-Type": "text/plain"})
                own = (time.monotonic() - arrived) * 1000.0
                with self._lock:
                    self.counters.own_ms.append(own)
                resp = conn.getresponse()
                # Closing with the body unread resets the connection while IoT.js still writes to
                # it, and IoT.js dies of SIGPIPE: read the whole answer first.
                resp.read()
                status = resp.status
                conn.close()
                ok, err = status == 200, f"device answered {status}"
            except OSError as e:
                ok, err = False, f"{type(e).__name__}: {e}"
            with self._lock:
                if ok:
                    self.counters.delivered += 1
                else:
                    self.counters.failed += 1
                    self.counters.errors.append(err)

    def start(self) -> CompanionStandIn:
        for target in (self._server.serve_forever, self._send_loop):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._outbox.put(None)
        self._server.shutdown()
        self._server.server_close()
        for t in self._threads:
            t.join(timeout=self.timeout_s)

    def __enter__(self) -> CompanionStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# The device side: main-old.js's HTTP endpoints, as the companion app drives them
# --------------------------------------------------------------------------------------------


class RuntimeRefused(Exception):
    """The runtime did not accept a command."""


@dataclass(frozen=True, kw_only=True)
class RuntimeClient:
    """Talks to main-old.js: alive check, install, companion address, start and stop."""

    host: str = "127.0.0.1"
    port: int = DEVICE_PORT
    timeout_s: float = 30.0

    def _request(self, method: str, path: str, body: str = "") -> tuple[int, str]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            data = body.encode()
            conn.request(method, path, body=data if method != "GET" else None)
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", errors="replace")
        finally:
            conn.close()

    def alive(self) -> bool:
        try:
            return self._request("GET", "/") == (200, "Alive")
        except OSError:
            return False

    def wait_alive(self, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.alive():
                return
            if proc is not None and proc.poll() is not None:
                raise RuntimeRefused(f"the runtime exited {proc.returncode} before answering GET /")
            time.sleep(0.2)
        raise RuntimeRefused(f"the runtime did not answer GET / with 'Alive' within {timeout_s:.0f} s")

    def _expect(self, method: str, path: str, body: str) -> None:
        status, text = self._request(method, path, body)
        if status != 200:
            raise RuntimeRefused(f"{method} {path} → {status} {text!r}")

    def install(self, code: str) -> None:
        self._expect("POST", "/runtime/currentApp", code)

    def set_companion(self, host: str) -> None:
        self._expect("POST", "/runtime/currentApp/companionAddress", host)

    def command(self, command: str) -> None:
        self._expect("POST", "/runtime/currentApp/command", command)


# --------------------------------------------------------------------------------------------
# One session: start the runtime, install and run one app, stop it
# --------------------------------------------------------------------------------------------


def _count_lines(path: Path, pattern: re.Pattern[str]) -> int:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return 0
    return sum(1 for ln in text.splitlines() if pattern.match(ln.strip()))


def _stop_process(proc: subprocess.Popen[bytes], grace_s: float = 3.0) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def _copy_pty(master: int, log: Path) -> None:
    with log.open("ab") as out:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal has gone
                break
            if not data:
                break
            out.write(data)
            out.flush()
    os.close(master)


def spawn_on_pty(argv: Sequence[str], log: Path, cwd: str) -> tuple[subprocess.Popen[bytes], threading.Thread]:
    """Start argv with stdout and stderr on a pseudo-terminal copied to `log` as it comes.

    main-old.js never turns off stdout buffering, so redirected output would arrive only at exit
    (and be lost when the runtime is stopped); on a terminal it is line-buffered. Unlike stdbuf's
    preloaded library, a terminal also works for an emulated binary of another architecture.
    """
    log.write_bytes(b"")
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR  # keep "\n" line ends, as a redirected file would have them
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, cwd=cwd)
    finally:
        os.close(slave)
    t = threading.Thread(target=_copy_pty, args=(master, log), daemon=True)
    t.start()
    return proc, t


def run_session(args: argparse.Namespace) -> int:
    """Run one app under the runtime with the stand-in; prints a summary, 0 if the app ran."""
    code = Path(args.app).read_text()
    pattern = re.compile(args.line_pattern)
    log = Path(args.runtime_log)
    t0 = time.monotonic()
    with CompanionStandIn(port=args.companion_port, device_port=args.device_port) as companion:
        proc, copier = spawn_on_pty(args.runtime, log, args.cwd)
        client = RuntimeClient(port=args.device_port)
        reason = ""
        try:
            client.wait_alive(args.startup_timeout, proc)
            client.install(code)
            client.set_companion("127.0.0.1")
            started = time.monotonic()
            client.command("start")
            print(f"session: started {args.app} at +{started - t0:.2f} s", flush=True)
            deadline = started + args.duration
            while True:
                n = _count_lines(log, pattern)
                if args.lines and n >= args.lines:
                    reason = f"all {args.lines} lines"
                    break
                if proc.poll() is not None:
                    reason = f"runtime exited {proc.returncode}"
                    break
                if time.monotonic() >= deadline:
                    reason = f"wall-time bound {args.duration:g} s"
                    break
                time.sleep(0.2)
            if proc.poll() is None:
                try:
                    client.command("stop")
                except (OSError, RuntimeRefused) as e:
                    print(f"session: stop not accepted: {e}", flush=True)
                time.sleep(0.5)  # let onStop print before the runtime is terminated
        except (OSError, RuntimeRefused) as e:
            print(f"session: FAILED: {e}", flush=True)
            rc = _stop_process(proc)
            copier.join(timeout=5)
            print(f"session: runtime exit {rc}", flush=True)
            print(companion.counters.line(), flush=True)
            print(companion.counters.own_line(), flush=True)
            return 2
        rc = _stop_process(proc)
        copier.join(timeout=5)
        lines = _count_lines(log, pattern)
        print(
            f"session: {lines} lines in {time.monotonic() - started:.1f} s, ended by {reason}; runtime exit {rc}",
            flush=True,
        )
    print(companion.counters.line(), flush=True)
    print(companion.counters.own_line(), flush=True)
    for err in companion.counters.errors[:5]:
        print(f"companion: reply failed: {err}", flush=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="companion.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("session", help="run one app under main-old.js with the loopback companion")
    s.add_argument("--app", required=True, help="the app's JavaScript file, installed over HTTP")
    s.add_argument("--runtime-log", required=True, help="where the runtime's stdout and stderr go")
    s.add_argument("--cwd", default=".", help="the runtime's directory (main-old.js writes app0.js there)")
    s.add_argument("--line-pattern", required=True, help="regex of one result line of the app")
    s.add_argument("--lines", type=int, default=0, help="stop once this many result lines appeared")
    s.add_argument("--duration", type=float, required=True, help="wall-time bound after start, in seconds")
    s.add_argument("--startup-timeout", type=float, default=60.0)
    s.add_argument("--companion-port", type=int, default=COMPANION_PORT)
    s.add_argument("--device-port", type=int, default=DEVICE_PORT)
    s.add_argument("runtime", nargs="+", help="the runtime command, after --")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_session(args)


if __name__ == "__main__":
    sys.exit(main())
