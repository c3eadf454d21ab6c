"""The executors every KPI shares: checkouts, images, builds, evaluation, and the parse steps' common part.

The shared step kinds (source, image, build, deploy) live here; what a KPI measures and how its
raw output becomes rows lives in the KPI's own folder (harness/kpis/<kpi>/execute.py).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.manifest import Build
from harness.core.runner import Executor, Run, StepState
from harness.core.steps import Step
from harness.errors import (
    Blocked,
    StepFailed,
)

if TYPE_CHECKING:
    pass

DEFAULT_BUILDS = ("iotjs", "iotjs_plus", "vminfo")
DEFAULT_BUILD_TARGETS = ("rpi2", "arm64")


# --------------------------------------------------------------------------------------------
# Shared executors
# --------------------------------------------------------------------------------------------


def exec_source(step: Step, run: Run) -> dict[str, Any]:
    from harness.env.sources import checkout

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


def docker_for(run: Run) -> Any:
    """The run's Docker client, made on first use for the engine the run's settings name."""
    from harness.env.images import docker_client

    if run.docker is None:
        run.docker = docker_client(run.env)
    return run.docker


def container_for(run: Run, tag: str, **kw: Any) -> Any:
    """A Container of image `tag` on the run's engine, kept on failure when the run's settings ask."""
    from harness.env.container import Container

    return Container(docker_for(run), tag, keep_on_failure=run.env.keep_container, **kw)


def exec_image(step: Step, run: Run) -> dict[str, Any]:
    from harness.env.images import ensure_image

    img = run.manifest.images[step.params["image"]]
    if not (run.project_root / img.context).is_dir():
        raise Blocked(
            f"image {img.name}: its build context {img.context} is not in this version of the harness",
            "see `ant-kpi plan` for what the image must hold; smoke steps that need it stay blocked",
        )
    base_step = step.params.get("base_from")
    if base_step:
        # Built on an image this run made (gemmini-sim on tvm-npu): its tag is the base.
        base = run.outputs.get(str(base_step))
        if base is None:
            raise Blocked(f"image {img.name}: its base {base_step} is missing", f"let {base_step} complete")
        img = dataclasses.replace(img, base=str(base["tag"]))
    from harness.env.wheelhouse import host_wheelhouse

    env = run.env
    notes: tuple[str, ...] = ()
    filled = host_wheelhouse(
        img.name,
        run.project_root / img.context,
        run.env,
        run.cache_dir / "wheelhouse",
        log=run.log_path(f"{step.id}-wheelhouse"),
    )
    if filled is not None:
        env, notes = filled.env, filled.notes
        for n in notes:
            run.console.print(f"  {img.name}: {n}")
    ref = ensure_image(
        img,
        root=run.project_root,
        env=env,
        client=docker_for(run),
        console=run.console,
        log_path=run.log_path(step.id),
    )
    prov = {**ref.to_provenance(), **({"wheelhouse": list(notes)} if notes else {})}
    return {"tag": ref.tag, "id": ref.id, "digest": ref.digest, "provenance": prov}


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
    from harness.env.qemu import EM_NAMES, elf_info

    info = elf_info(path)
    want = _ELF_ARCH[arch]
    if (info.elf_class, EM_NAMES.get(info.machine, str(info.machine))) != want:
        raise StepFailed(f"{what} produced {info.describe()}, not an {arch} binary", log=log)


def dep_output(step: Step, run: Run, prefix: str) -> dict[str, Any]:
    """Outputs of the dependency `prefix` (a source step may carry its paths: source:ant:api,...)."""
    for dep in step.depends:
        if dep == prefix or dep.startswith(prefix + ":"):
            return run.outputs[dep]
    raise KeyError(f"{step.id} has no dependency {prefix}")


def prepare_tree(step: Step, run: Run, build: Build, tree: Path) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Copy the build's source to `tree`, apply its overlay and derived files.

    Returns (the source step's outputs, overlay provenance, derived paths).
    """
    src_out = dep_output(step, run, f"source:{build.source}")
    _copy_tree(Path(src_out["path"]), tree)
    overlay_prov: dict[str, str] = {}
    if build.overlay is not None:
        ov = dep_output(step, run, f"source:{build.overlay.source}")
        _copy_tree(Path(ov["path"]), tree / build.overlay.path)
        overlay_prov = {"overlay": build.overlay.path, "overlay_commit": ov["commit"]}
    return src_out, overlay_prov, _derive(tree, build)


def exec_build(step: Step, run: Run) -> dict[str, Any]:
    from harness.core.artefacts import ArtefactStore

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
    with container_for(run, img_out["tag"], mounts={str(tree): "/src"}, workdir="/src") as c:
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
    from harness.results.journal import append_row_journal
    from harness.results.rows import Row

    kpi = run.manifest.kpi(step.kpi)
    metric = kpi.compare.metric if kpi.compare is not None else kpi.metrics[0].name
    append_row_journal(
        run.run_dir,
        Row(
            run_id=run.run_id,
            kpi=step.kpi,
            metric=metric,
            variant=step.variant,
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


RowsFor = Callable[[Run, Step, dict[str, Any]], list[Any]]


def journal_measurements(run: Run, step_ids: Iterable[str], rows_for: RowsFor, needs: str) -> int:
    """The parse steps' common part: rows of every completed measurement (outputs with `needs`)."""
    from harness.results.journal import append_row_journal

    n = 0
    for sid in step_ids:
        outputs = run.outputs.get(sid)
        if not outputs or needs not in outputs:
            continue
        for row in rows_for(run, run.steps[sid], outputs):
            append_row_journal(run.run_dir, row)
            n += 1
    return n


def measured_fields(run: Run, step: Step, outputs: Mapping[str, Any]) -> dict[str, Any]:
    """The row fields every measure step gives the same way: variant, fidelity, repeat and provenance.

    `outputs` is what the measure step returned: `argv`, `identity`, `log`, `source_commit`.
    """
    return {
        "variant": step.variant,
        "fidelity": step.fidelity or "host",
        "repeat": step.repeat or 0,
        "argv": [str(a) for a in outputs.get("argv", ())],
        "target_identity": outputs.get("identity", {}),
        "log": run.rel(Path(outputs["log"])) if outputs.get("log") else "",
        "source_commit": str(outputs.get("source_commit", "")),
    }


def evaluate_kpi(run: Run, kpi_id: str) -> dict[str, Any]:
    """Judge one KPI from the run's journal and keep the evaluation beside the rows."""
    from harness.core.fsio import atomic_write_text
    from harness.results.runs import collect
    from harness.results.verdicts import evaluate

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
