"""Run KPIs: turn plan steps into real work (checkouts, images, builds, QEMU/host runs, rows).

The shared step kinds (source, image, build, deploy) live here; what a KPI measures and how its
raw output becomes rows lives in the KPI's own module (harness/kpi_*.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from harness.errors import (
    EXIT_BAD_INPUT,
    EXIT_BLOCKED,
    EXIT_KPI_FAILED,
    EXIT_OK,
    EXIT_STEP_FAILED,
    BadInput,
    Blocked,
    StepFailed,
)
from harness.manifest import Build, Manifest, load_manifest
from harness.plan import KpiPlan, PlanContext, plan_kpi
from harness.runner import Executor, Run, StepRunner, StepState, open_run, run_lock
from harness.steps import Mode, Step

if TYPE_CHECKING:
    from harness.cli import GlobalOptions

DEFAULT_BUILDS = ("iotjs", "iotjs_plus", "vminfo")
DEFAULT_BUILD_TARGETS = ("rpi2", "arm64")


# --------------------------------------------------------------------------------------------
# Shared executors
# --------------------------------------------------------------------------------------------


def exec_source(step: Step, run: Run) -> dict[str, Any]:
    from harness.sources import checkout

    name = step.params["source"]
    src = run.manifest.sources[name]
    co = checkout(
        src,
        run.cache_dir / "sources",
        override=run.overrides.get(name),
        paths=tuple(step.params.get("paths", ())),
        log=run.log_path(step.id),
    )
    return {"path": str(co.path), "commit": co.commit, "provenance": co.to_provenance()}


def _docker(run: Run) -> Any:
    from harness.images import docker_client

    client = run.options.get("docker_client")
    if client is None:
        client = docker_client()
        run.options["docker_client"] = client
    return client


def exec_image(step: Step, run: Run) -> dict[str, Any]:
    from harness.images import ensure_image

    img = run.manifest.images[step.params["image"]]
    if not (run.project_root / img.context).is_dir():
        raise Blocked(f"image {img.name}: its build context {img.context} is not in this version of the harness",
                      "see `ant-kpi plan` for what the image must hold; smoke steps that need it stay blocked")
    ref = ensure_image(
        img, root=run.project_root, client=_docker(run), console=run.console, log_path=run.log_path(step.id)
    )
    return {"tag": ref.tag, "id": ref.id, "digest": ref.digest, "provenance": ref.to_provenance()}


def _derive(tree: Path, build: Build) -> list[str]:
    done = []
    for d in build.derive:
        src, dst = tree / d.from_, tree / d.path
        if dst.exists():
            continue
        if not src.exists():
            raise StepFailed(f"build {build.name}: cannot derive {d.path}: {d.from_} is absent")
        pat = re.compile(d.drop_matching)
        kept = [ln for ln in src.read_text().splitlines(keepends=True) if not pat.search(ln)]
        dst.write_text("".join(kept))
        done.append(d.path)
    return done


def _copy_tree(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns(".git"))


_ELF_ARCH = {"armhf": (32, "arm"), "arm64": (64, "aarch64"), "x86_64": (64, "x86_64")}


def _check_output_arch(path: Path, arch: str, what: str, log: str) -> None:
    """A build that ignores the cross compiler still 'succeeds': check the ELF header."""
    from harness.qemu import EM_NAMES, elf_info

    info = elf_info(path)
    want = _ELF_ARCH[arch]
    if (info.elf_class, EM_NAMES.get(info.machine, str(info.machine))) != want:
        raise StepFailed(f"{what} produced {info.describe()}, not an {arch} binary", log=log)


def _dep_output(step: Step, run: Run, prefix: str) -> dict[str, Any]:
    """Outputs of the dependency `prefix` (a source step may carry its paths: source:ant:api,...)."""
    for dep in step.depends:
        if dep == prefix or dep.startswith(prefix + ":"):
            return run.outputs[dep]
    raise KeyError(f"{step.id} has no dependency {prefix}")


def prepare_tree(step: Step, run: Run, build: Build, tree: Path) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Copy the build's source to `tree`, apply its overlay and derived files.

    Returns (the source step's outputs, overlay provenance, derived paths).
    """
    src_out = _dep_output(step, run, f"source:{build.source}")
    _copy_tree(Path(src_out["path"]), tree)
    overlay_prov: dict[str, str] = {}
    if build.overlay is not None:
        ov = _dep_output(step, run, f"source:{build.overlay.source}")
        _copy_tree(Path(ov["path"]), tree / build.overlay.path)
        overlay_prov = {"overlay": build.overlay.path, "overlay_commit": ov["commit"]}
    return src_out, overlay_prov, _derive(tree, build)


def exec_build(step: Step, run: Run) -> dict[str, Any]:
    from harness.artefacts import ArtefactStore
    from harness.container import Container

    build = run.manifest.builds[step.params["build"]]
    target = step.target
    store = ArtefactStore(run.cache_dir / "artefacts")
    hit = store.lookup(step.key)
    if hit is not None:
        run.console.print(
            f"[dim]    reuse {build.name} for {target}: artefact {hit.sha256[:12]} (inputs unchanged)[/dim]"
        )
        return {"sha256": hit.sha256, "path": str(hit.path), "reused": True, "provenance": hit.provenance}
    img_out = run.outputs[f"image:{build.image}"]
    tree = run.work_dir(f"build-{build.name}-{target}") / "src"
    src_out, overlay_prov, derived = prepare_tree(step, run, build, tree)
    argv = list(build.full_argv(target))
    log = run.log_path(step.id)
    with Container(_docker(run), img_out["tag"], mounts={str(tree): "/src"}, workdir="/src") as c:
        rc = c.run(argv, cwd="/src", log_path=log)
    out = tree / build.output[target]
    if rc != 0:
        raise StepFailed(f"build {build.name} for {target} exited {rc}", log=run.rel(log))
    # Upstream scripts have reported success without producing the binary: trust the file only.
    if not out.is_file():
        raise StepFailed(f"build {build.name} for {target} produced no {build.output[target]}", log=run.rel(log))
    _check_output_arch(out, run.manifest.targets[target].arch, f"build {build.name} for {target}", run.rel(log))
    prov = {
        "source": build.source,
        "source_commit": src_out["commit"],
        "image": img_out["tag"],
        "image_id": img_out["id"],
        "argv": argv,
        "fixes": [list(f.args) for f in build.fixes],
        "derived": derived,
        "target": target,
        "log": run.rel(log),
        **overlay_prov,
        "tool_versions": img_out.get("provenance", {}).get("tool_versions", {}),
    }
    art = store.put(out, name=build.artefact, kind="binary", provenance=prov, key=step.key)
    return {"sha256": art.sha256, "path": str(art.path), "reused": False, "provenance": prov}


def record_blocked(step: Step, run: Run, state: StepState) -> None:
    """A measurement that could not run still leaves a row: the report shows it BLOCKED/failed."""
    if step.kind != "measure":
        return
    from harness.results import Row, append_row_journal

    kpi = run.manifest.kpi(step.kpi)
    metric = kpi.compare.metric if kpi.compare is not None else kpi.metrics[0].name
    append_row_journal(
        run.run_dir,
        Row(
            run_id=run.run_id,
            kpi=step.kpi,
            metric=metric,
            variant=step.variant or "-",
            workload=step.workload,
            target=step.target,
            fidelity=step.fidelity or "host",  # type: ignore[arg-type]
            mode=run.mode,  # type: ignore[arg-type]
            repeat=step.repeat or 0,
            value=float("nan"),
            unit=kpi.metric(metric).unit,
            status="failed" if state.status == "failed" else "blocked",
            argv=list(step.argv),
            note=state.message,
            **run.provenance_base(),
        ),
    )


def _exec_any_build(step: Step, run: Run) -> dict[str, Any]:
    """build_arm / build_ant: ANT keeps its build tree (its modules are found by absolute path)."""
    if step.params.get("build") == "ant":
        from harness.ant_build import exec_ant_build

        return exec_ant_build(step, run)
    return exec_build(step, run)


RowsFor = Callable[[Run, Step, dict[str, Any]], list[Any]]


def journal_measurements(run: Run, step_ids: Iterable[str], rows_for: RowsFor, needs: str) -> int:
    """The parse steps' common part: rows of every completed measurement (outputs with `needs`)."""
    from harness.results import append_row_journal

    n = 0
    for sid in step_ids:
        outputs = run.outputs.get(sid)
        if not outputs or needs not in outputs:
            continue
        for row in rows_for(run, run.options["steps"][sid], outputs):
            append_row_journal(run.run_dir, row)
            n += 1
    return n


def measured_fields(run: Run, step: Step, outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The row fields every measure step gives the same way: variant, fidelity, repeat and provenance.

    `outputs` is what the measure step returned: `argv`, `identity`, `log`, `source_commit`.
    """
    return {
        "variant": step.variant, "fidelity": step.fidelity or "host", "repeat": step.repeat or 0,
        "argv": [str(a) for a in outputs.get("argv", ())], "target_identity": outputs.get("identity", {}),
        "log": run.rel(Path(outputs["log"])) if outputs.get("log") else "",
        "source_commit": str(outputs.get("source_commit", "")),
    }


def evaluate_kpi(run: Run, kpi_id: str) -> dict[str, Any]:
    """Judge one KPI from the run's journal and keep the evaluation beside the rows."""
    from harness.fsio import atomic_write_text
    from harness.reporting import collect
    from harness.stats import evaluate

    # The journal, one row per identity (a resumed parse journals a row again; the last one counts).
    ev = evaluate(run.manifest.kpi(kpi_id), collect(run.run_dir).filter(kpi=kpi_id))
    doc = {"verdict": ev.verdict.value, "reason": ev.reason, "value": ev.value, "ci": [ev.ci_low, ev.ci_high]}
    atomic_write_text(run.run_dir / "evaluations" / f"{kpi_id}.json", json.dumps(doc, indent=1, default=str))
    return {"verdict": ev.verdict.value, "value": ev.value, "reason": ev.reason}


def exec_evaluate(step: Step, run: Run) -> dict[str, Any]:
    return evaluate_kpi(run, step.kpi)


COMMON_EXECUTORS: dict[str, Executor] = {
    "source": exec_source,
    "image": exec_image,
    "build": exec_build,
    "evaluate": exec_evaluate,
}


# --------------------------------------------------------------------------------------------
# Target identity (provenance)
# --------------------------------------------------------------------------------------------


def host_identity() -> dict[str, Any]:
    ident: dict[str, Any] = {
        "kind": "host",
        "machine": platform.machine(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
    }
    try:
        cpu = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
        ident["cpu"] = cpu
    except (OSError, StopIteration):
        pass
    gov = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if gov.exists():
        ident["governor"] = gov.read_text().strip()
    try:
        load = os.getloadavg()
        ident["load"] = [round(x, 2) for x in load]
    except OSError:
        pass
    return ident


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


# Each KPI's own executors: (module, attribute); a new KPI is a new entry, not a new branch.
KPI_EXECUTORS: Final[dict[str, tuple[str, str]]] = {
    "js_memory": ("harness.kpi_js_memory", "EXECUTORS"),
    "ml_latency": ("harness.kpi_ml", "EXECUTORS_ML_LATENCY"),
    "ml_memory": ("harness.kpi_ml", "EXECUTORS_ML_MEMORY"),
    "app_latency": ("harness.kpi_app_latency", "EXECUTORS"),
    "boards": ("harness.kpi_boards", "EXECUTORS"),
    "npus": ("harness.kpi_npus", "EXECUTORS"),
    "tinyml_memory": ("harness.kpi_tinyml", "EXECUTORS"),
    "vit_throughput": ("harness.kpi_vit", "EXECUTORS"),
}


def _executors_for(kpi_id: str) -> dict[str, Executor]:
    ex = dict(COMMON_EXECUTORS)
    if kpi_id in KPI_EXECUTORS:
        module, attr = KPI_EXECUTORS[kpi_id]
        ex.update(getattr(importlib.import_module(module), attr))
    return ex

def _filter_plan(plan: KpiPlan, workloads: list[str]) -> KpiPlan:
    if not workloads:
        return plan
    keep = tuple(s for s in plan.steps if s.kind != "measure" or not s.workload or s.workload in workloads)
    return replace(plan, steps=keep)


def _load(opts: GlobalOptions) -> Manifest:
    return load_manifest(opts.manifest)


def cmd_run(args: argparse.Namespace, opts: GlobalOptions) -> int:
    from harness.boardrun import resolve_targets
    from harness.planview import print_plans
    from harness.sources import parse_source_overrides

    m = _load(opts)
    if args.repeats is not None:
        m = replace(m, defaults=replace(m.defaults, repeats=args.repeats, smoke_repeats=args.repeats))
    kpis = [m.kpi(k) for k in args.kpis]
    targets, boards = resolve_targets(m, args.target, args.boards)
    mode: Mode = args.mode or ("measure" if boards else "smoke")
    if boards and mode != "measure":
        raise BadInput("a board was named with --mode smoke: boards are for measure runs")
    plans = [
        _filter_plan(
            plan_kpi(m, k, mode=mode, targets=tuple(targets), project_root=opts.project_root,
                     boards={t: b.name for t, b in boards.items()}),
            args.workload,
        )
        for k in kpis
    ]
    if args.dry_run:
        print_plans(plans)
        return EXIT_OK
    overrides = parse_source_overrides(args.source)
    run = open_run(
        manifest=m,
        project_root=opts.project_root,
        mode=mode,
        runs_dir=opts.runs_dir,
        run_id=args.run_id,
        overrides=overrides,
    )
    run.console.print(f"run {run.run_id} → {run.run_dir}")
    states: dict[str, Any] = {}
    run.options.update(steps={s.id: s for p in plans for s in p.steps}, boards=boards, wait=args.wait)
    # Board leases taken during the run are released when it ends (or by the kernel if it dies).
    with run_lock(run, wait=args.wait), contextlib.ExitStack() as stack:
        run.options["exit_stack"] = stack
        for plan in plans:
            run.console.rule(f"KPI {plan.kpi.number} · {plan.kpi.id} · {mode}")
            for g in plan.gaps:
                run.console.print(f"[yellow]  gap:[/yellow] {g}")
            states[plan.kpi.id] = StepRunner(run, _executors_for(plan.kpi.id), on_blocked=record_blocked).execute(plan)
    from harness.reporting import finish_run

    verdicts = finish_run(run, [p.kpi for p in plans])
    return _exit_code(states, verdicts)


def _exit_code(states: Mapping[str, Mapping[str, Any]], verdicts: list[str]) -> int:
    """1 if a KPI failed its target; else the most serious step outcome: bad input, tool failure, blocked."""
    if "FAIL" in verdicts:
        return EXIT_KPI_FAILED
    codes = {st.code for per in states.values() for st in per.values() if st.status != "ok"}
    for code in (EXIT_BAD_INPUT, EXIT_STEP_FAILED, EXIT_BLOCKED):
        if code in codes:
            return code
    return EXIT_OK


def build_plan(m: Manifest, builds: list[str], targets: list[str], project_root: Path) -> KpiPlan:
    """A plan of build steps only (build_arm): each build for each target it supports."""
    kpi = m.kpi("js_memory")
    ctx = PlanContext(manifest=m, kpi=kpi, mode="smoke", targets=tuple(targets), project_root=project_root)
    for b in builds:
        if b not in m.builds:
            raise BadInput(f"no build {b!r} in {m.path}; builds: {', '.join(m.builds)}")
        for t in targets:
            if t not in m.targets:
                raise BadInput(f"no target {t!r} in {m.path}; targets: {', '.join(m.targets)}")
            ctx.build(m.builds[b], t)
    return KpiPlan(kpi=kpi, mode="smoke", targets=tuple(targets), steps=tuple(ctx.steps), gaps=tuple(ctx.gaps))


def cmd_build(args: argparse.Namespace, opts: GlobalOptions) -> int:
    from harness.planview import print_plans
    from harness.sources import parse_source_overrides

    m = _load(opts)
    builds = list(args.builds) or list(DEFAULT_BUILDS)
    targets = list(args.target) or (list(m.targets) if args.builds == ["ant"] else list(DEFAULT_BUILD_TARGETS))
    plan = build_plan(m, builds, targets, opts.project_root)
    if args.dry_run:
        print_plans([plan])
        return EXIT_OK
    run = open_run(
        manifest=m,
        project_root=opts.project_root,
        mode="smoke",
        runs_dir=opts.runs_dir,
        run_id=args.run_id,
        overrides=parse_source_overrides(args.source),
    )
    run.console.print(f"build run {run.run_id} → {run.run_dir}")
    for g in plan.gaps:
        run.console.print(f"[yellow]  not built:[/yellow] {g}")
    with run_lock(run):
        states = StepRunner(run, {**COMMON_EXECUTORS, "build": _exec_any_build}).execute(plan)
    summary = {
        sid: {
            "status": st.status,
            "message": st.message,
            **{k: st.outputs.get(k) for k in ("sha256", "path", "reused") if k in st.outputs},
        }
        for sid, st in states.items()
        if sid.startswith("build:")
    }
    from harness.fsio import atomic_write_text

    atomic_write_text(run.run_dir / "builds.json", json.dumps({"builds": summary, "gaps": list(plan.gaps)}, indent=1))
    for sid, info in summary.items():
        mark = "reused" if info.get("reused") else info["status"]
        run.console.print(f"  {sid:28} {mark:8} {str(info.get('sha256', ''))[:16]} {info['message']}")
    return _exit_code({"build": states}, [])


def cmd_images(args: argparse.Namespace, opts: GlobalOptions) -> int:
    from rich.console import Console

    from harness.images import bootstrap_base, docker_client, ensure_image

    con = Console(stderr=True, emoji=False)
    if args.images_command == "bootstrap-base":
        work = Path(os.environ.get("ANT_KPI_CACHE", opts.project_root / ".ant-kpi/cache")) / "bootstrap"
        ref = bootstrap_base(
            args.tag,
            suite=args.suite,
            mirror=args.mirror,
            work_dir=work,
            client=docker_client(),
            console=con,
            force=args.force,
        )
        con.print(f"base image {args.tag}: {getattr(ref, 'id', ref)}")
        return EXIT_OK
    m = _load(opts)
    names = args.names or list(m.images)
    client = docker_client()
    for n in names:
        if n not in m.images:
            raise BadInput(f"no image {n!r} in {m.path}; images: {', '.join(m.images)}")
        if not (opts.project_root / m.images[n].context).is_dir():
            raise Blocked(
                f"image {n}: build context {m.images[n].context} is not in this version",
                "see the issue tracker for the KPI that needs it",
            )
        img = ensure_image(m.images[n], root=opts.project_root, client=client, console=con)
        con.print(f"{n}: {img.tag} {img.id[:19]} {'reused' if img.reused else 'built'}")
    return EXIT_OK
