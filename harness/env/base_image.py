"""The offline Debian base image: debootstrap a root file system from a Debian mirror, `docker import` it.
No registry is ever needed."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TextIO

from harness.errors import Blocked, StepFailed

if TYPE_CHECKING:
    import docker
    from rich.console import Console
from harness.env.images import DEFAULT_BASE_TAG, LABEL_PREFIX, BaseImageRef, _get_image, _labels, _status

# --------------------------------------------------------------------------------------------
# The offline base
# --------------------------------------------------------------------------------------------


def debootstrap_version() -> str:
    """debootstrap's version, as `debootstrap --version` prints it."""
    exe = shutil.which("debootstrap")
    if exe is None:
        raise Blocked("debootstrap not installed", "apt-get install debootstrap")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    return out.strip().removeprefix("debootstrap").strip() or "unknown"


def bootstrap_base(
    tag: str = DEFAULT_BASE_TAG,
    *,
    suite: str = "bookworm",
    mirror: str = "http://deb.debian.org/debian",
    variant: str = "minbase",
    work_dir: Path,
    client: docker.DockerClient,
    console: Console | None = None,
    log_path: Path | None = None,
    force: bool = False,
) -> BaseImageRef:
    """Make the Debian base image offline: debootstrap a root file system, `docker import` it."""
    existing = None if force else _get_image(client, tag)
    if existing is not None:
        return _base_ref(tag, existing, reused=True)

    version = debootstrap_version()
    if os.geteuid() != 0:
        raise Blocked(
            "debootstrap needs root (it creates device nodes and chroots)",
            "run `ant-kpi images bootstrap-base` as root, e.g. with sudo",
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    log = log_path or work_dir / f"bootstrap-{suite}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    created = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
    scratch = Path(tempfile.mkdtemp(prefix="base-", dir=work_dir))
    try:
        rootfs = scratch / "rootfs"
        with log.open("w", encoding="utf-8") as out:
            argv = ["debootstrap", f"--variant={variant}", suite, str(rootfs), mirror]
            _run_logged(argv, out, console, f"debootstrap {suite} from {mirror}")
            _trim_rootfs(rootfs)
            tar_path = scratch / "rootfs.tar"
            # GNU tar keeps ownership, modes, hard links and device nodes exactly; numeric ids
            # so the host's user database does not leak into the image.
            _run_logged(
                ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tar_path), "."],
                out,
                console,
                "packing the root file system",
            )
            shutil.rmtree(rootfs)
            repository, _, tag_part = tag.rpartition(":")
            if not repository or "/" in tag_part:
                repository, tag_part = tag, "latest"
            labels = {
                f"{LABEL_PREFIX}.base.suite": suite,
                f"{LABEL_PREFIX}.base.mirror": mirror,
                f"{LABEL_PREFIX}.base.variant": variant,
                f"{LABEL_PREFIX}.base.debootstrap": version,
                f"{LABEL_PREFIX}.base.created": created,
            }
            changes = [
                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                'CMD ["bash"]',
                *(f"LABEL {k}={json.dumps(v)}" for k, v in labels.items()),
            ]
            with _status(console, f"importing {tag}"):
                result = client.api.import_image(
                    src=str(tar_path), repository=repository, tag=tag_part, changes=changes
                )
            out.write(f"# docker import → {tag}: {str(result).strip()}\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    img = _get_image(client, tag)
    if img is None:
        raise StepFailed(f"docker import did not create {tag}", log=log)
    if console is not None:
        console.print(f"  imported {tag} ({str(img.id)[:19]}); log: {log}")
    return _base_ref(tag, img, reused=False)


def _base_ref(tag: str, img: Any, *, reused: bool) -> BaseImageRef:
    labels = _labels(img)

    def label(key: str) -> str:
        return labels.get(f"{LABEL_PREFIX}.base.{key}", "")

    return BaseImageRef(
        tag=tag,
        id=str(img.id),
        suite=label("suite"),
        mirror=label("mirror"),
        variant=label("variant"),
        debootstrap_version=label("debootstrap"),
        created=label("created") or str(img.attrs.get("Created", "")),
        reused=reused,
    )


def _trim_rootfs(rootfs: Path) -> None:
    """Drop what a container image must not carry: downloaded .debs, apt lists, device nodes."""
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "dev"):
        d = rootfs / sub
        if not d.is_dir():
            continue
        for p in d.iterdir():
            if p.is_dir() and not p.is_symlink():
                if p.name != "partial":
                    shutil.rmtree(p)
            elif p.name != "lock":
                p.unlink()


def _run_logged(argv: list[str], out: TextIO, console: Console | None, what: str) -> None:
    """Run argv, appending its output to `out`; the last line shows as the status."""
    out.write(f"$ {' '.join(argv)}\n")
    out.flush()
    with _status(console, what) as status:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        assert proc.stdout is not None
        for line in _lines(proc.stdout):
            out.write(line)
            if status is not None and line.strip():
                status.update(f"{what}: {line.strip()[:100]}")
        rc = proc.wait()
    out.flush()
    if rc != 0:
        raise StepFailed(f"{argv[0]} exited {rc}", log=out.name)


def _lines(stream: IO[str]) -> Iterator[str]:
    yield from iter(stream.readline, "")
