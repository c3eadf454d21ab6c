"""The seed path of KPI 7: the tvm-npu image, the TVM fork built in it, and the fork's testcases."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from harness.core.fsio import atomic_write_text
from harness.core.runner import Run
from harness.core.steps import Step
from harness.errors import BadInput, Blocked, StepFailed
from harness.kpis.common.executors import container_for, docker_for
from harness.kpis.npus.fork import (
    BUILD_OUTPUTS,
    CONFIG_LINES,
    FORK_GAPS,
    FORK_SUBMODULES,
    GEMMINI_DIR,
    GEMMINI_SOURCES,
    ROCC_TESTS_DIR,
    SUBMODULE_SOURCES,
    TREE_FILLS,
    TREE_FIXES,
)
from harness.kpis.npus.names import PAYLOAD_DIR
from harness.kpis.npus.rows import (
    _SEED_PATH_NOTE,
    BUILD_IMAGE_ENV,
    IMAGE,
    IMAGE_ENV,
    VELA_STEP,
    _write,
    check_row,
)
from harness.kpis.npus.rules import JUDGES, VTA_RANDOM_REL_TOLERANCE, judge_vta_random
from harness.kpis.npus.vela_smoke import exec_vela

# --------------------------------------------------------------------------------------------
# The seed path: tvm-npu image, TVM fork build, testcases
# --------------------------------------------------------------------------------------------


def _image_fix() -> str:
    return (
        f"build it once with `ant-kpi images build {IMAGE}` (or run with {BUILD_IMAGE_ENV}=1); for the "
        f"Ethos-U55 FVP build by hand with --build-arg ACCEPT_ARM_FVP_EULA=yes --build-arg FVP_SHA256=<sha256> "
        f"(see containers/tvm-npu/README.md) and pass {IMAGE_ENV}=<tag>"
    )


def _image_env(run: Run, step: Step) -> tuple[Any, tuple[str, ...]]:
    """The settings the image is built with: the host's wheelhouse (filled, or reused from the
    cache) as `ant-kpi images build` uses it, else the run's own (no host wheelhouse, or none to be had)."""
    from harness.env.wheelhouse import host_wheelhouse

    img = run.manifest.images[IMAGE]
    try:
        filled = host_wheelhouse(
            IMAGE,
            run.project_root / img.context,
            run.env,
            run.cache_dir / "wheelhouse",
            log=run.log_path(f"{step.id}-wheelhouse"),
        )
    except Blocked:
        # Looking for a built image must not need the index: a missing one is reported below.
        return run.env, ()
    return (filled.env, filled.notes) if filled is not None else (run.env, ())


def exec_image(step: Step, run: Run) -> dict[str, Any]:
    """The tvm-npu image: a named one, or the harness's tag when already built; built only when asked."""
    from harness.env.image_context import image_digest
    from harness.env.images import image_tag, read_tool_versions
    from harness.kpis.common.executors import exec_image as build_image

    img = run.manifest.images[IMAGE]
    ctx = run.project_root / img.context
    if not ctx.is_dir():
        raise Blocked(
            f"image {IMAGE}: its build context {img.context} is not in this version of the harness",
            "add containers/tvm-npu",
        )
    named = run.env.tvm_npu_image
    client = docker_for(run)
    if run.env.build_tvm_npu_image and not named:
        out = build_image(step, run)
        versions = read_tool_versions(client, out["id"])
        return {**out, "tool_versions": versions}
    env, notes = _image_env(run, step)
    tag = named or image_tag(img, image_digest(img, run.project_root, env))
    from docker.errors import ImageNotFound

    try:
        found = client.images.get(tag)
    except ImageNotFound:
        if named:
            raise BadInput(f"{IMAGE_ENV}={named}: no such image on this Docker host") from None
        raise Blocked(
            f"image {IMAGE} ({tag}) is not built on this machine, and a KPI run does not build it unasked "
            "(LLVM, the TVM fork's Python dependencies; the Corstone-300 FVP only with its licence accepted)",
            _image_fix(),
        ) from None
    versions = read_tool_versions(client, str(found.id))
    prov = {"image": IMAGE, "tag": tag, "id": str(found.id), "tool_versions": versions}
    return {
        "tag": tag,
        "id": str(found.id),
        "digest": str(found.id),
        "tool_versions": versions,
        "provenance": {**prov, **({"wheelhouse": list(notes)} if notes else {})},
    }


def _fork_source(run: Run) -> dict[str, Any]:
    out = source_output(run, "ant_model_db")
    if out is None:
        raise Blocked(
            "the ANT-Model-DB checkout (compiler/, the TVM 0.13.dev0 fork) is missing",
            "let source:ant_model_db complete, or pass --source ant_model_db=PATH (a local clone)",
        )
    return out


def missing_submodules(compiler: Path) -> list[str]:
    """The submodule folders the fork's build needs that are absent or empty in `compiler`."""
    return [d for d in FORK_SUBMODULES if not (compiler / d).is_dir() or not any((compiler / d).iterdir())]


def _empty(path: Path) -> bool:
    return not path.is_dir() or not any(path.iterdir())


def _apply_fixes(tree: Path) -> list[str]:
    """Apply TREE_FIXES to the build's copy of the fork; StepFailed when a fix no longer matches."""
    done = []
    for rel, old, new, why in TREE_FIXES:
        path = tree / rel
        text = path.read_text() if path.is_file() else ""
        if old not in text:
            raise StepFailed(f"{rel}: `{old.strip()}`, which the harness edits, is not there (a different fork?)")
        path.write_text(text.replace(old, new, 1))
        done.append(f"{rel}: `{old.strip()}` → `{new.strip() or '(removed)'}` ({why})")
    return done


def source_output(run: Run, name: str) -> dict[str, Any] | None:
    """The output of source `name`'s step, whole (`source:NAME`) or of some paths (`source:NAME:…`)."""
    return next(
        (o for sid, o in run.outputs.items() if sid == f"source:{name}" or sid.startswith(f"source:{name}:")), None
    )


def _fill_gemmini(run: Run, tree: Path) -> dict[str, str]:
    """Fill 3rdparty/gemmini and its gemmini-rocc-tests from the pinned sources, where empty."""
    filled = {}
    for sub, name in GEMMINI_SOURCES.items():
        out = source_output(run, name)
        if out is None or not _empty(tree / sub):
            continue
        shutil.rmtree(tree / sub, ignore_errors=True)
        shutil.copytree(out["path"], tree / sub, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        filled[sub] = str(out.get("commit", ""))
    return filled


def fork_inputs(run: Run, step: Step) -> tuple[dict[str, Any], dict[str, Any]]:
    """The fork build's and the tvm-npu image's outputs; Blocked when either is missing."""
    build = run.outputs.get("build:tvm-fork")
    img = run.outputs.get(f"image:{IMAGE}")
    if build is None or img is None:
        raise Blocked(f"{step.id}: the TVM fork build or the {IMAGE} image is missing", "let build:tvm-fork complete")
    return build, img


def fresh_work(run: Run, kind: str, name: str) -> Path:
    """An empty working folder for one step's container (cache/<kind>/<run id>/<name>)."""
    work = run.cache_dir / kind / run.run_id / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def fork_env(*, vta: bool = False) -> dict[str, str]:
    """The environment that makes a container import the built fork mounted at /src."""
    python = "/src/python:/src/vta/python" if vta else "/src/python"
    return {"TVM_HOME": "/src", "PYTHONPATH": python, "TVM_LIBRARY_PATH": "/src/build"}


def mount_tophub(run: Run, read_only: dict[str, str]) -> str:
    """Mount TVM's pre-tuned schedules (source tophub) where tvm.autotvm.tophub looks before it
    downloads; its commit, or "" when the source is not in this run."""
    tophub = source_output(run, "tophub")
    if tophub is None:
        return ""
    read_only[str(Path(tophub["path"]) / "tophub")] = "/root/.tvm/tophub"
    return str(tophub.get("commit", ""))


def run_on_fork(
    run: Run,
    image_tag: str,
    build: dict[str, Any],
    work: Path,
    argv: list[str],
    log: Path,
    *,
    read_only: dict[str, str],
    env: dict[str, str],
) -> tuple[int, str]:
    """Run `argv` in the image with the built fork at /src and `work` at /work: (exit status, log text)."""
    mounts = {str(build["path"]): "/src", str(work): "/work"}
    with container_for(run, image_tag, mounts=mounts, read_only_mounts=read_only, workdir="/work", env=env) as c:
        rc = c.run(argv, cwd="/work", log_path=log)
    return rc, log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""


def _fill_dropped(run: Run, tree: Path) -> dict[str, str]:
    """Fill what the fork's .gitignore dropped (TREE_FILLS) from the pinned sources, where absent."""
    filled = {}
    for rel, name in TREE_FILLS.items():
        out = source_output(run, name)
        if out is None or (tree / rel).exists() or not (Path(out["path"]) / rel).is_dir():
            continue
        shutil.copytree(Path(out["path"]) / rel, tree / rel, symlinks=True)
        filled[rel] = f"{name} {str(out.get('commit', ''))[:12]}".strip()
    return filled


def fork_gaps(tree: Path) -> dict[str, list[str]]:
    """Per NPU, what the fork's tree lacks for its compile path (FORK_GAPS), found by looking."""
    out: dict[str, list[str]] = {}
    for rel, npu, what in FORK_GAPS:
        if not (tree / rel).exists():
            out.setdefault(npu, []).append(what)
    return out


def exec_build(step: Step, run: Run) -> dict[str, Any]:
    """Build the TVM fork in the tvm-npu image (cached by the step key): libtvm.so and libvta_fsim.so."""

    src = _fork_source(run)
    img = run.outputs.get(f"image:{IMAGE}")
    if img is None:
        raise Blocked(f"the {IMAGE} image is missing", _image_fix())
    tree = run.cache_dir / "tvm-fork" / step.key
    done = tree / ".ant-kpi-build.json"
    if done.is_file():
        return {**json.loads(done.read_text()), "gaps": fork_gaps(tree), "reused": True}
    compiler = Path(src["path"]) / "compiler"
    if not (compiler / "CMakeLists.txt").is_file():
        raise StepFailed(f"{compiler} holds no CMakeLists.txt: not the TVM fork the seed builds")
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(compiler, tree, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    filled = {}
    for sub in missing_submodules(tree):
        out = run.outputs.get(f"source:{SUBMODULE_SOURCES[sub]}")
        if out is not None:
            shutil.rmtree(tree / sub, ignore_errors=True)
            shutil.copytree(out["path"], tree / sub, symlinks=True, ignore=shutil.ignore_patterns(".git"))
            filled[sub] = str(out.get("commit", ""))
    filled.update(_fill_gemmini(run, tree))
    filled.update(_fill_dropped(run, tree))
    absent = missing_submodules(tree)
    if absent:
        # ANT-Model-DB vendors TVM with its .gitmodules but without the submodule commits, so a
        # clone cannot fill them at a pinned commit.
        raise Blocked(
            f"the TVM fork at {str(src.get('commit', ''))[:12] or 'this checkout'} lacks its submodules "
            f"{', '.join(absent)} (ANT-Model-DB records compiler/.gitmodules but no submodule commits)",
            "let the source:tvm_* steps complete (kpis.toml pins them at Apache TVM v0.13.dev0's commits), or "
            "pass --source ant_model_db=PATH: a checkout whose compiler/3rdparty holds those trees",
        )
    fixes = _apply_fixes(tree)
    (tree / "build").mkdir(exist_ok=True)
    # The fork's .gitignore drops config.cmake, so 6bccd836 has none: TVM's CMakeLists.txt gives every
    # option its default, and the lines below switch on what the seed asks for.
    template = tree / "cmake" / "config.cmake"
    cfg = template.read_text() if template.is_file() else ""
    lines, not_built = list(CONFIG_LINES), {}
    if _empty(tree / GEMMINI_DIR) or _empty(tree / ROCC_TESTS_DIR):
        # Gemmini.cmake copies sources out of 3rdparty/gemmini, a submodule the fork added without a
        # commit (not one of TVM's): build the other back ends and say why Gemmini is not there.
        lines = [ln if ln != "set(USE_GEMMINI ON)" else "set(USE_GEMMINI OFF)" for ln in lines]
        not_built["Gemmini"] = (
            f"the fork's {GEMMINI_DIR} (ucb-bar/gemmini, added by ANT-Model-DB) has no recorded commit "
            "and the sources gemmini and gemmini_rocc_tests did not fill it, so the Gemmini back end was built OFF"
        )
    (tree / "build" / "config.cmake").write_text(cfg + "\n# ANT KPI harness (KPI 7)\n" + "\n".join(lines) + "\n")
    log = run.log_path(step.id)
    # The plan's argv (cmake + make, from /src) is what runs, so the dry run shows the real command.
    with container_for(run, img["tag"], mounts={str(tree): "/src"}, workdir="/src") as c:
        rc = c.run(list(step.argv), cwd="/src", log_path=log)
    if rc != 0:
        raise StepFailed(f"the TVM fork build exited {rc}", log=run.rel(log))
    missing = [p for p in BUILD_OUTPUTS if not (tree / p).is_file()]
    if missing:
        raise StepFailed(f"the TVM fork build produced no {', '.join(missing)}", log=run.rel(log))
    out = {
        "path": str(tree),
        "source_commit": str(src.get("commit", "")),
        "image": img["tag"],
        "config": lines,
        "submodules": filled,
        "not_built": not_built,
        "fixes": fixes,
        "gaps": fork_gaps(tree),
        "log": run.rel(log),
    }
    atomic_write_text(done, json.dumps(out, indent=1))
    return {**out, "reused": False}


def testcase_requirements(npu: str, tool_versions: dict[str, str]) -> list[tuple[str, str]]:
    """(what is missing, fix) for one testcase, from the tool versions the image recorded."""
    missing = []
    if npu == "Ethos-U55" and not tool_versions.get("fvp_corstone_sse_300"):
        missing.append(
            (
                "the Arm Corstone-300 FVP (installed only when its licence is accepted at image build "
                "time: ACCEPT_ARM_FVP_EULA=yes with FVP_SHA256)",
                "build the image by hand with --build-arg ACCEPT_ARM_FVP_EULA=yes --build-arg "
                f"FVP_SHA256=<sha256> (containers/tvm-npu/README.md) and pass {IMAGE_ENV}=<tag>",
            )
        )
    if npu == "Gemmini":
        missing.append(
            (
                "testcase/test_gemmini.py is the MobileNet tutorial: it downloads mobilenet_v2_1.0_224.tgz "
                "(download.tensorflow.org) and elephant-299.jpg (dmlc/web-data) at run time, and this version of the "
                "harness cannot give them to it locally",
                "the fork's five Gemmini tutorials that need no download run on Spike instead (measure:Gemmini:*); "
                "for MobileNet run the testcase by hand in the gemmini-sim image with network access, or with the two "
                "files put where TVM's download_testdata looks first ($TEST_DATA_ROOT_PATH/tf/official/mobilenet_v2/ "
                "and $TEST_DATA_ROOT_PATH/data/)",
            )
        )
    return missing


def inert_reason(run: Run, workload: str) -> str:
    """Why the checked-out upstream testcase `workload` runs nothing ("" if it runs, or is not here)."""
    from harness.kpis.npus.rules import inert_testcase

    for sid, out in run.outputs.items():
        if not sid.startswith("source:ant_model_db"):
            continue
        script = Path(out.get("path", "")) / "compiler" / "testcase" / workload
        if script.is_file():
            text = script.read_text(encoding="utf-8", errors="replace")
            why = inert_testcase(text, f"compiler/testcase/{workload}")
            return f"{why} at ANT-Model-DB {str(out.get('commit', ''))[:8]}" if why else ""
    return ""


def _refuse_inert_testcase(step: Step, run: Run) -> None:
    """An upstream testcase that runs nothing is reported as such before anything else is blamed
    (the FVP, the image), and never judged or counted."""
    why = inert_reason(run, step.workload)
    if why:
        gaps = ((run.outputs.get("build:tvm-fork") or {}).get("gaps") or {}).get(step.variant, [])
        also = f"; nor could the fork compile for {step.variant}: it lacks {'; '.join(gaps)}" if gaps else ""
        raise Blocked(
            f"inert upstream testcase: {why}{also}",
            "nothing the harness can supply: the upstream testcase must gain code that runs "
            "(for Ethos-U55 it describes a tutorial that needs the licensed Corstone-300 FVP); "
            "not judged, not counted",
        )


def exec_testcase(step: Step, run: Run) -> dict[str, Any]:
    """Run testcase/test_<npu>.py in the image against the built fork; one `passed` row from its rule."""

    _refuse_inert_testcase(step, run)
    build, img = fork_inputs(run, step)
    missing = testcase_requirements(step.variant, dict(img.get("tool_versions", {})))
    if step.variant in build.get("not_built", {}):
        missing.append(
            (
                build["not_built"][step.variant],
                f"pass --source ant_model_db=PATH with a checkout whose compiler/{GEMMINI_DIR} holds the "
                "Gemmini release the fork was written against (with its gemmini-rocc-tests)",
            )
        )
    if missing:
        raise Blocked("; ".join(w for w, _ in missing), "; ".join(dict.fromkeys(f for _, f in missing)))
    log = run.raw_path(step.id, ".log")
    env = fork_env(vta=True)
    argv, judge, identity = list(step.argv), JUDGES[step.variant], {"check": "the seed testcase's own"}
    work = fresh_work(run, "npu-runs", step.variant)
    read_only: dict[str, str] = {}
    if step.variant == "VTA":
        argv, judge, identity = _vta_inputs(run, work, env, read_only)
        tophub = mount_tophub(run, read_only)
        if tophub:
            identity["tophub"] = tophub[:12]
        identity["simulator"] = f"VTA fsim (tvm-vta {str(build.get('submodules', {}).get('3rdparty/vta-hw', ''))[:8]})"
    rc, text = run_on_fork(run, img["tag"], build, work, argv, log, read_only=read_only, env=env)
    verdict = judge(text, rc)
    ran = "Execution statistics:" in text if step.variant == "VTA" else False
    identity["tier"] = "passed" if verdict.passed else "ran on simulator" if ran else "none"
    if verdict.blocked:
        raise Blocked(
            verdict.reason,
            "give the container network access, or put the files the testcase downloads in ANT_KPI_NPU_MODELS",
        )
    row = check_row(
        run,
        step,
        passed=verdict.passed,
        build=build,
        image=img,
        workload=step.workload,
        argv=argv,
        log=run.rel(log),
        target_identity=identity,
        note=f"{_SEED_PATH_NOTE} ({identity['check']}): {verdict.reason}",
    )
    _write(run, [row])
    return {"log": str(log), "exit_status": rc, "passed": verdict.passed, "reason": verdict.reason}


def _vta_inputs(
    run: Run, work: Path, env: dict[str, str], read_only: dict[str, str]
) -> tuple[list[str], Any, dict[str, Any]]:
    """test_vta.py on the pretrained files from ANT_KPI_NPU_MODELS, or the random-weights check."""
    from harness import payload
    from harness.kpis.npus.models import vta_pretrained

    found, missing = vta_pretrained(run.env.npu_models)
    if missing:
        read_only[str(payload.path("vta_random.py"))] = f"{PAYLOAD_DIR}/vta_random.py"
        return (
            ["python3", f"{PAYLOAD_DIR}/vta_random.py", "--seed", "0"],
            judge_vta_random,
            {
                "check": f"agreement with the CPU on seeded random weights (seed 0, max difference ≤ "
                f"{VTA_RANDOM_REL_TOLERANCE:g} of the output's range, same top-1)",
                "pretrained_missing": missing,
            },
        )
    # As the testcase expects them: MXNet's model store under $MXNET_HOME/models, the rest in its cwd.
    (work / "mxnet" / "models").mkdir(parents=True)
    for name, f in found.items():
        dest = work / "mxnet" / "models" / name if name.endswith(".params") else work / name
        shutil.copy2(f.path, dest)
    env["MXNET_HOME"] = "/work/mxnet"
    return (
        ["python3", "/src/testcase/test_vta.py"],
        JUDGES["VTA"],
        {"check": "the upstream cat check on pretrained weights", "files": {n: f.sha256 for n, f in found.items()}},
    )


def exec_measure(step: Step, run: Run) -> dict[str, Any]:
    """measure:<NPU>: the seed's testcase."""
    if step.variant not in JUDGES:
        raise BadInput(f"{step.id}: no pass rule for NPU {step.variant!r}; rules: {', '.join(JUDGES)}")
    return exec_testcase(step, run)


def exec_convert(step: Step, run: Run) -> dict[str, Any]:
    """convert:vela:Ethos-U55: the Vela smoke."""
    if step.id != VELA_STEP:
        raise Blocked(f"step {step.id}: this version knows no conversion of that name", "see `ant-kpi plan npus`")
    return exec_vela(step, run)
