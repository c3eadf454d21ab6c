"""`ant-kpi images`: the offline Debian base (debootstrap → docker import) and the images of kpis.toml."""

from __future__ import annotations

import argparse

from rich.console import Console

from harness.core.manifest import load_manifest
from harness.core.strict_toml import did_you_mean
from harness.env.base_image import bootstrap_base
from harness.env.images import docker_client, ensure_image
from harness.errors import EXIT_OK, BadInput, Blocked
from harness.options import GlobalOptions


def cmd_images(args: argparse.Namespace, opts: GlobalOptions) -> int:
    con = Console(stderr=True, emoji=False)
    if args.images_command == "bootstrap-base":
        work = opts.cache_dir / "bootstrap"
        ref = bootstrap_base(
            args.tag,
            suite=args.suite,
            mirror=args.mirror,
            work_dir=work,
            client=docker_client(opts.env),
            console=con,
            force=args.force,
        )
        con.print(f"base image {args.tag}: {getattr(ref, 'id', ref)}")
        return EXIT_OK
    m = load_manifest(opts.manifest)
    names = args.names or list(m.images)
    # Every name is checked before Docker is asked: a typo is bad input, not a missing daemon.
    for n in names:
        if n not in m.images:
            raise BadInput(
                f"no image {n!r} in {m.path}{did_you_mean(n, list(m.images))}; images: {', '.join(m.images)}"
            )
    client = docker_client(opts.env)
    for n in names:
        if not (opts.project_root / m.images[n].context).is_dir():
            raise Blocked(
                f"image {n}: build context {m.images[n].context} is not in this version",
                "see the issue tracker for the KPI that needs it",
            )
        img = ensure_image(m.images[n], root=opts.project_root, env=opts.env, client=client, console=con)
        con.print(f"{n}: {img.tag} {img.id[:19]} {'reused' if img.reused else 'built'}")
    return EXIT_OK
