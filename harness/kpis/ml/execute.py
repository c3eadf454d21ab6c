"""KPI 3 (ML latency) and KPI 4 (ML memory = .tflite size) execution.

What runs here: the baseline fetch (a local copy, or the manifest URL with its sha256 pinned on
first download), the synthetic ImageFolder of the smoke run, .tflite sizes (fidelity `static`) and
host reference latencies through `harness.payload.litert_bench` (LiteRT Python runtime, fidelity `host`).
The ANT `benchmark_model_aarch64` runs under QEMU user mode when the ANT checkout holds it (fidelity
`emulated`). ADMM training and the PyTorch → TFLite conversion need the cuda-train image: without
its build context those steps end BLOCKED and say so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

from harness import payload
from harness.core.fsio import atomic_write_text
from harness.core.runner import Executor, Run
from harness.core.steps import Step
from harness.env import qemu
from harness.env.identity import host_identity
from harness.errors import BadInput, Blocked, StepFailed
from harness.kpis.common.datasets import IMAGENET_ENV, synthetic_imagefolder
from harness.kpis.common.executors import evaluate_kpi, measured_fields
from harness.kpis.common.tflite import lfs_pointer, looks_like_tflite, size_and_sha256
from harness.kpis.common.training import ENGINE_DATA_ENV, WORK_MOUNT, Patch, prepare_tree, run_training, train_image_tag
from harness.options import SOURCE_ROOT
from harness.parsers.admm import parse_admm_file
from harness.parsers.benchmark_model import describe, parse_benchmark_file
from harness.results.store import Row, append_row_journal

KPI_LATENCY: Final = "ml_latency"
KPI_MEMORY: Final = "ml_memory"
BASELINE: Final = "mobilenet_v2_1.0_224"
SHIPPED: Final = "mbv1_0.9_v4u"
# The harness's own conversion of the KPI 3 training output, reported beside the shipped model.
ARTEFACT: Final = "mbv1_0.9_v4u.harness"
BENCHMARK_TOOL: Final = "benchmark_model_aarch64"
TRAIN_IMAGE: Final = "cuda-train"
BASELINE_ENV: Final = "ANT_KPI_BASELINE_TFLITE"
DENSE_TOP1_ENV: Final = "ANT_KPI_DENSE_TOP1"
DOWNLOAD_TIMEOUT_S: Final = 60.0
_COMPLETE_CLONE_FIX: Final = (
    "check out a complete clone of ANT (mirrors may omit files of 4 MB and more) and pass --source ant=PATH"
)


# --------------------------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ModelFile:
    """A model a KPI measures: its file, or why it is not available here."""

    name: str
    path: Path | None = None
    reason: str = ""
    fix: str = ""
    source_commit: str = ""
    origin: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form, as step outputs hold it."""
        return {
            "path": str(self.path) if self.path else "",
            "reason": self.reason,
            "fix": self.fix,
            "source_commit": self.source_commit,
            "origin": self.origin,
        }

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> ModelFile:
        """Inverse of to_dict."""
        return cls(
            name=name,
            path=Path(d["path"]) if d.get("path") else None,
            reason=str(d.get("reason", "")),
            fix=str(d.get("fix", "")),
            source_commit=str(d.get("source_commit", "")),
            origin=str(d.get("origin", "")),
        )


def _ant_source(run: Run) -> dict[str, Any] | None:
    return next((out for sid, out in run.outputs.items() if sid.startswith("source:ant")), None)


def _file_in_ant(run: Run, name: str, rel: str, what: str) -> ModelFile:
    src = _ant_source(run)
    if src is None:
        return ModelFile(name=name, reason=f"the ANT source ({rel}) is not checked out in this run",
                         fix="let the source:ant step complete, or pass --source ant=PATH")
    commit = str(src.get("commit", ""))
    path = Path(src["path"]) / rel
    at = f" at {commit[:12]}" if commit else ""
    if not path.is_file():
        return ModelFile(name=name, reason=f"{rel} ({what}) is absent from the ANT checkout{at}",
                         fix=_COMPLETE_CLONE_FIX, source_commit=commit)
    if lfs_pointer(path):
        return ModelFile(name=name, reason=f"{rel} in the ANT checkout{at} is a Git LFS pointer, not the file",
                         fix="git lfs pull in a complete clone, then --source ant=PATH", source_commit=commit)
    return ModelFile(name=name, path=path, source_commit=commit, origin=f"ANT {rel}{at}")


def shipped_model(run: Run) -> ModelFile:
    """ANT's compressed model, test/mlbench/mbv1_0.9_v4u.tflite, from the ANT checkout."""
    return _file_in_ant(run, SHIPPED, run.manifest.workloads[SHIPPED].path, "the KPI 3 model shipped with ANT")


def baseline_model(run: Run) -> ModelFile:
    """The baseline .tflite that fetch:baseline produced."""
    out = run.outputs.get("fetch:baseline")
    if not out or not out.get("path"):
        url = run.manifest.workloads[BASELINE].url
        return ModelFile(name=BASELINE, reason=f"the baseline {BASELINE}.tflite was not fetched from {url}",
                         fix=f"set {BASELINE_ENV}=/path/to/{BASELINE}.tflite (or the .tgz) and run again")
    return ModelFile(name=BASELINE, path=Path(out["path"]), origin=str(out.get("origin", "")))


def artefact_model(run: Run) -> ModelFile | None:
    """The harness's conversion of the KPI 3 training output, when this run produced one."""
    out = run.outputs.get("convert:tflite")
    if not out or not out.get("path"):
        return None
    return ModelFile(name=ARTEFACT, path=Path(out["path"]), origin="convert:tflite of this run")


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
        check_pin(run.cache_dir, archive_name or src.name, archive_sha, expected="" if local else wl.sha256,
                  what=f"baseline archive {src}")
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


# --------------------------------------------------------------------------------------------
# Training (ADMM_baseline) and conversion: in the cuda-train image
# --------------------------------------------------------------------------------------------

AUTO_AUGMENT_STUB: Final = '''"""Stand-in for auto_augment: ADMM_baseline imports it but never ships or uses it."""


class AutoAugment:
    def __call__(self, img):
        return img


class Cutout:
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, img):
        return img
'''
GLUONCV_STUB: Final = '''"""Stand-in for gluoncv, which will not import under torch >= 2; only --pretrained needs it."""


def __getattr__(name):
    raise ImportError("gluoncv is stubbed by the ANT KPI harness: --pretrained needs a pre-converted checkpoint")
'''
ADMM_DIR: Final = "pruning/UVP/ADMM_baseline"
ADMM_PATCHES: Final = (
    Patch(
        file="main.py",
        old="    args = parser.parse_args()\n",
        new="    args = parser.parse_args()\n"
            "    best_acc1 = 0  # ANT KPI harness: assigned before the first checkpoint\n",
        why="main() assigns best_acc1 only after the ADMM epochs but saves it at the first ADMM checkpoint "
            "(UnboundLocalError: best_acc1): it is initialised right after argument parsing",
    ),
)
ADMM_STUBS: Final = {"auto_augment.py": AUTO_AUGMENT_STUB, "gluoncv.py": GLUONCV_STUB}


def _require_train_image(run: Run, what: str) -> None:
    img = run.manifest.images[TRAIN_IMAGE]
    if not (run.project_root / img.context).is_dir():
        raise Blocked(
            f"image {TRAIN_IMAGE} is not in this version ({img.context} is missing), so {what} cannot run",
            f"add the {TRAIN_IMAGE} build context ({img.purpose or 'PyTorch'}); until then run "
            "Auto-Compression by hand on a GPU host",
        )


def prepare_admm_tree(src: Path, work: Path) -> tuple[Path, Path]:
    """Copy ADMM_baseline to work/src with the best_acc1 fix, stubs in work/stubs; (src, stubs)."""
    return prepare_tree(src, work, patches=ADMM_PATCHES, stubs=ADMM_STUBS)


def exec_train(step: Step, run: Run) -> dict[str, Any]:
    """ADMM_baseline in the cuda-train image (stubs, best_acc1 fix, run from output/); Blocked without it."""
    _require_train_image(run, "ADMM training")
    src_out = next((o for sid, o in run.outputs.items() if sid.startswith("source:auto_compression")), None)
    if src_out is None:
        raise Blocked(f"{step.id}: the Auto-Compression checkout is missing", "let the source step complete")
    tag = train_image_tag(run)
    data: Path | None
    if "data:synthetic" in run.outputs:
        data = Path(run.outputs["data:synthetic"]["path"])
    else:
        given = run.env.imagenet
        if not given and not run.env.engine_data:
            raise Blocked("ADMM training in measure mode needs ImageNet (train/ and val/ ImageFolder)",
                          f"set {IMAGENET_ENV}=/path/to/imagenet (or, on a remote engine, "
                          f"{ENGINE_DATA_ENV}=<its path on the engine's machine>)")
        data = Path(str(given)) if given else None
    work = run.work_dir("admm")
    prepare_admm_tree(Path(src_out["path"]) / ADMM_DIR, work)
    out_dir = work / "output"
    # A checkpoint left by an earlier attempt must not be taken for this run's.
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    # The plan's argv is `python3 main.py DATA ARGS…`; the data placeholder becomes the mount.
    argv = ["python3", "/work/src/main.py", "/data", *step.argv[3:]]
    # main.py writes its run folder relative to the working directory: run it from output/.
    rc, log = run_training(run, step, argv, work=work, data=data, cwd="/work/output")
    parsed = parse_admm_file(log) if log.is_file() else None
    if rc != 0:
        why = f": {parsed.error}" if parsed is not None and parsed.error else ""
        raise StepFailed(f"ADMM training exited {rc}{why}", log=run.rel(log))
    best = sorted(out_dir.glob("*/model_best.pth.tar"))
    if not best:
        raise StepFailed("ADMM training wrote no */model_best.pth.tar", log=run.rel(log))
    return {"log": str(log), "checkpoint": str(best[-1]), "argv": argv, "image": tag}


_INPUT_SIZES: Final = {"imagenet": 224, "cifar10": 32, "cifar100": 32}
_EXPORT_SCRIPT: Final = "admm_export.py"
_EXPORT_MOUNT: Final = WORK_MOUNT
_UPSTREAM_MODEL: Final = "pruning/UVP/ADMM_baseline/models/mobilenet_v1.py"


def _flag(argv: list[str], *names: str, default: str = "") -> str:
    """The value of the last `--name V` / `--name=V` in argv (argparse's last-wins rule)."""
    value = default
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                value = argv[i + 1]
            elif a.startswith(f"{n}="):
                value = a.split("=", 1)[1]
    return value


def export_argv(train_argv: list[str], checkpoint: str, out: str, *, model_dir: str = "") -> list[str]:
    """admm_export.py's command for a checkpoint of the training run whose argv is `train_argv`."""
    if not train_argv:
        raise Blocked("train:admm recorded no command line, so the architecture, width and input size are unknown",
                      "run train:admm again in this version")
    arch = _flag(train_argv, "-a", "--arch", default="resnet18")  # main.py's own default
    if arch != "mobilenet_v1":
        raise Blocked(f"the harness converts ADMM_baseline's mobilenet_v1 only; this run trained {arch}",
                      "train with -a mobilenet_v1, or convert the checkpoint by hand")
    dataset = _flag(train_argv, "--dataset", default="imagenet")
    if dataset not in _INPUT_SIZES:
        raise BadInput(f"train:admm --dataset {dataset}: not one of {', '.join(_INPUT_SIZES)}")
    argv = ["python3", f"{_EXPORT_MOUNT}/{_EXPORT_SCRIPT}", checkpoint, out, "--arch", arch,
            "--width-mult", _flag(train_argv, "--width-mult", default="1.0"),
            "--input-size", str(_INPUT_SIZES[dataset]), "--seed", "0"]
    return [*argv, "--model-dir", model_dir] if model_dir else argv


def exec_convert(step: Step, run: Run) -> dict[str, Any]:
    """PyTorch → TFLite of train:admm's checkpoint: export in cuda-train, write and verify on the host, store."""
    _require_train_image(run, "the PyTorch → TFLite conversion")
    from harness.core.artefacts import ArtefactStore
    from harness.kpis.ml import convert as admm_convert

    train = run.outputs.get("train:admm")
    if not train or not train.get("checkpoint"):
        raise Blocked(f"{step.id}: no ADMM checkpoint in this run", "let train:admm complete")
    tag = train_image_tag(run)
    ckpt = Path(train["checkpoint"])
    if not ckpt.is_file():
        raise StepFailed(f"{step.id}: the checkpoint {ckpt} named by train:admm is gone")
    # One directory holds everything the export reads and writes: run_training mounts it at /work
    # (or copies it in and back for a remote engine).
    work = run.work_dir("convert")
    shutil.copy2(payload.path(_EXPORT_SCRIPT), work / _EXPORT_SCRIPT)
    # A copy, not a link: a remote engine's /work is copied back over this directory.
    (work / "checkpoint").mkdir(exist_ok=True)
    shutil.copy2(ckpt, work / "checkpoint" / ckpt.name)
    npz = work / "export.npz"
    npz.unlink(missing_ok=True)
    # Upstream's own models/mobilenet_v1.py, from the checkout, is PyTorch's reference when present.
    src_out = next((o for sid, o in run.outputs.items() if sid.startswith("source:auto_compression")), None)
    upstream = Path(src_out["path"]) / _UPSTREAM_MODEL if src_out else None
    model_dir = ""
    if upstream is not None and upstream.is_file():
        (work / "upstream" / "models").mkdir(parents=True, exist_ok=True)
        shutil.copy2(upstream, work / "upstream" / "models" / upstream.name)
        model_dir = f"{_EXPORT_MOUNT}/upstream"
    argv = export_argv([str(a) for a in train.get("argv", ())], f"{_EXPORT_MOUNT}/checkpoint/{ckpt.name}",
                       f"{_EXPORT_MOUNT}/{npz.name}", model_dir=model_dir)
    rc, log = run_training(run, step, argv, work=work, data=None, env={"PYTHONDONTWRITEBYTECODE": "1"},
                           cwd=_EXPORT_MOUNT)
    if rc != 0 or not npz.is_file():
        raise StepFailed(f"admm_export.py exited {rc} in {tag}", log=run.rel(log))
    name = f"{ARTEFACT}.tflite"
    try:
        ver = admm_convert.verify(admm_convert.convert(npz, work / name), npz)
    except StepFailed as e:
        raise StepFailed(e.what, log=run.rel(log)) from None
    meta = admm_convert.load_export(npz).meta
    prov = {
        "converter": "harness.kpis.ml.convert (BatchNorm folded, the harness's TFLite writer, LiteRT-verified)",
        "checkpoint": str(ckpt),
        "checkpoint_sha256": meta["checkpoint"]["sha256"],
        "best_acc1": meta["checkpoint"]["best_acc1"],
        "export_argv": argv,
        "image": tag,
        "image_id": run.outputs.get(f"image:{TRAIN_IMAGE}", {}).get("id", ""),
        "reference": meta["reference"],
        "torch": meta["torch"],
        "width_mult": meta["width_mult"],
        "input_size": meta["input_size"],
        "masks_applied": meta["masks_applied"],
        "nonzero_under_mask": meta["nonzero_under_mask"],
        "verification": {k: v for k, v in ver.to_dict().items() if k != "path"},
        "log": run.rel(log),
    }
    art = ArtefactStore(run.cache_dir / "artefacts").put(work / name, name=name, kind="tflite", provenance=prov)
    return {
        "path": str(art.path),
        "sha256": art.sha256,
        "size": art.size,
        "max_abs_diff": ver.max_abs_diff,
        "tolerance": ver.tolerance,
        "pruned_fraction": ver.pruned_fraction,
        "ops": ver.ops,
        "log": str(log),
        "provenance": prov,
    }


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def _row(run: Run, kpi: str, **kw: Any) -> Row:
    fields: dict[str, Any] = {"run_id": run.run_id, "kpi": kpi, "mode": run.mode, **run.provenance_base(), **kw}
    return Row(**fields)


def _write(run: Run, rows: list[Row]) -> int:
    for r in rows:
        append_row_journal(run.run_dir, r)
    return len(rows)


# --------------------------------------------------------------------------------------------
# KPI 4: model size
# --------------------------------------------------------------------------------------------


def size_rows(run: Run, step: Step, models: list[ModelFile]) -> list[Row]:
    """model_size rows (bytes, fidelity static): ok for readable TFLite files, blocked otherwise."""
    rows = []
    for m in models:
        common: dict[str, Any] = dict(metric="model_size", variant=m.name, workload=m.name, target=step.target,
                                      fidelity="static", repeat=0, unit="bytes", source_commit=m.source_commit)
        if m.path is None:
            rows.append(_row(run, KPI_MEMORY, value=float("nan"), status="blocked",
                             note=f"{m.reason} — fix: {m.fix}", **common))
            continue
        size, sha = size_and_sha256(m.path)
        ident = {"kind": "static", "file": str(m.path), "origin": m.origin}
        if not looks_like_tflite(m.path):
            rows.append(_row(run, KPI_MEMORY, value=float("nan"), status="failed", artefact_sha256=sha,
                             target_identity=ident, note=f"{m.path} is not a TFLite flatbuffer", **common))
            continue
        rows.append(_row(run, KPI_MEMORY, value=float(size), status="ok", artefact_sha256=sha,
                         target_identity=ident, note=f"file size of {m.origin or m.path}", **common))
    return rows


def exec_measure_size(step: Step, run: Run) -> dict[str, Any]:
    """KPI 4 rows for the baseline, the shipped model and (if present) the KPI 3 artefact."""
    models = [baseline_model(run), shipped_model(run)]
    art = artefact_model(run)
    if art is not None:
        models.append(art)
    if step.variant:
        models = [m for m in models if m.name == step.variant]
    rows = size_rows(run, step, models)
    if not any(r.status == "ok" for r in rows):
        # One blocked row for the step is written by the runner; the reasons go into its message.
        missing = [m for m in models if m.path is None]
        raise Blocked("; ".join(m.reason for m in missing) or "no model file to size",
                      "; ".join(dict.fromkeys(m.fix for m in missing)) or "see the step log")
    _write(run, rows)
    return {
        "rows": len(rows),
        "sizes": {r.variant: r.value for r in rows if r.status == "ok"},
        "not_sized": {r.variant: r.note for r in rows if r.status != "ok"},
    }


def exec_evaluate_memory(step: Step, run: Run) -> dict[str, Any]:
    """KPI 4 verdict."""
    return evaluate_kpi(run, KPI_MEMORY)


# --------------------------------------------------------------------------------------------
# KPI 3: latency
# --------------------------------------------------------------------------------------------


def _arch(run: Run, target: str) -> str:
    return run.manifest.targets[target].arch


def exec_deploy(step: Step, run: Run) -> dict[str, Any]:
    """Locate the models (and the ANT benchmark tool for ARM targets); missing ones keep their reason."""
    arch = _arch(run, step.target)
    models = [baseline_model(run), shipped_model(run)]
    art = artefact_model(run)
    if art is not None:
        models.append(art)
    info: dict[str, Any] = {"models": {m.name: m.to_dict() for m in models}, "arch": arch}
    if arch != "x86_64":
        tool = _file_in_ant(run, BENCHMARK_TOOL, run.manifest.workloads[BENCHMARK_TOOL].path,
                            "the ANT benchmark_model build for aarch64")
        info["benchmark_model"] = tool.to_dict()
    if step.where == "board":
        return _deploy_board(step, run, info, models)
    return info


REMOTE_DIR: Final = "kpi3"


def _deploy_board(step: Step, run: Run, info: dict[str, Any], models: list[ModelFile]) -> dict[str, Any]:
    """Copy the benchmark tool and every model that exists to the board (sha256 checked there)."""
    from harness.env.lab import session as boardrun
    from harness.env.transport import deploy

    tool = ModelFile.from_dict(BENCHMARK_TOOL, info.get("benchmark_model", {}))
    if tool.path is None:
        raise Blocked(tool.reason or f"{BENCHMARK_TOOL} is not available", tool.fix or _COMPLETE_CLONE_FIX)
    board, transport = boardrun.session(run, step.target)
    files = {tool.path: f"{REMOTE_DIR}/{BENCHMARK_TOOL}"}
    files.update({m.path: f"{REMOTE_DIR}/{m.name}.tflite" for m in models if m.path is not None})
    sums = deploy(transport, files)
    # git keeps the tool as 0644 in a checkout: make it executable on the board.
    res = transport.run(["chmod", "+x", transport.remote_path(f"{REMOTE_DIR}/{BENCHMARK_TOOL}")], timeout=60)
    if not res.ok:
        raise StepFailed(f"cannot make {BENCHMARK_TOOL} executable on board {board.name}: {res.stderr[:200]}")
    return {
        **info,
        "board": board.name,
        "remote_tool": transport.remote_path(f"{REMOTE_DIR}/{BENCHMARK_TOOL}"),
        "remote_models": {m.name: transport.remote_path(f"{REMOTE_DIR}/{m.name}.tflite")
                          for m in models if m.path is not None},
        "sha256": sums,
        "identity": boardrun.public_identity(board, transport),
    }


def _measure_board(step: Step, run: Run, deploy: dict[str, Any], model: ModelFile) -> dict[str, Any]:
    """benchmark_model on the board; its stdout and stderr (where it logs the timings) in one raw log."""
    from harness.env.lab import session as boardrun

    _, transport = boardrun.session(run, step.target)
    argv = [deploy["remote_tool"], f"--graph={deploy['remote_models'][step.variant]}", *_bench_flags(step)]
    log = run.raw_path(step.id, ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    res = transport.run(argv, timeout=run.manifest.defaults.timeout_s, stdout_path=log)
    with log.open("a", encoding="utf-8") as f:
        f.write(res.stderr)
    if res.timed_out:
        raise StepFailed(f"{BENCHMARK_TOOL} on {model.name} timed out on board {transport.name}", log=run.rel(log))
    if res.exit_code != 0:
        raise StepFailed(f"{BENCHMARK_TOOL} on {model.name} exited {res.exit_code} on board {transport.name}",
                         log=run.rel(log))
    _, sha = size_and_sha256(model.path) if model.path is not None else (0, "")
    return {"log": str(log), "argv": argv, "identity": deploy["identity"], "tool": BENCHMARK_TOOL,
            "model": str(model.path), "model_sha256": sha, "source_commit": model.source_commit}


def _bench_flags(step: Step) -> list[str]:
    return [a for a in step.argv if a.startswith("--") and not a.startswith("--graph")]


def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(SOURCE_ROOT)
    # The measured process imports harness even when it is not installed (a source checkout).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def exec_measure_latency(step: Step, run: Run) -> dict[str, Any]:
    """One benchmark run: litert_bench on x86_64, the ANT benchmark_model under QEMU on ARM; raw log kept."""
    arch = _arch(run, step.target)
    deploy = run.outputs.get(f"deploy:{step.target}")
    if deploy is None:
        raise Blocked(f"{step.id}: nothing deployed for {step.target}", "run the deploy step first")
    entry = deploy.get("models", {}).get(step.variant)
    if entry is None and step.variant == ARTEFACT:
        raise Blocked("this run's training produced no converted model to time",
                      "let train:admm and convert:tflite complete (the cuda-train image)")
    if entry is None:
        raise Blocked(f"{step.id}: model {step.variant} is not among the deployed models", "see deploy output")
    model = ModelFile.from_dict(step.variant, entry)
    if model.path is None:
        raise Blocked(model.reason, model.fix)
    if step.where == "board":
        return _measure_board(step, run, deploy, model)
    flags = _bench_flags(step)
    graph = f"--graph={model.path}"
    identity = host_identity()
    if arch == "x86_64":
        argv = [sys.executable, "-m", "harness.payload.litert_bench", graph, *flags]
        tool = "harness.payload.litert_bench"
    else:
        bm = ModelFile.from_dict(BENCHMARK_TOOL, deploy.get("benchmark_model", {}))
        if bm.path is None:
            raise Blocked(bm.reason or f"{BENCHMARK_TOOL} is not available", bm.fix or _COMPLETE_CLONE_FIX)
        # qemu-user reads the guest binary itself, so git's 0644 mode for it does not matter.
        argv = qemu.qemu_command(bm.path, [graph, *flags], arch=arch)
        tool = BENCHMARK_TOOL
        identity = {**identity, "kind": "qemu-user", "emulator": argv[0], "guest_arch": arch}
    log = run.raw_path(step.id, ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log.open("wb") as f:
            proc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, cwd=run.work_dir("ml-bench"),
                                  env=_python_env(), timeout=run.manifest.defaults.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"{tool} on {model.name} timed out after {run.manifest.defaults.timeout_s:g} s",
                         log=run.rel(log)) from None
    if proc.returncode != 0:
        raise StepFailed(f"{tool} on {model.name} exited {proc.returncode}", log=run.rel(log))
    _, sha = size_and_sha256(model.path)
    return {"log": str(log), "argv": [str(a) for a in argv], "identity": identity, "tool": tool,
            "model": str(model.path), "model_sha256": sha, "source_commit": model.source_commit}


def latency_row(run: Run, step: Step, outputs: dict[str, Any]) -> Row:
    """The inference_avg row of one measure step's log (failed when the log has no timing)."""
    common: dict[str, Any] = dict(
        metric="inference_avg", workload=step.workload or step.variant, target=step.target, unit="us",
        artefact_sha256=str(outputs.get("model_sha256", "")), **measured_fields(run, step, outputs),
    )
    try:
        res = parse_benchmark_file(outputs["log"])
    except BadInput as e:
        return _row(run, KPI_LATENCY, value=float("nan"), status="failed", note=e.one_line(), **common)
    note = f"{outputs.get('tool', '')}: {describe(res)}".lstrip(": ")
    return _row(run, KPI_LATENCY, value=res.inference_avg_us, status="ok", note=note, **common)


def _measure_steps(run: Run, target: str) -> list[Step]:
    # The plan's parse steps list no dependencies: the measure steps come from the run's step table.
    steps = run.steps
    return [s for s in steps.values()
            if s.kpi == KPI_LATENCY and s.kind == "measure" and s.target == target]


def accuracy_rows(run: Run, step: Step, log: Path) -> list[Row]:
    """top1 (last 'Best accuracy') and accuracy_loss (dense Top-1 minus it, when the dense Top-1 is given)."""
    parsed = parse_admm_file(log)
    common: dict[str, Any] = dict(variant=SHIPPED, workload="imagenet" if run.mode == "measure" else "synthetic",
                                  fidelity=step.fidelity or "host", unit="%", log=run.rel(log))
    top1 = parsed.top1
    if parsed.error or top1 is None:
        why = parsed.error or "no accuracy line"
        return [_row(run, KPI_LATENCY, metric="top1", value=float("nan"), status="failed", note=why, **common)]
    rows = [_row(run, KPI_LATENCY, metric="top1", value=top1, status="ok",
                 note=f"last of {parsed.best_lines} 'Best accuracy' line(s)", **common)]
    dense = run.env.dense_top1 or None
    loss_common = {**common, "unit": "%p"}
    if dense is None:
        rows.append(_row(run, KPI_LATENCY, metric="accuracy_loss", value=float("nan"), status="blocked",
                         note=f"the dense model's Top-1 is not given — fix: set {DENSE_TOP1_ENV}=<percent>",
                         **loss_common))
    else:
        try:
            d = float(dense)
        except ValueError:
            raise BadInput(f"{DENSE_TOP1_ENV}={dense!r} is not a number") from None
        rows.append(_row(run, KPI_LATENCY, metric="accuracy_loss", value=d - top1, status="ok",
                         note=f"dense Top-1 {d:g} % minus pruned Top-1 {top1:g} %", **loss_common))
    return rows


def exec_parse_latency(step: Step, run: Run) -> dict[str, Any]:
    """parse:accuracy → top1/accuracy_loss rows; parse:<target> → one inference_avg row per measured run."""
    if step.id == "parse:accuracy":
        train = run.outputs.get("train:admm")
        if not train or not train.get("log"):
            raise Blocked("no ADMM training log in this run", "let train:admm complete")
        return {"rows": _write(run, accuracy_rows(run, step, Path(train["log"])))}
    rows = []
    for ms in _measure_steps(run, step.target):
        out = run.outputs.get(ms.id)
        if out and out.get("log"):
            rows.append(latency_row(run, ms, out))
    return {"rows": _write(run, rows)}


def exec_evaluate_latency(step: Step, run: Run) -> dict[str, Any]:
    """KPI 3 verdict."""
    return evaluate_kpi(run, KPI_LATENCY)


EXECUTORS_ML_LATENCY: dict[str, Executor] = {
    "fetch": exec_fetch,
    "train": exec_train,
    "convert": exec_convert,
    "deploy": exec_deploy,
    "measure": exec_measure_latency,
    "parse": exec_parse_latency,
    "evaluate": exec_evaluate_latency,
}

EXECUTORS_ML_MEMORY: dict[str, Executor] = {
    "fetch": exec_fetch,
    "measure": exec_measure_size,
    "evaluate": exec_evaluate_memory,
}
