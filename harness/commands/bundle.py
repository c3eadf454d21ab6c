"""`ant-kpi bundle` and `ant-kpi verify`: one evidence archive of a run, and its check."""

from __future__ import annotations

import argparse

from harness.core.manifest import load_manifest
from harness.errors import EXIT_OK, BadInput
from harness.options import GlobalOptions
from harness.report.bundle import MANIFEST_NAME, default_output, make_bundle, verify_bundle
from harness.report.signing import sign_bundle, signature_path, verify_signature
from harness.results.runs import resolve_run


def cmd_bundle(args: argparse.Namespace, opts: GlobalOptions) -> int:
    run_dir = resolve_run(opts.runs_dir, args.run)
    m = load_manifest(opts.manifest)
    out = args.output or default_output(run_dir)
    if out.is_dir():
        raise BadInput(f"-o {out}: is a directory; name the bundle file (e.g. {out / default_output(run_dir).name})")
    # No lock: each file is read once, so even a run still writing bundles as consistent files.
    make_bundle(run_dir, out, m)
    v = verify_bundle(out)
    signed = ""
    if args.sign_key is not None:
        signed = f"; signed: {sign_bundle(out, args.sign_key).name}"
    print(f"{out}: {v.files} files, MANIFEST.sha256 {v.manifest_sha256}{signed}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace, opts: GlobalOptions) -> int:
    v = verify_bundle(args.bundle)
    print(f"{args.bundle}: integrity ok — {v.files} files match {MANIFEST_NAME} (its sha256 {v.manifest_sha256})")
    sig = signature_path(args.bundle)
    if args.allowed_signers is not None:
        who = verify_signature(args.bundle, args.allowed_signers)
        print(f"{args.bundle}: authentic — {sig.name} is a valid signature by {who} (key in {args.allowed_signers})")
    else:
        present = f"{sig.name} is present but was not checked; " if sig.is_file() else ""
        print(
            f"{args.bundle}: authenticity NOT checked — matching sums only show the files agree with each other; "
            f"{present}check a signature with --allowed-signers FILE, or compare the {MANIFEST_NAME} sha256 "
            "above with the one the lab sent you by a separate channel"
        )
    return EXIT_OK
