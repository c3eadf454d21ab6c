"""The ANT build shared by KPIs 2 and 6, and the container its runtime runs in.

ANT's native API modules are shared libraries left in the IoT.js build tree, and the iotjs binary
finds them by the absolute path they had at build time. So the whole build tree is kept (in the
cache, keyed by the build step's key), always mounted at the same place (``/src``), and the
runtime runs in the build image, with the very libraries it was linked against.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from harness import payload
from harness.core.fsio import atomic_write_text
from harness.core.runner import Run
from harness.core.steps import Step
from harness.env.container import Container
from harness.env.identity import host_identity
from harness.errors import Blocked, StepFailed
from harness.kpis.common.executors import (
    _check_output_arch,
    container_for,
    exec_build,
    prepare_tree,
)

BUILD: Final = "ant"
TREE_MOUNT: Final = "/src"
WORK_MOUNT: Final = "/work"
_MARKER: Final = ".ant-kpi-build.json"
# What a cross build of ANT needs in the image besides a compiler: the native modules link
# GStreamer, GLib, D-Bus, dbus-glib, curl and libtar of the target architecture.
_CROSS_TOOL: Final = {"armhf": "arm-linux-gnueabihf-gcc", "arm64": "aarch64-linux-gnu-gcc"}


def _check_image_supports(run: Run, target: str, image_out: Mapping[str, Any]) -> None:
    arch = run.manifest.targets[target].arch
    if arch == "x86_64":
        return
    tools = image_out.get("provenance", {}).get("tool_versions", {})
    if _CROSS_TOOL[arch] in tools:
        return
    tag = image_out.get("tag", "?")
    raise Blocked(
        f"image {tag} cannot build ANT for {target} ({arch}): it has no {_CROSS_TOOL[arch]} and no {arch} "
        "GStreamer, GLib, D-Bus, dbus-glib, curl and libtar development libraries",
        "rebuild the ant-build image (`ant-kpi images build ant-build`; containers/ant-build adds them "
        "with Debian multi-arch), or build natively on the board",
    )


def _cross_env(arch: str) -> dict[str, str]:
    """The environment of a cross build: the target's `gcc` first on PATH, its .pc files for pkg-config."""
    if arch == "x86_64":
        return {}
    triple = {"armhf": "arm-linux-gnueabihf", "arm64": "aarch64-linux-gnu"}[arch]
    return {
        # IoT.js-Plus's CMake configurations for ARM name plain `gcc` (they were written for
        # native builds on the board).
        "PATH": f"/usr/local/lib/ant-kpi/cross-{arch}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        # antstream's CMake file runs `pkg-config` itself: it must see the target's libraries only.
        "PKG_CONFIG_LIBDIR": f"/usr/lib/{triple}/pkgconfig:/usr/share/pkgconfig",
    }


def tree_dir(run: Run, step: Step) -> Path:
    """Where the build tree of `step` is kept: in the cache, so a later run can reuse it."""
    return run.cache_dir / "ant-trees" / f"{BUILD}-{step.target}-{step.key}"


def exec_ant_build(step: Step, run: Run) -> dict[str, Any]:
    """Build ANT's iotjs for the step's target; the build tree is kept beside the artefact."""
    from harness.core.artefacts import ArtefactStore

    if step.params.get("build") != BUILD:
        return exec_build(step, run)
    build = run.manifest.builds[BUILD]
    target = step.target
    img_out = run.outputs[f"image:{build.image}"]
    _check_image_supports(run, target, img_out)
    root = tree_dir(run, step)
    tree = root / "src"
    out = tree / build.output[target]
    marker = root / _MARKER
    if marker.is_file() and out.is_file():
        prov = json.loads(marker.read_text())
        run.console.print(f"[dim]    reuse the ANT build tree for {target}: {root}[/dim]")
        return {**prov["outputs"], "tree": str(tree), "reused": True}
    if root.exists():
        shutil.rmtree(root)  # an interrupted build: start from clean sources
    src_out, overlay_prov, derived = prepare_tree(step, run, build, tree)
    argv = list(build.full_argv(target))
    env = _cross_env(run.manifest.targets[target].arch)
    log = run.log_path(step.id)
    with container_for(run, img_out["tag"], mounts={str(tree): TREE_MOUNT}, workdir=TREE_MOUNT) as c:
        rc = c.run(argv, cwd=TREE_MOUNT, env=env, log_path=log)
    # build-ant.sh maps build.py's failure to success: only the binary on disk counts.
    if not out.is_file():
        raise StepFailed(
            f"build {BUILD} for {target} exited {rc} and produced no {build.output[target]}", log=run.rel(log)
        )
    if rc != 0:
        raise StepFailed(f"build {BUILD} for {target} exited {rc}", log=run.rel(log))
    _check_output_arch(out, run.manifest.targets[target].arch, f"build {BUILD} for {target}", run.rel(log))
    prov = {
        "source": build.source,
        "source_commit": src_out["commit"],
        "source_paths": list(build.paths),
        "image": img_out["tag"],
        "image_id": img_out["id"],
        "argv": argv,
        "env": env,
        "fixes": [list(f.args) for f in build.fixes],
        "derived": derived,
        "target": target,
        "log": run.rel(log),
        "tree_mount": TREE_MOUNT,
        **overlay_prov,
        "tool_versions": img_out.get("provenance", {}).get("tool_versions", {}),
    }
    art = ArtefactStore(run.cache_dir / "artefacts").put(
        out, name=build.artefact, kind="binary", provenance=prov, key=step.key
    )
    outputs = {"sha256": art.sha256, "path": str(art.path), "provenance": prov}
    atomic_write_text(marker, json.dumps({"outputs": outputs}, indent=1))
    return {**outputs, "tree": str(tree), "reused": False}


# --------------------------------------------------------------------------------------------
# A board: a self-contained runtime bundle, copied over the board's transport
# --------------------------------------------------------------------------------------------

COLLECTOR: Final = payload.path("ant_bundle_collect.py")
TRIPLETS: Final = {"armhf": "arm-linux-gnueabihf", "arm64": "aarch64-linux-gnu", "x86_64": "x86_64-linux-gnu"}
# The GStreamer plugins of streaming.js's pipeline (KPI 6), by the elements it makes: capsfilter,
# identity and queue (coreelements), videotestsrc, videoscale + videoconvert (one plugin since
# GStreamer 1.22), gdppay (gdp), tcpserversink (tcp), v4l2src (video4linux2); appsrc/appsink
# (app) for antstream's own elements. rpicamsrc and the NVIDIA sources come with the board's OS.
STREAM_PLUGINS: Final = ("coreelements", "videotestsrc", "videoconvertscale", "gdp", "tcp", "video4linux2", "app")
REMOTE_ROOT: Final = "ant"
EXIT_MISSING: Final = 3  # the collector's exit code when a needed library is not in the image


def collect_bundle(step: Step, run: Run) -> tuple[Path, dict[str, Any]]:
    """The runtime, its libraries and the stream plugins of the step's target, from the build image."""
    build = run.manifest.builds[BUILD]
    target = step.target
    built = run.outputs.get(f"build:{BUILD}:{target}")
    if built is None or "tree" not in built:
        raise Blocked(f"{step.id}: ANT is not built for {target}", "run the build step first")
    tree = Path(built["tree"])
    exe = tree / build.output[target]
    if not exe.is_file():
        raise StepFailed(f"{step.id}: the build tree {tree} lost its iotjs")
    # The native API modules are shared libraries beside the IoT.js build's output.
    build_root = exe.parent.parent
    so_dirs = sorted({p.parent.relative_to(tree).as_posix() for p in build_root.rglob("*.so")})
    work = run.work_dir(f"bundle-{target}")
    marker = work / "bundle" / "bundle.json"
    stamp = work / "bundle.built-from"
    if marker.is_file() and stamp.is_file() and stamp.read_text() == built.get("sha256", ""):
        # KPIs 2 and 6 in one run deploy the same build: collect it once.
        run.console.print(f"[dim]    reuse the runtime bundle for {target}: {marker.parent}[/dim]")
        return work / "bundle", json.loads(marker.read_text())
    shutil.copy2(COLLECTOR, work / COLLECTOR.name)
    argv = [
        "python3", f"{WORK_MOUNT}/{COLLECTOR.name}", "--out", f"{WORK_MOUNT}/bundle",
        "--triplet", TRIPLETS[run.manifest.targets[target].arch],
        "--exe", f"{TREE_MOUNT}/{build.output[target]}",
        *(a for d in so_dirs for a in ("--so-dir", f"{TREE_MOUNT}/{d}")),
        "--copy-dir", f"{TREE_MOUNT}/app-core=app-core",
        *(a for p in STREAM_PLUGINS for a in ("--gst-plugin", p)),
    ]  # fmt: skip
    img = run.outputs[f"image:{build.image}"]
    log = run.log_path(f"{step.id}:bundle")
    with container_for(run, img["tag"], mounts={str(tree): TREE_MOUNT, str(work): WORK_MOUNT}, workdir=WORK_MOUNT) as c:
        rc = c.run(argv, log_path=log)
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
    if rc == EXIT_MISSING:
        raise Blocked(
            f"{step.id}: the {build.image} image lacks libraries the runtime needs ({tail[0][:300]})",
            f"add the {TRIPLETS[run.manifest.targets[target].arch]} packages to containers/{build.image}",
        )
    if rc != 0:
        raise StepFailed(f"{step.id}: collecting the runtime bundle exited {rc}", log=run.rel(log))
    meta = json.loads(marker.read_text())
    stamp.write_text(str(built.get("sha256", "")))
    return work / "bundle", meta


def runtime_argv(deploy: Mapping[str, Any]) -> list[str]:
    """The bundled runtime as a board runs it: its own loader and libraries, never the board's."""
    b = deploy["remote_bundle"]
    return [f"{b}/{deploy['loader']}", "--library-path", f"{b}/lib", f"{b}/{deploy['exe']}"]


def board_gst_dirs(triplet: str) -> list[str]:
    """Where a board OS keeps its own GStreamer plugins (camera sources: rpicamsrc, nvcamerasrc, v4l2src)."""
    return [f"/usr/lib/{triplet}/gstreamer-1.0", "/usr/lib/gstreamer-1.0", "/usr/local/lib/gstreamer-1.0"]


def runtime_env(deploy: Mapping[str, Any]) -> dict[str, str]:
    """GStreamer scans in-process (no helper binary): the bundled plugins first, then, on a board, the
    board OS's own plugin folders, so camera elements that only the board has (rpicamsrc,
    nvcamerasrc) load; the bundle carries only what the KPIs' pipelines name."""
    b = deploy["remote_bundle"]
    search = ":".join([f"{b}/gst", *deploy.get("board_gst_dirs", [])])
    return {
        "ANT_ROOT": b,
        "GST_PLUGIN_SYSTEM_PATH_1_0": f"{b}/gst",
        "GST_PLUGIN_PATH_1_0": search,
        "GST_REGISTRY_1_0": f"{b}/gst-registry.bin",
        "GST_REGISTRY_FORK": "no",
    }


def _deploy_board(step: Step, run: Run) -> dict[str, Any]:
    from harness.env.lab import session as boardrun
    from harness.env.transport import deploy

    bundle, meta = collect_bundle(step, run)
    board, transport = boardrun.session(run, step.target)
    stage = run.work_dir(f"deploy-{step.target}")
    remote = boardrun.put_tree(transport, bundle, f"{REMOTE_ROOT}/bundle", stage)
    sums = deploy(transport, {payload.path("companion.py"): f"{REMOTE_ROOT}/companion.py"})
    built = run.outputs[f"build:{BUILD}:{step.target}"]
    return {
        "board": board.name,
        "remote_root": transport.remote_path(REMOTE_ROOT),
        "remote_bundle": remote,
        "loader": meta["loader"],
        "exe": meta["exe"],
        "companion": transport.remote_path(f"{REMOTE_ROOT}/companion.py"),
        "bundle_files": len(meta["files"]),
        "bundle_sha256": meta["files"],
        "sha256": sums,
        "artefact_sha256": built.get("sha256", ""),
        "source_commit": built.get("provenance", {}).get("source_commit", ""),
        "identity": boardrun.public_identity(board, transport),
        "board_gst_dirs": board_gst_dirs(TRIPLETS[run.manifest.targets[step.target].arch]),
    }


def exec_deploy(step: Step, run: Run) -> dict[str, Any]:
    """Stage the build tree for the step's target (the build image, at /src), or bundle it for a board."""
    if step.where == "board":
        return _deploy_board(step, run)
    build = run.manifest.builds[BUILD]
    built = run.outputs.get(f"build:{BUILD}:{step.target}")
    if built is None or "tree" not in built:
        raise Blocked(f"{step.id}: ANT is not built for {step.target}", "run the build step first")
    tree = Path(built["tree"])
    exe = f"{TREE_MOUNT}/{build.output[step.target]}"
    if not (tree / build.output[step.target]).is_file():
        raise StepFailed(f"{step.id}: the build tree {tree} lost its iotjs")
    return {
        "tree": str(tree),
        "iotjs": exe,
        "image": run.outputs[f"image:{build.image}"]["tag"],
        "image_id": run.outputs[f"image:{build.image}"]["id"],
        "artefact_sha256": built.get("sha256", ""),
        "source_commit": built.get("provenance", {}).get("source_commit", ""),
    }


def check_emulation(step: Step, run: Run) -> dict[str, Any]:
    """For an emulated run: the kernel must run the target's binaries through QEMU by itself.

    The runtime runs in the build image, whose target libraries are installed under their
    multi-arch paths; binfmt_misc lets the container exec them directly. The entry needs the F
    flag: the kernel then opened the emulator when it was registered, so the container need not
    have it.
    """
    from harness.env import qemu

    if step.where != "qemu":
        return host_identity()
    arch = run.manifest.targets[step.target].arch
    emu = qemu.emulator_info(arch)
    fix = f"apt-get install {emu.package} {emu.binfmt_package} (registers {emu.binfmt} with the F flag)"
    if not qemu.binfmt_enabled(arch):
        raise Blocked(f"{step.id}: the kernel does not run {arch} binaries through QEMU ({emu.binfmt} is off)", fix)
    if "F" not in _binfmt_flags(qemu.BINFMT_DIR / emu.binfmt):
        raise Blocked(
            f"{step.id}: binfmt_misc {emu.binfmt} lacks the F flag: a container cannot reach its emulator", fix
        )
    return {**host_identity(), "kind": "qemu-user", "via": f"binfmt_misc {emu.binfmt}", "guest_arch": arch}


def _binfmt_flags(entry: Path) -> str:
    try:
        lines = entry.read_text(encoding="ascii").splitlines()
    except OSError:
        return ""
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("flags:")), "")


def stage_companion(work: Path) -> str:
    """Copy the companion stand-in into `work`; its path inside the runtime container."""
    shutil.copy2(payload.path("companion.py"), work / "companion.py")
    return f"{WORK_MOUNT}/companion.py"


def runtime_container(run: Run, deploy: Mapping[str, Any], work: Path) -> Container:
    """A container of the build image with the build tree at /src and `work` at /work."""
    return container_for(
        run,
        deploy["image"],
        mounts={deploy["tree"]: TREE_MOUNT, str(work): WORK_MOUNT},
        workdir=WORK_MOUNT,
        # Unbuffered Python output, so a killed session still leaves its summary lines.
        env={"PYTHONUNBUFFERED": "1"},
    )
