"""The evidence bundle: one .tar.gz of a run that an evaluator can check and re-run.

A bundle holds, under one top directory named after the run: the reports (English and Korean,
Markdown and HTML, with their plots), the tidy results (parquet, CSV, meta, journal), raw logs and
traces, step states, REPRODUCE.md (the command behind every row) and MANIFEST.sha256, the sha256
of every other file in `sha256sum` format. `verify` reads the archive without extracting it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shlex
import tarfile
import tempfile
import zlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Final

from harness.core.digest import sha256_file, sha256_stream
from harness.core.fsio import atomic_write_bytes
from harness.errors import BadInput

if TYPE_CHECKING:
    from harness.core.manifest import Manifest
    from harness.results.store import Results

MANIFEST_NAME: Final = "MANIFEST.sha256"
REPRODUCE_NAME: Final = "REPRODUCE.md"
BUNDLE_SUFFIX: Final = ".evidence.tar.gz"
# What a run directory holds that belongs in the evidence; work/ (build trees, staged binaries)
# is re-creatable from the pins and would dwarf everything else.
RUN_FILES: Final = ("results.parquet", "results.csv", "results.meta.json", "results.jsonl", "builds.json")
RUN_DIRS: Final = ("logs", "raw", "steps", "evaluations", "ingested", "plans")
_MANIFEST_LINE: Final = re.compile(r"^([0-9a-f]{64})  (\S.*)$")
_CHUNK: Final = 1 << 20


class BundleError(BadInput):
    """A bundle fails verification: a sum differs, a file is missing or unlisted, the manifest is bad."""


@dataclass(frozen=True, kw_only=True)
class Verified:
    """A bundle that passed: how many files were checked and the manifest's own sha256."""

    files: int
    manifest_sha256: str
    root: str


def _run_files(run_dir: Path) -> Iterator[Path]:
    for name in RUN_FILES:
        p = run_dir / name
        if p.is_file():
            yield p
    for name in RUN_DIRS:
        d = run_dir / name
        if d.is_dir():
            # Hidden names are the harness's own staging and temporary files, never evidence.
            yield from sorted(
                p
                for p in d.rglob("*")
                if p.is_file() and not p.is_symlink() and not any(x.startswith(".") for x in p.relative_to(d).parts)
            )


# --------------------------------------------------------------------------------------------
# REPRODUCE.md
# --------------------------------------------------------------------------------------------


def _harness_commit(version: str) -> str:
    return version.split("+", 1)[1] if "+" in version else ""


def render_reproduce(results: Results, *, run_id: str, workloads: Collection[str] | None = None) -> str:
    """REPRODUCE.md: the pins, then per measured row the `ant-kpi run` command and the exact argv."""
    df = results.df
    out = [f"# Reproducing run `{run_id}`", ""]
    versions = sorted({str(v) for v in df["harness_version"].tolist() if str(v)})
    dirty = bool(df["harness_dirty"].any()) if len(df) else False
    if len(versions) > 1:
        out.append(
            f"1. The rows were measured with {len(versions)} harness versions (a run resumed after a "
            "change); each command below names its own. Check out the one it names:"
        )
    else:
        out.append("1. Check out the harness at the version the rows were measured with:")
    out.append("")
    for v in versions:
        commit = _harness_commit(v)
        line = f"git checkout {commit}" if commit else f"# harness {v} (no commit recorded)"
        out += ["   ```sh", f"   {line}", "   ```"]
    if dirty:
        out.append("   Some rows were measured from a tree with uncommitted changes (harness_dirty).")
    out += [
        "",
        "2. Set the machine up (`.ci/setup`), then run each command below. Every source is "
        "checked out at the commit shown, every image is rebuilt from its pinned base; "
        "`--repeats` and `--mode` match the stored rows.",
        "",
    ]
    keys = ["kpi", "target", "workload", "variant", "mode"]
    if not len(df):
        out.append("(no rows)")
        return "\n".join(out) + "\n"
    for key, g in df.groupby(keys, sort=True):
        kpi, target, workload, variant, mode = (str(x) for x in key)
        repeats = sorted({int(r) for r in g["repeat"].tolist()})
        cmd = ["ant-kpi", "run", kpi, "--mode", mode]
        if target:
            cmd += ["--target", target]
        # A probe or a per-variant script is not a manifest workload: the whole KPI run makes it.
        if workload and workload != variant and (workloads is None or workload in workloads):
            cmd += ["--workload", workload]
        cmd += ["--repeats", str(len(repeats))]
        out.append(f"## {kpi} · {variant} · {workload or '—'} · {target or '—'} ({mode})")
        out.append("")
        out += ["```sh", shlex.join(cmd), "```", ""]
        statuses = g["status"].value_counts().to_dict()
        out.append(
            f"- rows: {len(g)} ({', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}); "
            f"metrics: {', '.join(sorted(set(g['metric'].tolist())))}; repeats: "
            f"{', '.join(str(r) for r in repeats)}; fidelity: "
            f"{', '.join(sorted(set(g['fidelity'].tolist())))}"
        )
        labels = [("source commit", "source_commit"), ("image", "image_digest"), ("artefact sha256", "artefact_sha256")]
        if len(versions) > 1:
            labels.insert(0, ("harness", "harness_version"))
        for label, col in labels:
            vals = sorted({str(v) for v in g[col].tolist() if str(v)})
            if vals:
                out.append(f"- {label}: {', '.join(f'`{v}`' for v in vals)}")
        argvs = []
        for rep, text in sorted({(int(r), str(a)) for r, a in zip(g["repeat"], g["argv"], strict=True)}):
            argv = json.loads(text)
            if argv:
                argvs.append(f"# repeat {rep}\n{shlex.join(str(a) for a in argv)}")
        if argvs:
            out += ["- exact argv as run (paths are the lab machine's):", "", "```sh", *argvs, "```"]
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _manifest_text(entries: Iterable[tuple[str, str]]) -> str:
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(entries))


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(mtime)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def make_bundle(run_dir: Path, output: Path, manifest: Manifest | None = None) -> Path:
    """Write the evidence bundle of run_dir to output (atomically); returns output."""
    from harness.report.finish import collect, write_reports
    from harness.results.verdicts import evaluate

    results = collect(run_dir)
    if not len(results):
        raise BadInput(f"run {run_dir.name} has no result rows to bundle")
    ids = sorted(set(results.df["run_id"].tolist()))
    run_id = ids[0] if len(ids) == 1 else run_dir.name
    root = re.sub(r"[^A-Za-z0-9_.\-]+", "_", run_dir.name)
    files = {p.relative_to(run_dir).as_posix(): p for p in _run_files(run_dir)}
    # Rendered files take the newest run file's time, so the same run bundles to the same bytes.
    mtimes = {name: p.stat().st_mtime for name, p in files.items()}
    with tempfile.TemporaryDirectory(prefix="ant-kpi-bundle-") as tmp:
        stage = Path(tmp)
        if manifest is not None:
            # Reports are rendered afresh into a staging directory, in both languages: the bundle
            # never carries a stale report and the run directory is left as it was. Their links
            # point at logs/ and raw/, which sit beside them in the bundle.
            order = [k for k in manifest.kpis if k.id in set(results.df["kpi"].tolist())]
            evaluations = [evaluate(k, results.filter(kpi=k.id)) for k in order]
            for p in write_reports(stage, evaluations, results, langs=("en", "ko"), html=True, source_dir=run_dir):
                files[p.relative_to(stage).as_posix()] = p
        # Each file is read once: its sum and its bytes in the archive are of the same content,
        # even if the run directory changes while it is bundled.
        contents = {name: files[name].read_bytes() for name in sorted(files)}
    known = set(manifest.workloads) if manifest is not None else None
    contents[REPRODUCE_NAME] = render_reproduce(results, run_id=run_id, workloads=known).encode("utf-8")
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}
    contents[MANIFEST_NAME] = _manifest_text(sums.items()).encode("utf-8")
    newest = max(mtimes.values(), default=0.0)
    buf = io.BytesIO()
    # mtime=0 in the gzip header: the same run bundles to the same bytes.
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, data in contents.items():
            _add_bytes(tar, f"{root}/{name}", data, mtimes.get(name, newest))
    atomic_write_bytes(output, buf.getvalue())
    digest = hashlib.sha256(buf.getvalue()).hexdigest()
    atomic_write_bytes(output.with_name(output.name + ".sha256"), f"{digest}  {output.name}\n".encode())
    return output


# --------------------------------------------------------------------------------------------
# Verifying
# --------------------------------------------------------------------------------------------


def _parse_manifest(text: str, where: str) -> dict[str, str]:
    sums: dict[str, str] = {}
    for i, line in enumerate(text.splitlines(), start=1):
        m = _MANIFEST_LINE.match(line)
        if m is None:
            raise BundleError(f"{where}:{i}: not a '<sha256>  <path>' line")
        digest, name = m.groups()
        if name in sums:
            raise BundleError(f"{where}:{i}: {name} is listed twice")
        if _unsafe(name):
            raise BundleError(f"{where}:{i}: {name} is not a plain relative path")
        sums[name] = digest
    if not sums:
        raise BundleError(f"{where}: lists no files")
    return sums


def _unsafe(name: str) -> bool:
    p = PurePosixPath(name)
    return p.is_absolute() or ".." in p.parts or name.startswith("./")


def verify_bundle(path: Path) -> Verified:
    """Check the manifest against every file of the bundle; BundleError names the first problem."""
    if not path.is_file():
        raise BadInput(f"{path}: no such bundle")
    digests: dict[str, str] = {}
    manifest_data: bytes | None = None
    roots: set[str] = set()
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:
                name = member.name
                if _unsafe(name):
                    raise BundleError(f"{path}: {name}: not a plain relative path")
                if member.isdir():
                    continue
                if not member.isfile():
                    raise BundleError(f"{path}: {name}: not a regular file (links are not allowed)")
                top, _, rel = name.partition("/")
                if not rel:
                    raise BundleError(f"{path}: {name}: outside the bundle's top directory")
                roots.add(top)
                f = tar.extractfile(member)
                if f is None:
                    raise BundleError(f"{path}: {name}: unreadable")
                if rel == MANIFEST_NAME:
                    manifest_data = f.read()
                    continue
                digest = sha256_stream(f)
                if rel in digests:
                    raise BundleError(f"{path}: {rel}: present twice")
                digests[rel] = digest
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise BundleError(f"{path}: not a readable .tar.gz ({e})") from None
    if len(roots) != 1:
        raise BundleError(f"{path}: expected one top directory, found {len(roots)}")
    if manifest_data is None:
        raise BundleError(f"{path}: {MANIFEST_NAME} is missing")
    try:
        listed = _parse_manifest(manifest_data.decode("utf-8"), MANIFEST_NAME)
    except UnicodeDecodeError:
        raise BundleError(f"{path}: {MANIFEST_NAME} is not UTF-8 text") from None
    for name, want in sorted(listed.items()):
        got = digests.get(name)
        if got is None:
            raise BundleError(f"{path}: {name}: listed in {MANIFEST_NAME} but missing from the bundle")
        if got != want:
            raise BundleError(f"{path}: {name}: sha256 mismatch (manifest {want[:16]}…, file {got[:16]}…)")
    extra = sorted(set(digests) - set(listed))
    if extra:
        raise BundleError(
            f"{path}: {extra[0]}: not listed in {MANIFEST_NAME}"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        )
    # Last: a changed archive whose every member still matches is a repacked one; say so.
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.is_file():
        try:
            recorded = sidecar.read_text(encoding="utf-8", errors="replace").split()[:1]
        except OSError as e:
            raise BundleError(f"{sidecar}: cannot read ({e.strerror or e})") from None
        actual = sha256_file(path)
        if recorded != [actual]:
            raise BundleError(f"{path}: sha256 {actual[:16]}… differs from {sidecar.name}: the archive was repacked")
    return Verified(files=len(listed), manifest_sha256=hashlib.sha256(manifest_data).hexdigest(), root=roots.pop())


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def default_output(run_dir: Path) -> Path:
    """<runs>/<run>.evidence.tar.gz, beside the run directory."""
    return run_dir.parent / f"{run_dir.name}{BUNDLE_SUFFIX}"


def bundle_members(path: Path) -> Sequence[str]:
    """The file names in a bundle (for tests and listings)."""
    with tarfile.open(path, mode="r:gz") as tar:
        return [m.name for m in tar if m.isfile()]
