"""`ant-kpi ingest`: rows from logs captured by hand (a phone, a board without SSH).

The same parsers as the automated runs read the files; the rows get the fidelity the user states
(default board), the file's sha256 as evidence, and go into a run like any other rows.
"""

from __future__ import annotations

import argparse
import shutil
from typing import Final

from rich.console import Console

from harness.core.digest import sha256_file
from harness.core.manifest import load_manifest
from harness.core.runner import check_run_id, harness_revision, new_run_id
from harness.errors import EXIT_KPI_FAILED, EXIT_OK, BadInput
from harness.options import GlobalOptions
from harness.parsers import get_parser
from harness.report.finish import evaluate_and_report
from harness.results.journal import append_row_journal
from harness.results.rows import Row

# The parser a KPI's hand-captured logs are read with, unless --parser names another.
DEFAULT_PARSER: Final = {"js_memory": "vminfo", "ml_latency": "benchmark_model", "app_latency": "resourcebench"}


def cmd_ingest(args: argparse.Namespace, opts: GlobalOptions) -> int:
    from harness import __version__

    m = load_manifest(opts.manifest)
    kpi = m.kpi(args.kpi)
    name = args.parser or DEFAULT_PARSER.get(kpi.id)
    if name is None:
        raise BadInput(f"KPI {kpi.id} has no default parser; pass --parser NAME")
    parse = get_parser(name)
    if args.variant not in {v.name for v in kpi.variants}:
        raise BadInput(
            f"KPI {kpi.id} has no variant {args.variant!r}; variants: {', '.join(v.name for v in kpi.variants)}"
        )
    metrics = {mt.name for mt in kpi.metrics}
    run_id = check_run_id(args.run_id) if args.run_id is not None else new_run_id()
    run_dir = opts.runs_dir / run_id
    commit, dirty = harness_revision(opts.project_root)
    version = f"{__version__}+{commit[:12]}" if commit else __version__
    rows = []
    for repeat, f in enumerate(args.files):
        if not f.is_file():
            raise BadInput(f"{f}: no such file")
        records = parse(f)
        evidence = run_dir / "ingested" / f"{repeat:03d}-{f.name}"
        evidence.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, evidence)
        for rec in records:
            if rec["metric"] not in metrics:
                continue
            rows.append(
                Row(
                    run_id=run_id,
                    kpi=kpi.id,
                    metric=rec["metric"],
                    variant=args.variant,
                    workload=args.workload,
                    target=args.target,
                    fidelity=args.fidelity,
                    mode="measure",
                    repeat=repeat,
                    value=float(rec["value"]),
                    unit=rec["unit"],
                    artefact_sha256=sha256_file(f),
                    argv=["ant-kpi", "ingest", kpi.id, str(f)],
                    target_identity={"board": args.target} if args.target else {},
                    harness_version=version,
                    harness_dirty=dirty,
                    log=str(evidence.relative_to(run_dir)),
                    note=f"ingested by hand with parser {name}; {rec.get('note', '')}".strip("; "),
                )
            )
    if not rows:
        raise BadInput(f"the files gave no {kpi.id} metric ({', '.join(sorted(metrics))}) through parser {name}")
    for r in rows:
        append_row_journal(run_dir, r)
    Console(stderr=True, emoji=False).print(f"ingested {len(rows)} rows into run {run_id}")
    verdicts = evaluate_and_report(run_dir, run_id, m, [kpi], Console(emoji=False))
    return EXIT_KPI_FAILED if "FAIL" in verdicts else EXIT_OK
