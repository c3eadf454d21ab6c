"""`ant-kpi ingest`: rows from logs captured by hand (a phone, a board without SSH).

The same parsers as the automated runs read the files. The user states the fidelity (there is no
default: a log does not say where it was measured) and the mode follows it. Every file is checked
where a check can be made (the model a benchmark_model log names; resourcebench numbers that grow
like time since load), then all files are parsed before anything is written. The rows and the
evidence copies go into the run as one batch (all or nothing, under the runs lock): each ingest
of the same KPI, variant, workload and target adds repeats, and evidence is never replaced.
"""

from __future__ import annotations

import argparse
import math
import secrets
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from rich.console import Console

from harness.core.digest import sha256_file
from harness.core.manifest import FIDELITIES, Kpi, load_manifest
from harness.core.runner import check_run_id, harness_revision, new_run_id, runs_lock, safe_name
from harness.errors import EXIT_KPI_FAILED, EXIT_OK, BadInput
from harness.options import GlobalOptions
from harness.parsers import benchmark_model, get_parser, resourcebench
from harness.report.finish import evaluate_and_report
from harness.results.journal import commit_batch
from harness.results.rows import Mode, Row
from harness.results.runs import collect, recover_run

# The parser a KPI's hand-captured logs are read with, unless --parser names another.
DEFAULT_PARSER: Final = {"js_memory": "vminfo", "ml_latency": "benchmark_model", "app_latency": "resourcebench"}
# Fidelities of a measurement run: a log of a board or a simulator is a measurement; others are smoke.
MEASURE_FIDELITIES: Final = ("board", "simulator")
EVIDENCE_DIR: Final = "ingested"
NOTE_PREFIX: Final = "ingested by hand:"
SKIP_FLAG: Final = "--skip-checks"


@dataclass(frozen=True, kw_only=True)
class Parsed:
    """One hand-captured file: where it is, what it holds, the repeat it becomes."""

    path: Path
    sha256: str
    records: list[dict[str, Any]]
    repeat: int
    evidence: str  # run-relative name of its copy under ingested/


def _check_model(path: Path, variant: str) -> str:
    """A benchmark_model log must name the variant's model file on its Graph line (when it has one)."""
    graph = benchmark_model.parse_benchmark_file(path).graph
    want = f"{variant}.tflite"
    if graph and Path(graph).name != want:
        return f"its Graph line names {Path(graph).name}, not {want} (the model of variant {variant})"
    return ""


def _check_round_trips(path: Path, variant: str) -> str:
    """resourcebench numbers must be round trips, not the upstream scripts' time since load."""
    slope = resourcebench.growth_per_reply(resourcebench.parse(path))
    if slope is not None:
        return (
            f"its numbers grow by about {slope:.0f} ms per reply, like time since load (the upstream scripts "
            "stamp the request once); ingest logs of the harness's per-send scripts"
        )
    return ""


# What can be checked of a file, by parser: '' when it passes, else why not.
CHECKS: Final[dict[str, Callable[[Path, str], str]]] = {
    "benchmark_model": _check_model,
    "resourcebench": _check_round_trips,
}


def _check_file(f: Path) -> None:
    try:
        mode = f.stat().st_mode
    except OSError as e:
        raise BadInput(f"{f}: {e.strerror or 'cannot read'}") from None
    if not stat.S_ISREG(mode):
        raise BadInput(f"{f}: not a regular file")


def _next_repeat(run_dir: Path, kpi: str, variant: str, workload: str, target: str) -> int:
    """The first repeat number after those the run already holds for this KPI, variant, workload and target."""
    df = collect(run_dir).df if run_dir.is_dir() else None
    if df is None or not len(df):
        return 0
    same = df[(df["kpi"] == kpi) & (df["variant"] == variant) & (df["workload"] == workload) & (df["target"] == target)]
    return int(same["repeat"].max()) + 1 if len(same) else 0


def _next_index(evidence_dir: Path) -> int:
    taken = [int(p.name[:3]) for p in evidence_dir.glob("[0-9][0-9][0-9]-*")] if evidence_dir.is_dir() else []
    return max(taken, default=-1) + 1


def _parse_all(args: argparse.Namespace, kpi: Kpi, parser: str, run_dir: Path) -> list[Parsed]:
    """Every file parsed and checked before anything is written (BadInput names the first bad one)."""
    parse = get_parser(parser)
    check = None if args.skip_checks else CHECKS.get(parser)
    first = _next_repeat(run_dir, kpi.id, args.variant, args.workload, args.target)
    index = _next_index(run_dir / EVIDENCE_DIR)
    out = []
    for i, f in enumerate(args.files):
        _check_file(f)
        records = parse(f)
        why = check(f, args.variant) if check is not None else ""
        if why:
            raise BadInput(f"{f}: {why}; if it is right all the same, pass {SKIP_FLAG}")
        name = f"{index + i:03d}-{safe_name(f.name)}"
        out.append(
            Parsed(path=f, sha256=sha256_file(f), records=records, repeat=first + i, evidence=f"{EVIDENCE_DIR}/{name}")
        )
    return out


def _rows(
    args: argparse.Namespace, kpi: Kpi, parser: str, run_id: str, files: Sequence[Parsed], root: Path
) -> list[Row]:
    from harness import __version__

    commit, dirty = harness_revision(root)
    version = f"{__version__}+{commit[:12]}" if commit else __version__
    metrics = {mt.name for mt in kpi.metrics}
    mode: Mode = "measure" if args.fidelity in MEASURE_FIDELITIES else "smoke"
    checked = "checks skipped (--skip-checks)" if args.skip_checks else ""
    rows = []
    for p in files:
        samples: dict[str, int] = {}  # the n-th value of a metric in one file (a per-send log has many)
        for rec in p.records:
            if rec["metric"] not in metrics:
                continue
            sample = samples.get(rec["metric"], 0)
            samples[rec["metric"]] = sample + 1
            value = float(rec["value"])
            note = "; ".join(x for x in (f"parser {parser}", checked, str(rec.get("note", ""))) if x)
            rows.append(
                Row(
                    run_id=run_id,
                    kpi=kpi.id,
                    metric=rec["metric"],
                    variant=args.variant,
                    workload=args.workload,
                    target=args.target,
                    fidelity=args.fidelity,
                    mode=mode,
                    repeat=p.repeat,
                    sample=sample,
                    value=value,
                    status="ok" if math.isfinite(value) else "failed",
                    unit=rec["unit"],
                    artefact_sha256=p.sha256,
                    argv=["ant-kpi", "ingest", kpi.id, p.path.name, "--variant", args.variant],
                    target_identity={"kind": "ingested", "file": p.path.name, "sha256": p.sha256},
                    harness_version=version,
                    harness_dirty=dirty,
                    log=p.evidence,
                    note=f"{NOTE_PREFIX} {p.path.name} (sha256 {p.sha256[:12]}…); {note}",
                )
            )
    return rows


def _stage(run_dir: Path, files: Sequence[Parsed]) -> tuple[Path, dict[str, Path]]:
    """Copies of the files in a private staging folder of the run (renamed into ingested/ on commit)."""
    stage = run_dir / EVIDENCE_DIR / f".staging-{secrets.token_hex(4)}"
    stage.mkdir(parents=True)
    staged = {}
    for p in files:
        dst = stage / Path(p.evidence).name
        shutil.copyfile(p.path, dst)
        if sha256_file(dst) != p.sha256:
            raise BadInput(f"{p.path}: changed while it was being ingested; try again")
        staged[p.evidence] = dst
    return stage, staged


def cmd_ingest(args: argparse.Namespace, opts: GlobalOptions) -> int:
    m = load_manifest(opts.manifest)
    kpi = m.kpi(args.kpi)
    if args.fidelity is None:
        raise BadInput(
            f"--fidelity is required: where the log was measured ({', '.join(FIDELITIES)}); "
            "board and simulator logs become measure rows, the others smoke rows"
        )
    parser = args.parser or DEFAULT_PARSER.get(kpi.id)
    if parser is None:
        raise BadInput(f"KPI {kpi.id} has no default parser; pass --parser NAME")
    get_parser(parser)
    if args.variant not in {v.name for v in kpi.variants}:
        raise BadInput(
            f"KPI {kpi.id} has no variant {args.variant!r}; variants: {', '.join(v.name for v in kpi.variants)}"
        )
    run_id = check_run_id(args.run_id) if args.run_id is not None else new_run_id()
    run_dir = opts.runs_dir / run_id
    console = Console(stderr=True, emoji=False)
    with runs_lock(opts.runs_dir, holder=f"ingest into {run_id}", wait=args.wait, console=console):
        for done in recover_run(run_dir):
            console.print(f"recovered: {done}")
        files = _parse_all(args, kpi, parser, run_dir)
        rows = _rows(args, kpi, parser, run_id, files, opts.project_root)
        if not rows:
            metrics = ", ".join(sorted(mt.name for mt in kpi.metrics))
            raise BadInput(f"the files gave no {kpi.id} metric ({metrics}) through parser {parser}")
        stage, staged = _stage(run_dir, files)
        try:
            commit_batch(run_dir, rows, staged)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        repeats = f"repeat {files[0].repeat}" + (f"–{files[-1].repeat}" if len(files) > 1 else "")
        console.print(f"ingested {len(rows)} rows ({repeats}) into run {run_id}")
        verdicts = evaluate_and_report(run_dir, run_id, m, [kpi], Console(emoji=False))
    return EXIT_KPI_FAILED if "FAIL" in verdicts else EXIT_OK
