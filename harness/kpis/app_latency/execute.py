"""KPI 2 execution: Legacy vs Resource API round trips under main-old.js with a loopback companion.

Each measure step runs one API's script twice in the ANT build image (where the runtime's native
modules live): a per-send copy, which stamps every request and so prints round trips (`rtt`), and
the upstream script, which stamps once at load and so prints time since load (`elapsed_raw`,
reported for comparison with published figures, never compared). Both copies are derived from the
upstream files at run time. Smoke mode lowers the scripts' loop count (fewer sends); measure mode
runs them as published, bounded by wall time.
"""

from __future__ import annotations

import math
import re
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from harness.core.runner import Executor, Run
from harness.core.steps import Step
from harness.errors import Blocked, StepFailed
from harness.kpis.app_latency.plan import SMOKE_SENDS, UPSTREAM_SENDS, wall_bound_s
from harness.kpis.common import ant_build
from harness.kpis.common.executors import journal_measurements
from harness.parsers import resourcebench
from harness.results.rows import Row

KPI: Final = "app_latency"
MAIN_OLD: Final = "app-core/main-old.js"

_STAMP_RE: Final = re.compile(r"(['\"]\*\*ResourceBench\*\* ['\"]\s*\+\s*)startTimeValue\b")
_LOOP_RE: Final = re.compile(r"\btotalCount < 49\b")
COPIES: Final = ("persend", "raw")


def copies_for(step: Step) -> tuple[str, ...]:
    """The sessions of one leg: the per-send copy always; the upstream-stamped copy (time since
    load, shown for information) in the first leg only, so later legs add round trips, not minutes."""
    return COPIES if (step.repeat or 0) == 0 else COPIES[:1]


# --------------------------------------------------------------------------------------------
# Copies of the upstream scripts
# --------------------------------------------------------------------------------------------


def _sub_once(pattern: re.Pattern[str], repl: str, text: str, what: str, name: str) -> str:
    new, n = pattern.subn(repl, text)
    if n != 1:
        raise StepFailed(f"{name}: expected one {what} to patch, found {n}: the upstream script changed")
    return new


def derive_copy(text: str, *, name: str, per_send: bool, sends: int) -> str:
    """A copy of a resourcebench script: stamped per send and/or with `sends` result lines."""
    out = text
    if per_send:
        # Upstream stamps the request once at load; a stamp per send makes each line a round trip.
        out = _sub_once(_STAMP_RE, r"\1new Date().valueOf()", out, "load-time stamp", name)
    if sends != UPSTREAM_SENDS:
        out = _sub_once(_LOOP_RE, f"totalCount < {sends - 1}", out, "loop bound", name)
    return out


def _sends(run: Run) -> int:
    return SMOKE_SENDS if run.mode == "smoke" else UPSTREAM_SENDS


def exec_patch(step: Step, run: Run) -> dict[str, Any]:
    """Derive the per-send and raw copies of both scripts from the upstream checkout."""
    kpi = run.manifest.kpi(KPI)
    src = run.outputs[step.depends[0]]
    sends = _sends(run)
    dest = run.work_dir(f"scripts-{step.target}")
    scripts: dict[str, dict[str, str]] = {}
    for v in kpi.variants:
        wl = run.manifest.workloads[v.name]
        upstream = Path(src["path"]) / wl.path
        if not upstream.is_file():
            raise StepFailed(f"{step.id}: {wl.path} is not in the checkout {src['path']}")
        text = upstream.read_text()
        scripts[v.name] = {}
        for copy in COPIES:
            p = dest / f"{v.name}-{copy}.js"
            p.write_text(derive_copy(text, name=wl.path, per_send=copy == "persend", sends=sends))
            scripts[v.name][copy] = str(p)
    return {"scripts": scripts, "sends": sends, "source_commit": src.get("commit", "")}


def exec_build(step: Step, run: Run) -> dict[str, Any]:
    if step.id.startswith("patch:"):
        return exec_patch(step, run)
    return ant_build.exec_ant_build(step, run)


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


def _session_argv(
    companion: str, app: str, work: str, copy: str, sends: int, wall: float, runtime: list[str]
) -> list[str]:
    """The companion stand-in's session driver: install `app` under main-old.js, echo, stop."""
    return [
        "python3", companion, "session",
        "--app", app,
        "--runtime-log", f"{work}/{copy}.runtime.log",
        "--cwd", f"{work}/{copy}",
        "--line-pattern", resourcebench.LINE_PATTERN,
        "--lines", str(sends),
        "--duration", f"{wall:g}",
        "--", *runtime,
    ]  # fmt: skip


OWN_PREFIX: Final = "companion: own ms:"


def _summary_lines(text: str) -> list[str]:
    """The session driver's own report: one `session:` and one `companion:` line per session."""
    return [ln for ln in text.splitlines() if ln.startswith(("session:", "companion:"))]


def _measured(
    step: Step,
    run: Run,
    *,
    sessions: dict[str, Any],
    summary: list[str],
    sends: int,
    wall: float,
    runtime: list[str],
    started_at: float,
    log: Path,
    identity: dict[str, Any],
    where: str = "",
    companion: str = "",
) -> dict[str, Any]:
    """The outputs of one measure step, wherever it ran; StepFailed when neither session ran."""
    if all(sess["rc"] != 0 for sess in sessions.values()):
        raise StepFailed(f"{step.id}: neither session ran{where}: {'; '.join(summary[-3:])}", log=run.rel(log))
    out = {
        "sessions": sessions,
        "summary": summary,
        "sends": sends,
        "wall_bound_s": wall,
        "argv": runtime,
        "started_at": started_at,
        "driver_log": str(log),
        "identity": identity,
    }
    if companion:
        out["companion"] = companion
    return out


def _measure_board(step: Step, run: Run, deploy: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Both copies on the board: the runtime bundle under main-old.js, the stand-in on its loopback."""
    from harness.env.lab import session as boardrun
    from harness.env.transport import deploy as put_files
    from harness.env.transport import remove_inside

    _, transport = boardrun.session(run, step.target)
    variant = step.variant or ""
    sends = int(patch["sends"])
    wall = wall_bound_s(run.mode)
    rel = f"{ant_build.REMOTE_ROOT}/{step.id.replace(':', '_')}"
    work = transport.remote_path(rel)
    put_files(transport, {Path(patch["scripts"][variant][c]): f"{rel}/{c}.js" for c in COPIES})
    runtime = [*ant_build.runtime_argv(deploy), f"{deploy['remote_bundle']}/{MAIN_OLD}"]
    log = run.log_path(step.id)
    sessions: dict[str, Any] = {}
    summary: list[str] = []
    started_at = time.time()
    for copy in copies_for(step):
        remove_inside(transport, f"{work}/{copy}")
        res = transport.run(["mkdir", "-p", f"{work}/{copy}"], timeout=60)
        if not res.ok:
            raise StepFailed(f"{step.id}: cannot make {work}/{copy} on board {transport.name}: {res.stderr[:200]}")
        argv = _session_argv(deploy["companion"], f"{work}/{copy}.js", work, copy, sends, wall, runtime)
        res = transport.run(argv, timeout=wall + 120, env=ant_build.runtime_env(deploy))
        with log.open("a", encoding="utf-8") as f:
            f.write(res.stdout + res.stderr)
        summary += _summary_lines(res.stdout + res.stderr)
        app_log = run.raw_path(step.id, f".{copy}.log")
        try:
            transport.get(f"{rel}/{copy}.runtime.log", app_log)
        except StepFailed:
            app_log.write_text("")
        sessions[copy] = {"rc": res.exit_code, "log": str(app_log), "wall_s": round(res.wall_s, 1)}
    return _measured(
        step,
        run,
        sessions=sessions,
        summary=summary,
        sends=sends,
        wall=wall,
        runtime=runtime,
        started_at=started_at,
        log=log,
        identity=deploy["identity"],
        where=f" on board {transport.name}",
        companion="stand-in on the board's loopback",
    )


def exec_measure(step: Step, run: Run) -> dict[str, Any]:
    deploy = run.outputs.get(f"deploy:{step.target}")
    patch = run.outputs.get(f"patch:per-send:{step.target}")
    if deploy is None or patch is None:
        raise Blocked(f"{step.id}: nothing deployed for {step.target}", "run the build and deploy steps first")
    if step.where == "board":
        return _measure_board(step, run, deploy, patch)
    identity = ant_build.check_emulation(step, run)
    variant = step.variant or ""
    sends = int(patch["sends"])
    wall = wall_bound_s(run.mode)
    work = run.work_dir(f"kpi2-{step.id}")
    companion = ant_build.stage_companion(work)
    log = run.log_path(step.id)
    runtime = [deploy["iotjs"], f"{ant_build.TREE_MOUNT}/{MAIN_OLD}"]
    sessions: dict[str, Any] = {}
    started_at = time.time()
    with ant_build.runtime_container(run, deploy, work) as c:
        for copy in copies_for(step):
            shutil.copy2(patch["scripts"][variant][copy], work / f"{copy}.js")
            cwd = work / copy
            if cwd.exists():
                shutil.rmtree(cwd)  # main-old.js would load a leftover app0.js at start-up
            cwd.mkdir()
            argv = _session_argv(
                companion, f"{ant_build.WORK_MOUNT}/{copy}.js", ant_build.WORK_MOUNT, copy, sends, wall, runtime
            )
            t0 = time.monotonic()
            rc = c.run(argv, log_path=log)
            app_log = run.raw_path(step.id, f".{copy}.log")
            src_log = work / f"{copy}.runtime.log"
            if src_log.is_file():
                shutil.copy2(src_log, app_log)
            else:
                app_log.write_text("")
            sessions[copy] = {"rc": rc, "log": str(app_log), "wall_s": round(time.monotonic() - t0, 1)}
    summary = _summary_lines(log.read_text(errors="replace"))
    return _measured(
        step,
        run,
        sessions=sessions,
        summary=summary,
        sends=sends,
        wall=wall,
        runtime=runtime,
        started_at=started_at,
        log=log,
        identity={**identity, "container_image": deploy["image_id"]},
    )


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def _session_note(outputs: dict[str, Any], copy: str) -> str:
    lines = outputs.get("summary", [])
    idx = list(COPIES).index(copy)
    # The driver prints one session line and one companion line per session, in COPIES order.
    sess = [ln for ln in lines if ln.startswith("session:") and " lines in " in ln]
    comp = [ln for ln in lines if ln.startswith("companion: received")]
    parts = []
    if idx < len(sess):
        parts.append(sess[idx].removeprefix("session: "))
    if idx < len(comp):
        parts.append(comp[idx])
    return "; ".join(parts)


def _own_rows(outputs: dict[str, Any], copy: str, common: dict[str, Any], repeat: int, log: str) -> list[Row]:
    """The stand-in's own time per message of one session (`companion: own ms:` lines, in COPIES
    order): its share of each round trip, shown beside the round trips."""
    own = [ln for ln in outputs.get("summary", []) if ln.startswith(OWN_PREFIX)]
    idx = list(COPIES).index(copy)
    if idx >= len(own):
        return []
    values = [float(x) for x in own[idx].removeprefix(OWN_PREFIX).split()]
    note = "the loopback stand-in's own time per message: the device's POST in, its reply out"
    return [
        Row(
            metric="companion_own",
            value=v,
            unit="ms",
            status="ok",
            log=log,
            repeat=repeat,
            sample=i,
            note=note,
            **common,
        )
        for i, v in enumerate(values, start=1)
    ]


def rows_for(run: Run, step: Step, outputs: dict[str, Any]) -> list[Row]:
    """Rows of one measure step: rtt per sample after the warm-up, elapsed_raw per printed line."""
    build = run.outputs.get(f"build:{ant_build.BUILD}:{step.target}", {})
    sends = int(outputs.get("sends", UPSTREAM_SENDS))
    shortened = (
        f"smoke: {sends} sends instead of {UPSTREAM_SENDS} (loop bound lowered in the derived copy)"
        if sends != UPSTREAM_SENDS
        else ""
    )
    common: dict[str, Any] = dict(
        run_id=run.run_id,
        kpi=KPI,
        variant=step.variant or "-",
        workload=step.workload,
        target=step.target,
        fidelity=step.fidelity or "host",
        mode=run.mode,
        source_commit=build.get("provenance", {}).get("source_commit", ""),
        image_digest=build.get("provenance", {}).get("image_id", ""),
        artefact_sha256=build.get("sha256", ""),
        argv=[str(a) for a in outputs.get("argv", step.argv)],
        target_identity=outputs.get("identity", {}),
        time=datetime.fromtimestamp(float(outputs.get("started_at", time.time())), timezone.utc).isoformat(
            timespec="seconds"
        ),
        **run.provenance_base(),
    )
    repeat = step.repeat or 0
    rows: list[Row] = []
    specs = (
        ("persend", "rtt", resourcebench.WARMUP, "per-send copy: one round trip per line, sample 1 dropped as warm-up"),
        ("raw", "elapsed_raw", 0, "upstream stamping: time since app load, not a round trip"),
    )
    for copy, metric, warmup, what in specs:
        sess = outputs["sessions"].get(copy)
        if sess is None:
            continue
        log_rel = run.rel(Path(sess["log"]))
        samples = resourcebench.parse(sess["log"])
        companion = outputs.get("companion", "")
        if companion:
            companion = f"companion: {companion} (official figures need the phone app on the board's network)"
        note_base = "; ".join(p for p in (what, shortened, companion, _session_note(outputs, copy)) if p)
        kept = resourcebench.without_warmup(samples, warmup)
        if sess["rc"] != 0 or not kept:
            why = f"session exited {sess['rc']}" if sess["rc"] != 0 else f"{len(samples)} result line(s)"
            rows.append(
                Row(
                    metric=metric,
                    value=math.nan,
                    unit="ms",
                    status="failed",
                    log=log_rel,
                    repeat=repeat,
                    note=f"{why}; {note_base}",
                    **common,
                )
            )
            continue
        if copy == "persend":
            rows += _own_rows(outputs, copy, common, repeat, log_rel)
        for s in kept:
            ok = not math.isnan(s.ms)
            label = f"sample {s.index}" + ("" if ok else " printed NaN")
            rows.append(
                Row(
                    metric=metric,
                    value=s.ms,
                    unit="ms",
                    status="ok" if ok else "failed",
                    log=log_rel,
                    repeat=repeat,
                    sample=s.index,
                    note=f"{label}; {note_base}",
                    **common,
                )
            )
    return rows


def exec_parse(step: Step, run: Run) -> dict[str, Any]:
    return {"rows": journal_measurements(run, step.depends, rows_for, "sessions")}


EXECUTORS: dict[str, Executor] = {
    "build": exec_build,
    "deploy": ant_build.exec_deploy,
    "measure": exec_measure,
    "parse": exec_parse,
}
