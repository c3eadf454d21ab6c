"""`ant-kpi doctor`: what this machine has for each KPI, and the fix for each gap."""

from __future__ import annotations

import argparse
import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.errors import EXIT_OK
from harness.options import EnvSettings, GlobalOptions


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str
    kpis: tuple[int, ...]


def _docker(docker_host: str) -> tuple[bool, str]:
    try:
        import docker

        client = docker.from_env(timeout=5)
        info = client.version()
        return True, f"engine {info.get('Version', '?')} at {docker_host or 'the local socket'}"
    except Exception as e:  # any failure means "not reachable"; the detail says why
        return False, f"{type(e).__name__}: {str(e).splitlines()[0][:100] if str(e) else ''}"


def _base_image(tag: str) -> tuple[bool, str]:
    try:
        import docker

        client = docker.from_env(timeout=5)
        img = client.images.get(tag)
        return True, f"{tag} {str(img.id)[:19]}"
    except Exception as e:
        return False, f"{tag} absent ({type(e).__name__})"


def _binfmt(name: str) -> tuple[bool, str]:
    p = Path("/proc/sys/fs/binfmt_misc") / name
    try:
        text = p.read_text()
    except OSError:
        return False, f"{p} absent"
    first = text.splitlines()[0] if text else ""
    interp = next((ln.split(" ", 1)[1] for ln in text.splitlines() if ln.startswith("interpreter")), "?")
    return first == "enabled", f"{first}, {interp}"


def _which(cmd: str) -> tuple[bool, str]:
    path = shutil.which(cmd)
    return path is not None, path or "not on PATH"


def _module(name: str) -> tuple[bool, str]:
    return importlib.util.find_spec(name) is not None, "importable" if importlib.util.find_spec(name) else "absent"


def _disk(path: Path) -> tuple[bool, str]:
    usage = shutil.disk_usage(path if path.exists() else Path.cwd())
    free = usage.free / 2**30
    return free >= 20, f"{free:.0f} GiB free at {path}"


def checks(project_root: Path, env: EnvSettings | None = None) -> list[Check]:
    settings = env or EnvSettings()
    base_tag = "ant-kpi/debian:bookworm"
    spec: list[tuple[str, Callable[[], tuple[bool, str]], str, tuple[int, ...]]] = [
        (
            "Docker daemon",
            lambda: _docker(settings.docker_host),
            "apt-get install docker.io; start dockerd (or set DOCKER_HOST)",
            (1, 2, 3, 5, 6, 7, 8),
        ),
        ("offline base image", lambda: _base_image(base_tag), "ant-kpi images bootstrap-base", (1, 2, 3, 5, 6, 7, 8)),
        ("debootstrap", lambda: _which("debootstrap"), "apt-get install debootstrap", (1, 2, 6)),
        (
            "binfmt qemu-arm",
            lambda: _binfmt("qemu-arm"),
            "apt-get install qemu-user-static binfmt-support; update-binfmts --enable qemu-arm",
            (1, 2, 6),
        ),
        (
            "binfmt qemu-aarch64",
            lambda: _binfmt("qemu-aarch64"),
            "apt-get install qemu-user-static binfmt-support; update-binfmts --enable qemu-aarch64",
            (2, 3, 6),
        ),
        ("qemu-arm-static", lambda: _which("qemu-arm-static"), "apt-get install qemu-user-static", (1, 2, 6)),
        ("qemu-aarch64-static", lambda: _which("qemu-aarch64-static"), "apt-get install qemu-user-static", (2, 3, 6)),
        (
            "armhf cross gcc",
            lambda: _which("arm-linux-gnueabihf-gcc"),
            "apt-get install gcc-arm-linux-gnueabihf (tests; builds use the arm-cross image)",
            (1,),
        ),
        (
            "arm64 cross gcc",
            lambda: _which("aarch64-linux-gnu-gcc"),
            "apt-get install gcc-aarch64-linux-gnu (tests; builds use the arm-cross image)",
            (1,),
        ),
        ("ssh client", lambda: _which("ssh"), "apt-get install openssh-client", (1, 2, 3, 6)),
        (
            "GPU (nvidia-smi)",
            lambda: _which("nvidia-smi"),
            "measure mode trains on a GPU server: set DOCKER_HOST=ssh://user@gpu-server",
            (3, 5, 8),
        ),
        ("torch", lambda: _module("torch"), "pip install torch==2.13.0 (CPU smoke runs)", (3, 5, 8)),
        ("ai-edge-litert", lambda: _module("ai_edge_litert"), "pip install ai-edge-litert", (3, 8)),
        ("ethos-u-vela", lambda: _module("ethosu"), "pip install ethos-u-vela", (7,)),
        ("disk space", lambda: _disk(project_root), "free ≥ 20 GiB for images and builds", (1, 2, 3, 5, 6, 7, 8)),
    ]
    out = []
    for name, probe, fix, kpis in spec:
        ok, detail = probe()
        out.append(Check(name=name, ok=ok, detail=detail, fix=fix, kpis=kpis))
    return out


def cmd_doctor(args: argparse.Namespace, opts: GlobalOptions) -> int:
    con = Console(emoji=False, highlight=False)
    t = Table(title="ant-kpi doctor", title_justify="left", expand=True)
    t.add_column("component", no_wrap=True)
    t.add_column("state", no_wrap=True)
    t.add_column("detail", ratio=3)
    t.add_column("KPIs", no_wrap=True)
    t.add_column("fix", ratio=3)
    for c in checks(opts.project_root, opts.env):
        state = "[green]ok[/green]" if c.ok else "[yellow]missing[/yellow]"
        t.add_row(c.name, state, escape(c.detail), ",".join(map(str, c.kpis)), "" if c.ok else escape(c.fix))
    con.print(t)
    con.print("Missing components block only the steps that need them; `ant-kpi plan` works everywhere.")
    return EXIT_OK
