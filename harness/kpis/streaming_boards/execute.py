"""KPI 6 execution: streaming.js with a camera source, judged by an external GDP client.

The script runs as `antd streaming --run` runs it (`iotjs app-core/main.js streaming
<APP_ROOT>/streaming.js 0`), in the ANT build image. Its `sourceType` is set in a copy derived at
run time: `test` (videotestsrc) in smoke mode. It serves GDP over TCP on `getMyIPAddress('eth0')`
port 5000; the container's own eth0 (Docker's bridge) provides that address. Once the app prints
`Pipeline ready!`, a GStreamer client in the same container connects to that address and must
receive its frames. The pass rule is harness.parsers.streaming.check; the script's exit code and
PSS line are recorded, never taken as evidence.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from harness.core.runner import Executor, Run
from harness.core.steps import Step
from harness.errors import Blocked, StepFailed
from harness.kpis.common import ant_build
from harness.kpis.common.executors import journal_measurements
from harness.parsers import streaming
from harness.results.rows import Row

KPI: Final = "boards"
SMOKE_SOURCE: Final = "test"
APP_NAME: Final = "streaming"
APP_TIMEOUT_S: Final = 60  # the script ends by itself after ≈26 s (5 s set-up, 15 s, 10 PSS samples)
READY_TIMEOUT_S: Final = 30.0
CLIENT_TIMEOUT_S: Final = 20
CLIENT_FRAMES: Final = 90
# Under QEMU the first GStreamer start-up also scans every plugin through the emulator.
EMULATED_SLOWDOWN: Final = 3
_SOURCE_RE: Final = re.compile(r"(settings\.sourceType\s*=\s*)(['\"])[^'\"]*\2\s*;")
UPSTREAM_INTERFACE: Final = "eth0"
_IFACE_RE: Final = re.compile(r"(getMyIPAddress\(\s*)(['\"])eth0\2\s*\)")


def derive_streaming(
    text: str, source_type: str, *, interface: str = UPSTREAM_INTERFACE, name: str = "streaming.js"
) -> str:
    """A copy of streaming.js with `settings.sourceType` and the served interface set."""
    if not re.fullmatch(r"[A-Za-z0-9_./-]+", source_type):
        raise StepFailed(f"{name}: source type {source_type!r} is not a plain name or device path")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,15}", interface):
        raise StepFailed(f"{name}: {interface!r} is not a network interface name")
    new, n = _SOURCE_RE.subn(lambda m: f"{m.group(1)}'{source_type}';", text)
    if n != 1:
        raise StepFailed(f"{name}: expected one `settings.sourceType = ...;` line, found {n}: the script changed")
    if interface != UPSTREAM_INTERFACE:
        new, n = _IFACE_RE.subn(lambda m: f"{m.group(1)}{m.group(2)}{interface}{m.group(2)})", new)
        if n != 1:
            raise StepFailed(
                f"{name}: expected one `getMyIPAddress('{UPSTREAM_INTERFACE}')` call, found {n}: the script changed"
            )
    return new


def client_argv(host: str, port: int, frames: int = CLIENT_FRAMES, timeout_s: int = CLIENT_TIMEOUT_S) -> list[str]:
    """The GDP client: exits 0 after `frames` buffers, non-zero (or 124 on timeout) otherwise."""
    return [
        "timeout", str(timeout_s), "gst-launch-1.0", "-q",
        "tcpclientsrc", f"host={host}", f"port={port}", "!",
        "gdpdepay", "!", "identity", f"eos-after={frames}", "!", "fakesink",
    ]  # fmt: skip


def _script_path(run: Run) -> Path:
    wl = run.manifest.workloads[APP_NAME]
    for sid, out in run.outputs.items():
        if sid.startswith(f"source:{wl.source}") and (Path(out["path"]) / wl.path).is_file():
            return Path(out["path"]) / wl.path
    raise StepFailed(f"no checkout of {wl.source} with {wl.path}")


def _wait_ready(path: Path, timeout_s: float, done: threading.Event) -> tuple[str, int] | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not done.is_set():
        if path.is_file():
            addr = streaming.ready_address(path.read_text(errors="replace"))
            if addr is not None:
                return addr
        time.sleep(0.2)
    return streaming.ready_address(path.read_text(errors="replace")) if path.is_file() else None


def _client_container(run: Run) -> Any:
    """A container of the build image on the harness machine: the external client of a board's stream."""
    from harness.kpis.common.executors import container_for

    build = run.manifest.builds[ant_build.BUILD]
    return container_for(run, run.outputs[f"image:{build.image}"]["tag"], workdir="/")


def _measure_board(step: Step, run: Run, deploy: dict[str, Any]) -> dict[str, Any]:
    """streaming.js on the board with its camera source; the client connects from the harness machine."""
    from harness.env.lab import session as boardrun
    from harness.env.transport import deploy as put_files

    board, transport = boardrun.session(run, step.target)
    if not board.camera_source:
        raise Blocked(
            f"board {board.name} names no camera_source for streaming.js",
            "set camera_source in boards.toml (rpi, nvidia, test or /dev/videoN)",
        )
    script = _script_path(run)
    local = run.work_dir(f"kpi6-{step.id}") / f"{APP_NAME}.js"
    local.write_text(
        derive_streaming(script.read_text(), board.camera_source, interface=board.interface, name=str(script))
    )
    rel = f"{ant_build.REMOTE_ROOT}/{step.id.replace(':', '_')}"
    put_files(transport, {local: f"{rel}/{APP_NAME}.js"})
    b = deploy["remote_bundle"]
    app_argv = [
        *ant_build.runtime_argv(deploy),
        f"{b}/app-core/main.js",
        APP_NAME,
        transport.remote_path(f"{rel}/{APP_NAME}.js"),
        "0",
    ]
    app_log = run.raw_path(step.id, ".log")
    client_log = run.raw_path(step.id, ".client.log")
    for p in (app_log, client_log):
        p.unlink(missing_ok=True)
    started_at = time.time()
    result: list[Any] = []
    errors: list[BaseException] = []
    done = threading.Event()
    client_rc: int | None = None
    address: tuple[str, int] | None = None
    with _client_container(run) as client:

        def run_app() -> None:
            try:
                result.append(
                    transport.run(
                        app_argv,
                        timeout=APP_TIMEOUT_S,
                        stdout_path=app_log,
                        cwd=transport.remote_path(rel),
                        env=ant_build.runtime_env(deploy),
                    )
                )
            except BaseException as e:  # re-raised in the caller's thread
                errors.append(e)
            finally:
                done.set()

        t = threading.Thread(target=run_app, daemon=True)
        t.start()
        address = _wait_ready(app_log, READY_TIMEOUT_S, done)
        if address is not None:
            # The app serves on the board's own address; 0.0.0.0 means the interface had none.
            client_rc = client.run(client_argv(*address), log_path=client_log)
        t.join(APP_TIMEOUT_S + 60)
    if errors:
        raise errors[0]
    if not result:
        raise StepFailed(f"{step.id}: the app did not finish on board {board.name}", log=run.rel(app_log))
    res = result[0]
    # GStreamer's CRITICAL lines go to stderr: kept apart, so the PSS line still ends the output.
    app_err = run.raw_path(step.id, ".stderr.log")
    app_err.write_text(res.stderr, encoding="utf-8")
    return {
        "app_log": str(app_log),
        "app_stderr": str(app_err),
        "client_log": str(client_log) if client_rc is not None else "",
        "app_exit": res.exit_code,
        "client_exit": client_rc,
        "address": f"{address[0]}:{address[1]}" if address else "",
        "source_type": board.camera_source,
        "interface": board.interface,
        "argv": app_argv,
        "client_argv": client_argv(*address) if address else [],
        "started_at": started_at,
        "board": board.name,
        "board_model": board.model,
        "identity": deploy["identity"],
    }


def exec_measure(step: Step, run: Run) -> dict[str, Any]:
    deploy = run.outputs.get(f"deploy:{step.target}")
    if deploy is None:
        raise Blocked(f"{step.id}: nothing deployed for {step.target}", "run the build and deploy steps first")
    if step.where == "board":
        return _measure_board(step, run, deploy)
    identity = ant_build.check_emulation(step, run)
    source_type = SMOKE_SOURCE
    script = _script_path(run)
    work = run.work_dir(f"kpi6-{step.id}")
    (work / f"{APP_NAME}.js").write_text(derive_streaming(script.read_text(), source_type, name=str(script)))
    app_log = run.raw_path(step.id, ".log")
    client_log = run.raw_path(step.id, ".client.log")
    for p in (app_log, client_log):
        p.unlink(missing_ok=True)
    # No stdbuf: main.js turns stdout buffering off itself (and a preloaded x86_64 library would
    # not apply to an emulated runtime anyway).
    slow = EMULATED_SLOWDOWN if step.where == "qemu" else 1
    app_timeout = APP_TIMEOUT_S * slow
    app_argv = [
        "timeout", str(app_timeout), deploy["iotjs"],
        f"{ant_build.TREE_MOUNT}/app-core/main.js", APP_NAME, f"{ant_build.WORK_MOUNT}/{APP_NAME}.js", "0",
    ]  # fmt: skip
    started_at = time.time()
    app_rc: list[int] = []
    errors: list[BaseException] = []
    done = threading.Event()
    client_rc: int | None = None
    address: tuple[str, int] | None = None
    with ant_build.runtime_container(run, deploy, work) as c:

        def run_app() -> None:
            try:
                app_rc.append(c.run(app_argv, env={"ANT_ROOT": ant_build.TREE_MOUNT}, log_path=app_log))
            except BaseException as e:  # re-raised in the caller's thread
                errors.append(e)
            finally:
                done.set()

        t = threading.Thread(target=run_app, daemon=True)
        t.start()
        address = _wait_ready(app_log, READY_TIMEOUT_S * slow, done)
        if address is not None:
            client_rc = c.run(client_argv(*address, timeout_s=CLIENT_TIMEOUT_S * slow), log_path=client_log)
        t.join(app_timeout + 30)
    if errors:
        raise StepFailed(f"{step.id}: the app could not be run: {errors[0]}", log=run.rel(app_log))
    if not app_rc:
        raise StepFailed(f"{step.id}: the app did not finish within {app_timeout + 30} s", log=run.rel(app_log))
    return {
        "app_log": str(app_log),
        "client_log": str(client_log) if client_rc is not None else "",
        "app_exit": app_rc[0],
        "client_exit": client_rc,
        "address": f"{address[0]}:{address[1]}" if address else "",
        "source_type": source_type,
        "argv": app_argv,
        "client_argv": client_argv(*address, timeout_s=CLIENT_TIMEOUT_S * slow) if address else [],
        "started_at": started_at,
        "identity": {**identity, "container_image": deploy["image_id"]},
    }


def rows_for(run: Run, step: Step, outputs: dict[str, Any]) -> list[Row]:
    """One `passed` row (1.0 or 0.0) with the app log as its evidence."""
    build = run.outputs.get(f"build:{ant_build.BUILD}:{step.target}", {})
    text = Path(outputs["app_log"]).read_text(errors="replace")
    err = Path(outputs["app_stderr"]).read_text(errors="replace") if outputs.get("app_stderr") else ""
    c = streaming.check(text, outputs.get("client_exit"), stderr=err)
    where = "PSS on the board, as the script samples it" if step.where == "board" else "PSS; not a figure off a board"
    pss = f"final line {c.pss_kb:.2f} KB ({where})" if c.pss_kb is not None else ""
    # The test pattern proves the software path, not a camera: such a pass is never counted.
    without_camera = outputs.get("source_type") == SMOKE_SOURCE
    extras = [
        f"not counted: passed without a camera (sourceType '{SMOKE_SOURCE}', the test pattern)"
        if without_camera and c.passed
        else "",
        f"board {outputs['board']} ({outputs.get('board_model', '')})" if outputs.get("board") else "",
        f"sourceType '{outputs.get('source_type', '')}'",
        f"client {' '.join(outputs.get('client_argv', [])[2:]) or 'not run'}",
        f"app exit {outputs.get('app_exit')} (not evidence)",
        pss,
    ]
    return [
        Row(
            run_id=run.run_id,
            kpi=KPI,
            metric="passed",
            variant=step.variant or "ant",
            workload=step.workload,
            target=step.target,
            fidelity=step.fidelity or "host",  # type: ignore[arg-type]
            mode=run.mode,  # type: ignore[arg-type]
            repeat=step.repeat or 0,
            value=1.0 if c.passed else 0.0,
            unit="count",
            status="ok",
            source_commit=build.get("provenance", {}).get("source_commit", ""),
            image_digest=build.get("provenance", {}).get("image_id", ""),
            artefact_sha256=build.get("sha256", ""),
            argv=[str(a) for a in outputs.get("argv", step.argv)],
            target_identity=outputs.get("identity", {}),
            time=datetime.fromtimestamp(float(outputs["started_at"]), timezone.utc).isoformat(timespec="seconds"),
            log=run.rel(Path(outputs["app_log"])),
            note="; ".join([c.summary(), *(e for e in extras if e)]),
            **run.provenance_base(),
        )
    ]


def exec_parse(step: Step, run: Run) -> dict[str, Any]:
    return {"rows": journal_measurements(run, step.depends, rows_for, "app_log")}


EXECUTORS: dict[str, Executor] = {
    "build": ant_build.exec_ant_build,
    "deploy": ant_build.exec_deploy,
    "measure": exec_measure,
    "parse": exec_parse,
}
