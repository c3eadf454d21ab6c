"""Execute a KPI plan: one run directory, a lock, step states keyed by content, resume, BLOCKED.

A step whose key matches a completed state in the run directory is skipped, so an interrupted run
resumes where it stopped. A step that cannot run here ends BLOCKED with what is missing; steps that
depend on it are blocked too, every other step still runs, and rows already measured are kept.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.markup import escape

from harness import __version__
from harness.core.fsio import LockBusy, atomic_write_text, exclusive_lock
from harness.core.manifest import Manifest
from harness.core.plan import KpiPlan
from harness.core.steps import Step
from harness.errors import EXIT_STEP_FAILED, BadInput, Blocked, HarnessError
from harness.options import DEFAULT_CACHE_DIR, DEFAULT_RUNS_DIR, EnvSettings
from harness.redact import redact_text

# A run id names one directory inside the runs directory: a plain name, never a path.
RUN_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
RUN_ID_MAX: Final = 100
RUNS_LOCK: Final = ".lock"


def new_run_id() -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def check_run_id(name: str) -> str:
    """`name` if it is a plain run name (letters, digits, '_', '-', '.'; not a path); else BadInput."""
    if not RUN_ID_RE.match(name) or len(name) > RUN_ID_MAX:
        raise BadInput(
            f"--run-id {name[:40]!r}{'…' if len(name) > 40 else ''}: a run id is a plain name of at most "
            f"{RUN_ID_MAX} letters, digits, '_', '-' and '.', starting with a letter or digit (no path)"
        )
    return name


def runs_lock(runs_dir: Path, *, holder: str, wait: bool = False, console: Console | None = None) -> Any:
    """The lock of a runs directory (<runs>/.lock), taken before anything of a run is written.

    One command at a time writes a runs directory: runs never measure side by side (they would
    share the CPU and skew each other's figures), and ingest and report never write a run that a
    run is writing.
    """
    from harness.core.fsio import ensure_dir

    ensure_dir(runs_dir, "runs directory")
    lock = runs_dir / RUNS_LOCK

    def busy(text: str) -> LockBusy:
        return LockBusy(
            f"runs directory {runs_dir} is in use by {text}: one run at a time per runs directory is "
            "deliberate (measurement hygiene: two runs would share the CPU and skew each other's figures) "
            "— wait for it to end, or pass --wait to queue behind it"
        )

    def waiting(text: str) -> None:
        if console is not None:
            console.print(f"waiting for {text} to release {lock} (one run at a time per runs directory)")

    return exclusive_lock(lock, wait=wait, holder=holder, busy=busy, on_wait=waiting)


def harness_revision(root: Path) -> tuple[str, bool]:
    """(git commit of the harness tree, dirty flag); ('', False) outside a git checkout."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
        )
        return head, dirty
    except (OSError, subprocess.SubprocessError):
        return "", False


@dataclass(frozen=True, kw_only=True)
class StepState:
    id: str
    key: str
    status: str  # ok | blocked | failed
    started: str
    ended: str
    message: str = ""
    outputs: dict[str, Any] = field(default_factory=dict)
    code: int = 0  # the exit code this outcome maps to (errors.EXIT_*); 0 when ok
    # A step blocked through a dependency: the step whose own outcome is the cause (its message is
    # printed once; this step refers to it).
    cause: str = ""
    # A measurement's machine load: 1/5/15-minute averages before and after it and the CPU count,
    # so the report can flag numbers measured beside other work (a build, another run).
    load: dict[str, Any] = field(default_factory=dict)


def machine_load() -> list[float]:
    """This machine's 1, 5 and 15-minute load averages ([] where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def under_load(load: Mapping[str, Any]) -> bool:
    """Whether a measurement ran beside other work: a 1-minute load average before or after it above
    the CPU count (a measurement alone keeps it near the cores it uses, one or two here)."""
    cpus = int(load.get("cpus") or 0)
    peaks = [float(x[0]) for x in (load.get("before"), load.get("after")) if isinstance(x, list) and x]
    return bool(cpus and peaks) and max(peaks) > cpus


class StepOutputs(dict[str, dict[str, Any]]):
    """The outputs steps hand to each other. Boards run on threads of their own, so a step may read
    while another adds: iteration goes over a snapshot, never over the live table."""

    def items(self) -> list[tuple[str, dict[str, Any]]]:  # type: ignore[override]
        return list(super().items())

    def values(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return list(super().values())

    def keys(self) -> list[str]:  # type: ignore[override]
        return list(super().keys())

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))


@dataclass(kw_only=True)
class Run:
    """One run: its directory, the manifest, options and the outputs steps hand to each other."""

    run_id: str
    run_dir: Path
    manifest: Manifest
    project_root: Path
    cache_dir: Path
    mode: str
    overrides: Mapping[str, Path] = field(default_factory=dict)
    console: Console = field(default_factory=lambda: Console(stderr=True, emoji=False))
    outputs: dict[str, dict[str, Any]] = field(default_factory=StepOutputs)
    harness_commit: str = ""
    harness_dirty: bool = False
    env: EnvSettings = field(default_factory=EnvSettings)
    # Every planned step of the run by id (parse steps read their measure steps' plan data).
    steps: dict[str, Step] = field(default_factory=dict)
    # The run's boards, leases and transports (env.lab.session.Lab), made on first use.
    lab: Any = None
    # The Docker client, made on first use (kpis.common.executors.docker_for).
    docker: Any = None

    def log_path(self, step_id: str, suffix: str = ".log") -> Path:
        p = self.run_dir / "logs" / (safe_name(step_id) + suffix)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def work_dir(self, name: str) -> Path:
        p = self.run_dir / "work" / safe_name(name)
        p.mkdir(parents=True, exist_ok=True)
        return p

    def raw_path(self, step_id: str, suffix: str) -> Path:
        """Where a measure step keeps a raw trace or log: raw/<step id with ':' as '_'><suffix>."""
        p = self.run_dir / "raw" / (step_id.replace(":", "_") + suffix)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def state_path(self, kpi: str, step_id: str) -> Path:
        """The stored state of a step: steps/<kpi>/<step id>.json."""
        return self.run_dir / "steps" / safe_name(kpi) / f"{safe_name(step_id)}.json"

    def rel(self, p: Path) -> str:
        try:
            return str(Path(p).resolve().relative_to(self.run_dir.resolve()))
        except ValueError:
            return str(p)

    def provenance_base(self) -> dict[str, Any]:
        return {
            "harness_version": f"{__version__}+{self.harness_commit[:12]}" if self.harness_commit else __version__,
            "harness_dirty": self.harness_dirty,
        }


Executor = Callable[[Step, Run], dict[str, Any] | None]


def safe_name(name: str) -> str:
    """A step id or name as a file name: anything but [A-Za-z0-9_.-] becomes '_'."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", name)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# The kinds of step that belong to a board's lane: what runs on the board (deploy, measure) and
# the parse of its logs. Sources, images and builds use this machine's cores and stay in its lane.
BOARD_LANE_KINDS: Final = ("deploy", "measure", "parse")


def plan_lanes(steps: Sequence[Step], boards: Mapping[str, str]) -> dict[str, list[Step]]:
    """Steps by lane, each in plan order: "" for this machine, else the board's name.

    A board's lane holds the steps of its target that run on the board (where = "board") and the
    parse steps of that target; every other step — sources, images, builds, emulated or native runs,
    the evaluation — stays on this machine's lane, one at a time.
    """
    lanes: dict[str, list[Step]] = {"": []}
    for step in steps:
        board = boards.get(step.target) if step.target else None
        on_board = (
            board is not None and step.kind in BOARD_LANE_KINDS and (step.where == "board" or step.kind == "parse")
        )
        lanes.setdefault(board if on_board and board else "", []).append(step)
    return lanes


def _all_done(ids: Sequence[str], done: Mapping[str, StepState]) -> bool:
    return all(d in done for d in ids)


def _not_ok(step: Step, status: str, message: str, code: int, *, started: str = "", cause: str = "") -> StepState:
    """The state of a step that ended blocked or failed (started now unless given)."""
    return StepState(
        id=step.id,
        key=step.key,
        status=status,
        started=started or _now(),
        ended=_now(),
        message=message,
        code=code,
        cause=cause,
    )


def _interrupted(step: Step, e: BaseException) -> StepState:
    """The state of a step its lane never reached because the lane itself stopped."""
    return _not_ok(step, "failed", f"not run: its board's worker stopped ({type(e).__name__}: {e})", EXIT_STEP_FAILED)


class LaneProgress:
    """One line per board while boards run in parallel: in a terminal a live display (step k of n,
    the step running), elsewhere nothing beyond the step lines, which carry the board's name."""

    def __init__(self, console: Console, totals: Mapping[str, int]) -> None:
        self.console = console
        self.totals = dict(totals)
        self.live = console.is_terminal and bool(totals)
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> LaneProgress:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(
                TextColumn("[bold]{task.fields[board]}"),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                console=self.console,
                transient=False,
            )
            for name, total in self.totals.items():
                self._tasks[name] = self._progress.add_task("waiting", total=total, board=name)
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, lane: str, step: Step) -> None:
        if self._progress is not None and lane in self._tasks:
            self._progress.update(self._tasks[lane], description=escape(step.id))

    def end(self, lane: str, step: Step, st: StepState) -> None:
        if self._progress is not None and lane in self._tasks:
            self._progress.update(self._tasks[lane], advance=1, description=f"{escape(step.id)}: {st.status}")


class StepRunner:
    """Runs steps in plan order, skipping completed ones, recording every outcome."""

    def __init__(
        self,
        run: Run,
        executors: Mapping[str, Executor],
        on_blocked: Callable[[Step, Run, StepState], None] | None = None,
        *,
        lanes: Mapping[str, str] | None = None,
        board_workers: int = 0,
    ) -> None:
        self.run = run
        self.executors = executors
        self.on_blocked = on_blocked
        # target -> the board measuring it: that board's steps run on a worker of their own.
        self.lanes = dict(lanes or {})
        # 0: one worker per board; 1: every step one after another; N: at most N boards at a time.
        self.board_workers = board_workers
        self.states_dir = run.run_dir / "steps"
        self.states_dir.mkdir(parents=True, exist_ok=True)

    def _state_path(self, step: Step) -> Path:
        return self.run.state_path(step.kpi, step.id)

    def load_state(self, step: Step) -> StepState | None:
        p = self._state_path(step)
        try:
            d = json.loads(p.read_text())
            return StepState(**d)
        except (OSError, ValueError, TypeError):
            return None

    def _save(self, step: Step, state: StepState) -> None:
        atomic_write_text(self._state_path(step), json.dumps(state.__dict__, indent=1, default=str))

    def execute(self, plan: KpiPlan) -> dict[str, StepState]:
        """Every step of the plan; a board's steps on a worker of their own (see `lanes`)."""
        lanes = plan_lanes(plan.steps, self.lanes)
        if len(lanes) > 1 and self.board_workers != 1:
            return self._execute_parallel(plan, lanes)
        done: dict[str, StepState] = {}
        for step in plan.steps:
            done[step.id] = self._run_one(plan, step, done)
        return done

    def _execute_parallel(self, plan: KpiPlan, lanes: dict[str, list[Step]]) -> dict[str, StepState]:
        """This machine's lane in this thread, one thread per board lane.

        Each lane takes its steps in plan order and starts one when its dependencies have ended;
        the plan order is a topological order, so the earliest unfinished step can always start.
        With `board_workers` = N > 1, at most N board lanes run at a time.
        """
        done: dict[str, StepState] = {}
        ids = {s.id for s in plan.steps}
        cond = threading.Condition()
        slots = threading.BoundedSemaphore(self.board_workers) if self.board_workers > 1 else None
        failures: list[BaseException] = []
        progress = LaneProgress(self.run.console, {name: len(steps) for name, steps in lanes.items() if name})

        def run_lane(name: str, steps: list[Step]) -> None:
            for step in steps:
                needed = [d for d in (*step.depends, *step.after) if d in ids]
                with cond:
                    cond.wait_for(functools.partial(_all_done, needed, done))
                progress.start(name, step)
                st = self._run_one(plan, step, done, lane=name)
                progress.end(name, step, st)
                with cond:
                    done[step.id] = st
                    cond.notify_all()

        def board_worker(name: str, steps: list[Step]) -> None:
            try:
                if slots is None:
                    run_lane(name, steps)
                else:
                    with slots:
                        run_lane(name, steps)
            except BaseException as e:  # re-raised in the calling thread
                failures.append(e)
                with cond:  # whatever this lane did not reach is never marked done: end the wait
                    for s in steps:
                        done.setdefault(s.id, _interrupted(s, e))
                    cond.notify_all()

        self.run.console.print(
            "  boards in parallel: "
            + ", ".join(f"{name} ({len(steps)} steps)" for name, steps in lanes.items() if name)
            + ("" if slots is None else f"; at most {self.board_workers} at a time")
        )
        threads = [
            threading.Thread(target=board_worker, args=(name, steps), name=f"board-{name}", daemon=True)
            for name, steps in lanes.items()
            if name
        ]
        with progress:
            for t in threads:
                t.start()
            run_lane("", lanes.get("", []))
            for t in threads:
                t.join()
        if failures:
            raise failures[0]
        return {s.id: done[s.id] for s in plan.steps}

    def _run_one(self, plan: KpiPlan, step: Step, done: Mapping[str, StepState], *, lane: str = "") -> StepState:
        """Run (or skip, or block) one step whose dependencies have ended; its state is saved."""
        con = self.run.console
        tag = escape(f"[{lane}] ") if lane else ""
        blocked_dep = next((d for d in step.depends if d in done and done[d].status != "ok"), None)
        if blocked_dep is not None:
            # Refer to the step that caused it, not to a chain of dependants.
            root = done[blocked_dep].cause or blocked_dep
            st = _not_ok(step, "blocked", f"depends on {root}: {done[root].message}", done[root].code, cause=root)
            self._save(step, st)
            self._on_blocked(step, st, cause_status=done[root].status, lane=lane)
            return st
        prev = self.load_state(step)
        if prev is not None and prev.status == "ok" and prev.key == step.key and not step.always:
            self.run.outputs[step.id] = prev.outputs
            con.print(f"[dim]  skip  {tag}{step.id} (done, key {step.key})[/dim]")
            return prev
        executor = self.executors.get(step.kind)
        started = _now()
        t0 = time.monotonic()
        con.print(f"  [bold]run[/bold]   {tag}{step.id}: {step.description}")
        try:
            if executor is None:
                raise Blocked(
                    f"step {step.id}: no executor for {step.kind!r} steps of KPI {plan.kpi.id}",
                    f"this version of the harness plans KPI {plan.kpi.id} but cannot run it yet; "
                    f"see `ant-kpi plan {plan.kpi.id}`",
                )
            # This machine's load matters where the measurement runs here (natively, in a
            # container, under QEMU); a board's own load is not this machine's.
            here = step.kind == "measure" and step.where != "board"
            before = machine_load() if here else []
            outputs = executor(step, self.run) or {}
            load = {"before": before, "after": machine_load(), "cpus": os.cpu_count() or 0} if here else {}
            st = StepState(
                id=step.id, key=step.key, status="ok", started=started, ended=_now(), outputs=outputs, load=load
            )
            if load and under_load(st.load):
                con.print(
                    f"[yellow]  note[/yellow]  {tag}{step.id}: measured under load (1-min load "
                    f"{before[0] if before else '?'} before, {st.load['after'][0]} after, "
                    f"{st.load['cpus']} CPUs): the report flags it"
                )
        except Blocked as e:
            st = _not_ok(step, "blocked", str(e), e.exit_code, started=started)
        except HarnessError as e:
            # A failed tool or a bad input ends this step only: other steps and rows go on.
            st = _not_ok(step, "failed", e.one_line(), e.exit_code, started=started)
        except Exception as e:  # a defect in an executor must not lose the run's other results
            tb = self.run.log_path(step.id, ".traceback")
            tb.write_text(redact_text(traceback.format_exc()))
            internal = f"internal error {type(e).__name__}: {e} (traceback: {self.run.rel(tb)})"
            st = _not_ok(step, "failed", redact_text(internal), EXIT_STEP_FAILED, started=started)
        self._save(step, st)
        if st.status == "ok":
            self.run.outputs[step.id] = st.outputs
            con.print(f"[green]  ok[/green]    {tag}{step.id} ({time.monotonic() - t0:.1f} s)")
        else:
            self._on_blocked(step, st, lane=lane)
        return st

    def _on_blocked(self, step: Step, st: StepState, *, cause_status: str = "", lane: str = "") -> None:
        colour = "yellow" if st.status == "blocked" else "red"
        tag = escape(f"[{lane}] ") if lane else ""
        # The cause's reason was printed with the cause: a dependant names it and says no more.
        text = f"depends on {st.cause} ({cause_status or 'blocked'}, see above)" if st.cause else st.message
        self.run.console.print(f"[{colour}]  {st.status.upper():7}[/{colour}] {tag}{step.id}: {escape(text)}")
        if self.on_blocked is not None:
            self.on_blocked(step, self.run, st)


def open_run(
    *,
    manifest: Manifest,
    project_root: Path,
    mode: str,
    runs_dir: Path | None = None,
    run_id: str | None = None,
    cache_dir: Path | None = None,
    overrides: Mapping[str, Path] | None = None,
    console: Console | None = None,
    env: EnvSettings | None = None,
) -> Run:
    runs = runs_dir or project_root / DEFAULT_RUNS_DIR
    rid = check_run_id(run_id) if run_id is not None else new_run_id()
    # The run directory is made by the first step: open a run under runs_lock, so a run refused
    # by the lock leaves nothing behind.
    run_dir = runs / rid
    commit, dirty = harness_revision(project_root)
    cache = cache_dir or project_root / DEFAULT_CACHE_DIR
    cache.mkdir(parents=True, exist_ok=True)
    return Run(
        run_id=rid,
        run_dir=run_dir,
        manifest=manifest,
        project_root=project_root,
        cache_dir=cache,
        mode=mode,
        overrides=dict(overrides or {}),
        console=console or Console(stderr=True, emoji=False),
        harness_commit=commit,
        harness_dirty=dirty,
        env=env or EnvSettings(),
    )
