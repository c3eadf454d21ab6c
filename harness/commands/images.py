"""`ant-kpi images`: the offline Debian base (debootstrap → docker import) and the images of kpis.toml."""

from __future__ import annotations

import argparse

from rich.console import Console

from harness.core.manifest import load_manifest
from harness.core.strict_toml import did_you_mean
from harness.env.base_image import bootstrap_base
from harness.env.images import docker_client, ensure_image
from harness.env.wheelhouse import fill, has_torch, host_wheelhouse, wheel_set
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
    if args.images_command == "wheelhouse":
        return _wheelhouse(args, opts, con)
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
        filled = host_wheelhouse(n, opts.project_root / m.images[n].context, opts.env, opts.cache_dir / "wheelhouse")
        for note in filled.notes if filled else ():
            con.print(f"{n}: {note}")
        env = filled.env if filled else opts.env
        img = ensure_image(m.images[n], root=opts.project_root, env=env, client=client, console=con)
        con.print(f"{n}: {img.tag} {img.id[:19]} {'reused' if img.reused else 'built'}")
    return EXIT_OK


def _wheelhouse(args: argparse.Namespace, opts: GlobalOptions, con: Console) -> int:
    from pathlib import Path

    m = load_manifest(opts.manifest)
    if args.name not in m.images:
        known = ", ".join(m.images)
        raise BadInput(f"no image {args.name!r} in {m.path}{did_you_mean(args.name, list(m.images))}; images: {known}")
    ws = wheel_set(args.name, opts.project_root / m.images[args.name].context, torch_build=args.torch)
    out = Path(args.out).expanduser() if args.out else None
    log = (out or opts.cache_dir / "wheelhouse") / "pip-download.log"
    con.print(f"{args.name}: downloading the pinned wheels with the host's pip (CPython 3.11, manylinux x86_64)")
    filled = fill(ws, opts.cache_dir / "wheelhouse", out=out, log=log)
    how = "reused (complete)" if filled.reused else f"downloaded in {filled.seconds:.0f} s"
    con.print(f"{args.name}: {filled.wheels} wheels, {filled.size / 1e6:,.0f} MB in {filled.path}: {how}")
    torch = f" ANT_KPI_BUILD_ARG_TORCH_BUILD={args.torch}" if has_torch(args.name) else ""
    con.print(
        f"build from it offline: ANT_KPI_WHEELHOUSE={filled.path} ANT_KPI_BUILD_ARG_WHEELHOUSE_ONLY=yes{torch} "
        f"ant-kpi images build {args.name}"
    )
    return EXIT_OK
