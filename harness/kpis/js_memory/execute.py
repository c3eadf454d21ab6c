"""KPI 1 execution: run the appbench apps on both runtimes, sample PSS, turn traces into rows.

Smoke mode runs the ARM builds under a private QEMU copy with a private sysroot (fidelity
`emulated`) and x86_64 builds natively (`host`); the emulator's own PSS is measured with a trivial
static probe and reported beside them. Measure mode runs on a board and needs the lab inventory.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.core.runner import Executor, Run
from harness.core.steps import Step
from harness.env import qemu
from harness.env.identity import host_identity
from harness.errors import Blocked
from harness.kpis.common.executors import journal_measurements
from harness.payload import pss
from harness.results.rows import Row, Status

KPI = "js_memory"
# The name the runtimes are staged under: process names (comm) stay `iotjs`, as vminfo expects.
RUNTIME_NAME = "iotjs"


def _arch(run: Run, target: str) -> str:
    return run.manifest.targets[target].arch


def _deploy_board(run: Run, target: str, stage: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Copy runtimes, apps, the sampler and the build image's runtime libraries to the board."""
    from harness.env.lab import session as boardrun
    from harness.env.transport import deploy

    board, transport = boardrun.session(run, target)
    remote = "kpi1"
    files = {Path(p): f"{remote}/{b}/{Path(p).name}" for b, p in info["runtimes"].items()}
    for w in run.manifest.kpi(KPI).workloads:
        wl = run.manifest.workloads[w]
        files[Path(info["bench_dir"]) / wl.path] = f"{remote}/appbench/{Path(wl.path).name}"
    sums = deploy(transport, files)
    # The binaries link against the build image's glibc, which a board's older OS may lack: the
    # image's runtime libraries go with them and the loader is named explicitly.
    arch = _arch(run, target)
    sysroot = qemu.private_sysroot(arch, stage / "sysroot")
    lib = boardrun.put_tree(transport, sysroot / "lib", f"{remote}/sysroot-lib", stage)
    interp = qemu.elf_info(next(iter(info["runtimes"].values()))).interpreter or ""
    return {
        **info,
        "board": board.name,
        "remote_runtimes": {b: f"{remote}/{b}/{Path(p).name}" for b, p in info["runtimes"].items()},
        "remote_bench": f"{remote}/appbench",
        "remote_lib": lib,
        "remote_loader": f"{lib}/{Path(interp).name}" if interp else "",
        "sha256": sums,
        "identity": boardrun.public_identity(board, transport),
    }


def exec_deploy(step: Step, run: Run) -> dict[str, Any]:
    target = step.target
    stage = run.work_dir(f"deploy-{target}")
    runtimes: dict[str, str] = {}
    for sid, out in run.outputs.items():
        if sid.startswith("build:") and sid.endswith(f":{target}") and "sha256" in out:
            build = sid.split(":")[1]
            d = stage / build
            d.mkdir(exist_ok=True)
            dst = d / RUNTIME_NAME if build != "vminfo" else d / "vminfo"
            dst.write_bytes(Path(out["path"]).read_bytes())
            dst.chmod(0o755)
            # A just-written file's page-cache pages inflate PSS until written back.
            qemu.settle_page_cache(dst)
            runtimes[build] = str(dst)
    info: dict[str, Any] = {"runtimes": runtimes, "stage": str(stage)}
    bench = next(out for sid, out in run.outputs.items() if sid.startswith("source:ant"))
    info["bench_dir"] = bench["path"]
    if step.where == "board":
        return _deploy_board(run, target, stage, info)
    if step.where == "host" and run.manifest.targets[target].qemu:
        arch = _arch(run, target)
        info["emulator"] = str(qemu.private_emulator(arch, stage / "qemu", RUNTIME_NAME))
        info["sysroot"] = str(qemu.private_sysroot(arch, stage / "sysroot"))
        info["emulator_source"] = str(qemu.find_emulator(arch))
    return info


def _identity(run: Run, step: Step, deploy: dict[str, Any]) -> dict[str, Any]:
    ident = host_identity()
    if step.where == "qemu":
        ident = {
            **ident,
            "kind": "qemu-user",
            "emulator": deploy.get("emulator_source", ""),
            "guest_arch": _arch(run, step.target),
            "sysroot": "private copy",
        }
    return ident


def _measure_board(step: Step, run: Run, deploy: dict[str, Any]) -> dict[str, Any]:
    from harness.env.lab import session as boardrun
    from harness.env.transport import run_sampled

    _, transport = boardrun.session(run, step.target)
    runtime = transport.remote_path(deploy["remote_runtimes"][step.variant])
    app = transport.remote_path(f"{deploy['remote_bench']}/{Path(run.manifest.workloads[step.workload].path).name}")
    loader = deploy["remote_loader"]
    argv = [loader, "--library-path", deploy["remote_lib"], runtime, app] if loader else [runtime, app]
    raw = run.raw_path(step.id, ".json")
    _, local_json = run_sampled(
        transport,
        argv,
        remote_dir="kpi1/raw",
        json_name=raw.name,
        vminfo_name=raw.with_suffix(".vminfo").name,
        timeout=run.manifest.defaults.timeout_s,
        local_dir=raw.parent,
    )
    return {"json": str(local_json), "argv": argv, "identity": deploy["identity"]}


def exec_measure(step: Step, run: Run) -> dict[str, Any]:
    deploy = run.outputs.get(f"deploy:{step.target}")
    if deploy is None:
        raise Blocked(f"{step.id}: nothing deployed for {step.target}", "run the deploy step first")
    if step.id.startswith("measure:emulator-overhead"):
        arch = _arch(run, step.target)
        res = qemu.emulator_overhead(arch, run.work_dir(f"probe-{arch}"))
        path = run.raw_path(step.id, ".json")
        pss.write_json(res, path)
        return {"json": str(path)}
    if step.where == "board":
        return _measure_board(step, run, deploy)
    runtime = deploy["runtimes"][step.variant]
    app = str(Path(deploy["bench_dir"]) / run.manifest.workloads[step.workload].path)
    if step.where == "qemu":
        argv = qemu.qemu_command(
            runtime, [app], arch=_arch(run, step.target), sysroot=deploy["sysroot"], emulator=deploy["emulator"]
        )
    else:
        argv = [runtime, app]
    out = run.raw_path(step.id, ".out")
    res = pss.sample_process(
        argv,
        interval=0.01,
        timeout=run.manifest.defaults.timeout_s,
        guest_exe=runtime if step.where == "qemu" else None,
        vminfo_log=run.raw_path(step.id, ".vminfo"),
        stdout=out,
        stderr=out,
        cwd=run.work_dir("cwd"),
    )
    path = run.raw_path(step.id, ".json")
    pss.write_json(res, path)
    return {"json": str(path), "argv": argv, "identity": _identity(run, step, deploy)}


def _rows_for(run: Run, step: Step, outputs: dict[str, Any]) -> list[Row]:
    res = pss.load_json(outputs["json"])
    base = run.provenance_base()
    build_out = run.outputs.get(f"build:{step.variant}:{step.target}", {})
    src_commit = build_out.get("provenance", {}).get("source_commit", "")
    image = build_out.get("provenance", {}).get("image_id", "")
    common: dict[str, Any] = dict(
        run_id=run.run_id,
        kpi=KPI,
        variant=step.variant or "qemu",
        workload=step.workload,
        target=step.target,
        fidelity=step.fidelity,
        mode=run.mode,
        repeat=step.repeat or 0,
        source_commit=src_commit,
        image_digest=image,
        artefact_sha256=build_out.get("sha256", ""),
        argv=[str(a) for a in outputs.get("argv", res.argv)],
        target_identity=outputs.get("identity", host_identity()),
        log=run.rel(Path(outputs["json"])),
        # When the measurement started, not when it was parsed.
        time=datetime.fromtimestamp(res.started_at, timezone.utc).isoformat(timespec="seconds"),
        **base,
    )
    if step.id.startswith("measure:emulator-overhead"):
        peak = res.peak("pss_kb")
        return [
            Row(
                metric="emulator_pss",
                value=float(peak) if peak is not None else math.nan,
                unit="KB",
                status="ok" if peak is not None else "failed",
                note="trivial static probe under the same private emulator",
                **{**common, "variant": "emulator", "workload": "probe"},
            )
        ]
    ok = res.exit_status == 0 and not res.timed_out and res.samples > 0
    status: Status = "ok" if ok else "failed"
    note = (
        ""
        if ok
        else (
            f"timed out after {res.wall_s:.0f} s"
            if res.timed_out
            else f"exit status {res.exit_status}, {res.samples} samples"
        )
    )
    rows = []
    series = [("peak_pss", res.peak("pss_kb")), ("final_pss", res.final("pss_kb"))]
    if step.where == "qemu":
        series.append(("guest_pss", res.peak("guest_pss_kb")))
    for metric, val in series:
        v = float(val) if (ok and val is not None) else math.nan
        rows.append(
            Row(
                metric=metric,
                value=v,
                unit="KB",
                status="ok" if ok and not math.isnan(v) else "failed",
                note=note,
                **common,
            )
        )
    rows.append(
        Row(metric="wall_time", value=res.wall_s if ok else math.nan, unit="s", status=status, note=note, **common)
    )
    return rows


def exec_parse(step: Step, run: Run) -> dict[str, Any]:
    # The emulator probe is not among the A/B measurements; its row is made here too.
    ids = [*step.params.get("measures", step.depends), f"measure:emulator-overhead:{step.target}"]
    return {"rows": journal_measurements(run, ids, _rows_for, "json")}


EXECUTORS: dict[str, Executor] = {
    "deploy": exec_deploy,
    "measure": exec_measure,
    "parse": exec_parse,
}
