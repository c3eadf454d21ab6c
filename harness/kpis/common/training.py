"""Training runs in the cuda-train image: the one place KPI 3, 5 and 8 start PyTorch code.

Two steps, used by every training KPI:

* `prepare_tree` copies an upstream directory out of its checkout (the checkout stays pristine),
  applies the harness's line patches (each says why it is needed and fails loudly when upstream
  moved), and writes stand-in modules for imports that cannot be satisfied.
* `run_training` runs an argument vector in the cuda-train image with the prepared work directory
  at /work and the data read-only at /data, requesting GPUs when the engine has them.

The engine may be remote (`DOCKER_HOST=ssh://user@gpu-server`, see `harness.env.images.docker_client`).
Bind mounts name paths on the engine's machine, so with a remote engine the work directory is
copied into the container and the container's /work copied back afterwards; data too large to
copy (ImageNet) is named by its path on the engine's machine with ANT_KPI_ENGINE_DATA.
"""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlparse

from harness.core.runner import Run
from harness.core.steps import Step
from harness.env.container import Container, GpuChoice, gpu_choice
from harness.env.patching import Patch, apply_patch
from harness.errors import BadInput, Blocked, StepFailed
from harness.redact import redact_env, redact_url
from harness.results.rows import Row

TRAIN_IMAGE: Final = "cuda-train"
# Where things are inside the training container.
WORK_MOUNT: Final = "/work"
DATA_MOUNT: Final = "/data"
STUBS_DIR: Final = "stubs"
SOURCE_DIR: Final = "src"
PATCHES_RECORD: Final = "patches.json"
# A path on the Docker engine's machine that holds the data (mounted read-only at /data instead of
# copying the host's data into the container; meant for a remote GPU server with ImageNet on disk).
ENGINE_DATA_ENV: Final = "ANT_KPI_ENGINE_DATA"
# mount | copy: how the work directory reaches the container; default: mount for a local engine.
ENGINE_FILES_ENV: Final = "ANT_KPI_ENGINE_FILES"
# Every training run gets these unless the caller overrides them: no experiment tracking service
# (the upstream scripts import wandb), output unbuffered so the log shows progress as it happens.
DEFAULT_ENV: Final = {"WANDB_MODE": "disabled", "PYTHONUNBUFFERED": "1"}

Transfer = Literal["mount", "copy"]


# --------------------------------------------------------------------------------------------
# Preparing an upstream tree
# --------------------------------------------------------------------------------------------


def prepare_tree(
    src: Path, work: Path, *, patches: Sequence[Patch] = (), stubs: Mapping[str, str] | None = None
) -> tuple[Path, Path]:
    """Copy an upstream tree to work/src (no .git), apply line patches, write stub modules into work/stubs.

    Returns (tree, stubs). The patches applied are listed with their reasons in work/patches.json.
    """
    if not src.is_dir():
        raise StepFailed(f"{src} is not a directory: the checkout lacks the training code")
    tree = work / SOURCE_DIR
    if tree.exists():
        shutil.rmtree(tree)
    work.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, tree, symlinks=True, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    for p in patches:
        apply_patch(tree, p)
    stub_dir = work / STUBS_DIR
    if stub_dir.exists():
        shutil.rmtree(stub_dir)
    stub_dir.mkdir()
    for name, text in (stubs or {}).items():
        if not name.endswith(".py") or "/" in name or name.startswith("."):
            raise BadInput(f"stub {name!r}: give a module file name such as 'gluoncv.py'")
        (stub_dir / name).write_text(text, encoding="utf-8")
    record = {"source": str(src), "patches": [asdict(p) for p in patches], "stubs": sorted(stubs or {})}
    (work / PATCHES_RECORD).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return tree, stub_dir


# --------------------------------------------------------------------------------------------
# Running a training command
# --------------------------------------------------------------------------------------------


def engine_is_local(docker_host: str) -> bool:
    """Whether bind mounts of this machine's paths reach the engine (a local socket or loopback TCP)."""
    url = urlparse(docker_host)
    if url.scheme in ("unix", "npipe", ""):
        return True
    if url.scheme in ("tcp", "http", "https"):
        return (url.hostname or "") in ("localhost", "127.0.0.1", "::1")
    return False  # ssh:// and anything else: another machine


def transfer_mode(docker_host: str, engine_files: str) -> Transfer:
    """mount for a local engine, copy for a remote one; ANT_KPI_ENGINE_FILES overrides."""
    given = engine_files.strip().lower()
    if given in ("mount", "copy"):
        return "mount" if given == "mount" else "copy"
    if given:
        raise BadInput(f"{ENGINE_FILES_ENV}={given!r}: use mount or copy")
    return "mount" if engine_is_local(docker_host) else "copy"


def train_image_tag(run: Run) -> str:
    """The tag the image step built or reused for cuda-train; Blocked when that step has not run."""
    out = run.outputs.get(f"image:{TRAIN_IMAGE}")
    if not out or not out.get("tag"):
        raise Blocked(
            f"the {TRAIN_IMAGE} image is not built in this run",
            f"let the image:{TRAIN_IMAGE} step complete (or `ant-kpi images build {TRAIN_IMAGE}`)",
        )
    return str(out["tag"])


def train_image(run: Run) -> dict[str, Any]:
    """The image step's outputs for cuda-train in this run ({} before it ran)."""
    out: dict[str, Any] = run.outputs.get(f"image:{TRAIN_IMAGE}", {})
    return out


def train_identity(run: Run) -> dict[str, Any]:
    """Where a training-image measurement ran: this host, in the cuda-train image."""
    from harness.env.identity import host_identity

    img = train_image(run)
    return {**host_identity(), "container_image": img.get("tag", ""), "image_id": img.get("id", "")}


def train_row(run: Run, kpi: str, **kw: Any) -> Row:
    """A result row of a measurement in the training image (on this host: target x86_64)."""
    img = train_image(run)
    fields: dict[str, Any] = {
        "run_id": run.run_id,
        "kpi": kpi,
        "mode": run.mode,
        "target": "x86_64",
        "image_digest": str(img.get("digest") or img.get("id") or ""),
        **run.provenance_base(),
        **kw,
    }
    return Row(**fields)


def run_training(
    run: Run,
    step: Step,
    argv: Sequence[str],
    *,
    work: Path,
    data: Path | None,
    env: Mapping[str, str] | None = None,
    cwd: str = WORK_MOUNT,
) -> tuple[int, Path]:
    """Run argv in the cuda-train image (work at /work, data read-only at /data, GPUs when available).

    The log is run.log_path(step.id), started afresh with a header (image, GPUs, mounts, argv).
    PYTHONPATH gets /work/stubs when prepare_tree wrote stubs and the caller did not set it.
    Returns (exit code, log path).
    """
    from harness.env.images import docker_host
    from harness.kpis.common.executors import docker_for

    if isinstance(argv, str) or not argv:
        raise BadInput(f"{step.id}: a training command must be a non-empty argument list")
    tag = train_image_tag(run)
    client = docker_for(run)
    host = docker_host(run.env)
    mode = transfer_mode(host, run.env.engine_files)
    gpus = gpu_choice(client, run.env.gpus)
    engine_data = run.env.engine_data
    if data is not None and not engine_data and not data.is_dir():
        raise BadInput(f"{step.id}: data directory {data} does not exist")

    full_env = {**DEFAULT_ENV, **(env or {})}
    if "PYTHONPATH" not in full_env and (work / STUBS_DIR).is_dir():
        full_env["PYTHONPATH"] = f"{WORK_MOUNT}/{STUBS_DIR}"
    mounts: dict[str | Path, str] = {}
    read_only: dict[str | Path, str] = {}
    if mode == "mount":
        mounts[work] = WORK_MOUNT
    if engine_data:
        read_only[engine_data] = DATA_MOUNT
    elif data is not None and mode == "mount":
        read_only[data] = DATA_MOUNT

    log = run.log_path(step.id)
    _write_header(
        log,
        tag=tag,
        host=host,
        mode=mode,
        gpus=gpus,
        work=work,
        data=data,
        engine_data=engine_data,
        argv=argv,
        env=full_env,
        cwd=cwd,
    )
    with Container(
        client,
        tag,
        mounts=mounts,
        read_only_mounts=read_only,
        workdir=WORK_MOUNT,
        keep_on_failure=run.env.keep_container,
        env=full_env,
        gpus=gpus,
        console=run.console,
        name_prefix="ant-kpi-train",
        resolve_mounts=mode == "mount",
    ) as c:
        if mode == "copy":
            _copy_work_in(c, work)
            if data is not None and not engine_data:
                c.copy_in(data, "/", name=DATA_MOUNT.lstrip("/"))
        rc = c.run(list(argv), cwd=cwd, log_path=log)
        if mode == "copy":
            _copy_work_out(c, work)
    return rc, log


def _write_header(
    log: Path,
    *,
    tag: str,
    host: str,
    mode: Transfer,
    gpus: GpuChoice,
    work: Path,
    data: Path | None,
    engine_data: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
) -> None:
    data_line = (
        f"{engine_data} on the engine's machine"
        if engine_data
        else "none"
        if data is None
        else f"{data} ({'mounted' if mode == 'mount' else 'copied'})"
    )
    lines = [
        f"# image {tag} on {redact_url(host)} ({'bind mounts' if mode == 'mount' else 'files copied in and out'})",
        f"# gpus: {'requested' if gpus.requested else 'not requested'} ({gpus.reason})",
        f"# /work: {work}",
        f"# /data (read-only): {data_line}",
        f"# env: {' '.join(f'{k}={v}' for k, v in sorted(redact_env(env).items()))}",
        f"# cwd {cwd}: {shlex.join(argv)}",
    ]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _copy_work_in(c: Container, work: Path) -> None:
    # /work exists after this: copy_in names the target directory's entry after the host path.
    c.copy_in(work, "/", name=WORK_MOUNT.lstrip("/"))


def _copy_work_out(c: Container, work: Path) -> None:
    """Bring the container's /work back over the host's work directory (new and changed files)."""
    with tempfile.TemporaryDirectory(prefix="copy-out-", dir=work.parent) as tmp:
        back = c.copy_out(WORK_MOUNT, Path(tmp))
        shutil.copytree(back, work, symlinks=True, dirs_exist_ok=True)
