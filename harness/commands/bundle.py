"""`ant-kpi bundle` and `ant-kpi verify`: one evidence archive of a run, and its check."""

from __future__ import annotations

import argparse

from harness.core.manifest import load_manifest
from harness.errors import EXIT_OK, BadInput
from harness.options import GlobalOptions
from harness.report.bundle import MANIFEST_NAME, default_output, make_bundle, verify_bundle
from harness.results.runs import resolve_run


def cmd_bundle(args: argparse.Namespace, opts: GlobalOptions) -> int:
    run_dir = resolve_run(opts.runs_dir, args.run)
    m = load_manifest(opts.manifest)
    out = args.output or default_output(run_dir)
    if out.is_dir():
        raise BadInput(f"-o {out}: is a directory; name the bundle file (e.g. {out / default_output(run_dir).name})")
    make_bundle(run_dir, out, m)
    v = verify_bundle(out)
    print(f"{out}: {v.files} files, MANIFEST.sha256 {v.manifest_sha256}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace, opts: GlobalOptions) -> int:
    v = verify_bundle(args.bundle)
    print(f"{args.bundle}: ok — {v.files} files match {MANIFEST_NAME} (its sha256 {v.manifest_sha256})")
    return EXIT_OK
