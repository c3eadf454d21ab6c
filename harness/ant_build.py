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

from harness.container import Container
from harness.errors import Blocked, StepFailed
from harness.execute import (
    _check_output_arch,
    _docker,
    exec_build,
    host_identity,
    prepare_tree,
)
from harness.fsio import atomic_write_text
from harness.runner import Run
from harness.steps import Step

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
    from harness.artefacts import ArtefactStore

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
    with Container(_docker(run), img_out["tag"], mounts={str(tree): TREE_MOUNT}, workdir=TREE_MOUNT) as c:
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


def exec_deploy(step: Step, run: Run) -> dict[str, Any]:
    """Stage the build tree for the step's target: it runs in the build image, at /src."""
    if step.where == "board":
        raise Blocked(
            f"measure mode needs a {step.target} board running ANT with main-old.js",
            "describe one in boards.toml (lab inventory) and pass --target <board>; smoke mode runs here",
        )
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
    from harness import qemu

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
    shutil.copy2(Path(__file__).resolve().parent / "companion.py", work / "companion.py")
    return f"{WORK_MOUNT}/companion.py"


def runtime_container(run: Run, deploy: Mapping[str, Any], work: Path) -> Container:
    """A container of the build image with the build tree at /src and `work` at /work."""
    return Container(
        _docker(run),
        deploy["image"],
        mounts={deploy["tree"]: TREE_MOUNT, str(work): WORK_MOUNT},
        workdir=WORK_MOUNT,
        # Unbuffered Python output, so a killed session still leaves its summary lines.
        env={"PYTHONUNBUFFERED": "1"},
    )
