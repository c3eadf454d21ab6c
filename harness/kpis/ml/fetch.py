"""Fetch steps of KPIs 3 and 4: the baseline model (downloaded once, pinned by sha256, or a local
file) and the synthetic data."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any

from harness.core.fsio import atomic_write_text
from harness.core.runner import Run
from harness.core.steps import Step
from harness.errors import BadInput, Blocked, StepFailed
from harness.kpis.common.datasets import synthetic_imagefolder
from harness.kpis.common.tflite_files import looks_like_tflite, size_and_sha256
from harness.kpis.ml.models import BASELINE, BASELINE_ENV, DOWNLOAD_TIMEOUT_S

# --------------------------------------------------------------------------------------------
# Fetch: the baseline, and the synthetic ImageFolder
# --------------------------------------------------------------------------------------------


def download(url: str, dest: Path, *, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Fetch `url` to `dest` atomically; Blocked when the network or the server says no."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, f, 1 << 20)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, ValueError) as e:
        Path(tmp).unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or e
        raise Blocked(
            f"cannot download the baseline {url} ({reason})",
            f"put a copy on this machine and set {BASELINE_ENV}=/path/to/{BASELINE}.tflite (or the .tgz)",
        ) from None


def pin_path(cache_dir: Path, name: str) -> Path:
    """Where the sha256 of a downloaded (or first supplied) file is pinned."""
    return cache_dir / "downloads" / f"{name}.sha256"


def check_pin(cache_dir: Path, name: str, sha: str, *, expected: str = "", what: str = "") -> str:
    """Verify `sha` against the manifest's sha256 or the pin file; pin it when neither exists."""
    pin = pin_path(cache_dir, name)
    label = what or name
    if expected:
        if sha != expected:
            raise StepFailed(f"{label}: sha256 {sha} differs from the manifest's {expected}")
        return "manifest"
    if pin.is_file():
        pinned = pin.read_text(encoding="ascii", errors="replace").split()[0] if pin.stat().st_size else ""
        if sha != pinned:
            raise StepFailed(
                f"{label}: sha256 {sha} differs from the one pinned on first use ({pinned}, in {pin}); "
                f"remove {pin} to accept this file"
            )
        return "pinned"
    atomic_write_text(pin, f"{sha}  {name}\n")
    return "pinned now"


def _extract_member(archive: Path, member: str, dest_dir: Path) -> Path:
    """Extract one regular file (matched by base name) from a tar archive, without trusting its paths."""
    try:
        with tarfile.open(archive) as tar:
            found = [m for m in tar.getmembers() if m.isfile() and PurePosixPath(m.name).name == member]
            if not found:
                raise StepFailed(f"{archive.name} holds no {member}")
            f = tar.extractfile(found[0])
            if f is None:
                raise StepFailed(f"{archive.name}: cannot read {found[0].name}")
            dest_dir.mkdir(parents=True, exist_ok=True)
            out = dest_dir / member
            fd, tmp = tempfile.mkstemp(prefix=f".{member}.", dir=dest_dir)
            with os.fdopen(fd, "wb") as w:
                shutil.copyfileobj(f, w, 1 << 20)
            os.replace(tmp, out)
            return out
    except (tarfile.TarError, OSError, EOFError) as e:
        raise StepFailed(f"{archive}: not a readable tar archive ({e})") from None


def exec_fetch_baseline(step: Step, run: Run) -> dict[str, Any]:
    """The baseline .tflite: a local path (env or option), else the manifest URL; sha256 pinned."""
    wl = run.manifest.workloads[BASELINE]
    member = wl.member or f"{BASELINE}.tflite"
    archive_name = PurePosixPath(wl.url).name if wl.url else ""
    local = run.env.baseline_tflite
    downloads = run.cache_dir / "downloads"
    archive_sha = ""
    if local:
        src = Path(str(local)).expanduser()
        if not src.is_file():
            raise BadInput(f"{BASELINE_ENV}={local}: no such file")
        origin = f"local file {src}"
    else:
        if not wl.url:
            raise Blocked(f"workload {BASELINE} has no url in {run.manifest.path}", f"set {BASELINE_ENV}")
        src = downloads / archive_name
        origin = f"download of {wl.url}"
        if src.is_file() and pin_path(run.cache_dir, archive_name).is_file():
            origin = f"cached download of {wl.url}"
        else:
            download(wl.url, src)
    if looks_like_tflite(src):
        model = src
    elif tarfile.is_tarfile(src):
        _, archive_sha = size_and_sha256(src)
        check_pin(
            run.cache_dir,
            archive_name or src.name,
            archive_sha,
            expected="" if local else wl.sha256,
            what=f"baseline archive {src}",
        )
        model = _extract_member(src, member, downloads / archive_sha[:16])
    else:
        raise StepFailed(f"{src} is neither a .tflite model nor a tar archive holding {member}")
    size, sha = size_and_sha256(model)
    pin = check_pin(run.cache_dir, member, sha, what=f"baseline model {model}")
    return {
        "path": str(model),
        "sha256": sha,
        "size": size,
        "origin": origin,
        "url": wl.url,
        "archive_sha256": archive_sha,
        "pin": pin,
    }


def exec_fetch(step: Step, run: Run) -> dict[str, Any]:
    """Both fetch steps: data:synthetic (smoke ImageFolder) and fetch:baseline."""
    if step.id == "data:synthetic":
        return synthetic_imagefolder(run.work_dir("synth"))
    if step.id == "fetch:baseline":
        return exec_fetch_baseline(step, run)
    raise Blocked(f"step {step.id}: this version knows no fetch of that name", "see `ant-kpi plan`")
