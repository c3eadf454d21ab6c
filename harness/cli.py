"""`ant-kpi` (same as `python -m harness`): a thin entry point that parses options and hands off."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from harness import __version__
from harness.errors import HarnessError
from harness.options import MAX_REPEATS, SOURCE_ROOT, EnvSettings, GlobalOptions

EPILOG = """exit codes: 0 ok · 1 a KPI failed its target · 2 bad input · 3 blocked (a component is
missing; the message names the fix) · 4 a step's tool failed (build error, crashed benchmark)"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ant-kpi",
        description="ANT KPI harness",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"ant-kpi {__version__}")
    p.add_argument("--manifest", type=Path, default=None, help="kpis.toml to use (default: ./kpis.toml)")
    p.add_argument(
        "--runs-dir", type=Path, default=None, help="where runs are stored (default: $ANT_KPI_RUNS or <project>/runs)"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check a manifest strictly")
    v.add_argument("path", nargs="?", type=Path, help="manifest path (default: --manifest)")

    pl = sub.add_parser("plan", help="the dry run: every step of the KPIs, no Docker, no board")
    pl.add_argument("kpis", nargs="*", metavar="KPI", help="KPI ids, numbers or session names (default: all)")
    pl.add_argument("--mode", choices=("smoke", "measure"), default="smoke")
    pl.add_argument("--target", default=None, help="only this target (rpi2, arm64, x86_64)")
    pl.add_argument("--json", action="store_true", help="machine-readable output")

    r = sub.add_parser("run", help="run KPIs (smoke: containers + QEMU here; measure: boards)")
    r.add_argument("kpis", nargs="+", metavar="KPI")
    r.add_argument(
        "--mode",
        choices=("smoke", "measure"),
        default=None,
        help="smoke (default) or measure (the default when --target names a board)",
    )
    r.add_argument(
        "--target",
        action="append",
        default=[],
        help="restrict to target(s): a kpis.toml target (rpi2, arm64, x86_64) or a board of boards.toml",
    )
    r.add_argument(
        "--boards", type=Path, default=None, help="lab inventory (default: $ANT_KPI_BOARDS or ./boards.toml)"
    )
    r.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="use a local clone, mirror or checkout for a source",
    )
    r.add_argument("--run-id", default=None, help="resume (or name) this run")
    r.add_argument("--repeats", type=int, default=None, help=f"override the manifest's repeats (1 to {MAX_REPEATS})")
    r.add_argument("--workload", action="append", default=[], help="restrict to workload(s)")
    r.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    r.add_argument("--wait", action="store_true", help="wait for another run's lock instead of refusing")
    r.add_argument(
        "--board-wait",
        type=float,
        default=None,
        metavar="S",
        help="wait up to S seconds for a board another run holds (lease or labgrid place), then BLOCKED naming it",
    )
    r.add_argument(
        "--board-workers",
        type=int,
        default=0,
        metavar="N",
        help="boards measured at the same time (default 0: one worker per board; 1: one step after another)",
    )

    b = sub.add_parser("build", help="build artefacts (build_arm): IoT.js, IoT.js-Plus, vminfo")
    b.add_argument("builds", nargs="*", default=[], help="builds (default: iotjs iotjs_plus vminfo)")
    b.add_argument("--target", action="append", default=[], help="targets (default: rpi2 arm64)")
    b.add_argument("--source", action="append", default=[], metavar="NAME=PATH")
    b.add_argument("--run-id", default=None)
    b.add_argument("--dry-run", action="store_true")

    rep = sub.add_parser("report", help="render the report of a run (default: the newest)")
    rep.add_argument(
        "run",
        nargs="*",
        default=None,
        help="run id or directory (default: the newest); several runs: their rows judged together, "
        "e.g. KPI 6 boards measured in different runs (console, and --out DIR for report.md)",
    )
    rep.add_argument("--out", default=None, help="with several runs: the folder for their combined report.md")
    rep.add_argument(
        "--lang", choices=("en", "ko"), default="en", help="report language (ko writes report.ko.md / report.ko.html)"
    )
    rep.add_argument(
        "--html",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also write report.html and plots/ (default: yes)",
    )

    bun = sub.add_parser("bundle", help="pack a run's evidence (reports, results, logs, traces) into one .tar.gz")
    bun.add_argument("run", help="run id or directory")
    bun.add_argument("-o", "--output", type=Path, default=None, help="bundle file (default: <run>.evidence.tar.gz)")
    bun.add_argument(
        "--sign-key",
        type=Path,
        default=None,
        metavar="KEY",
        help="also write <bundle>.sig, a detached signature with this SSH private key (ssh-keygen -Y sign)",
    )

    ver = sub.add_parser(
        "verify",
        help="check every sha256 of an evidence bundle (exit 2 names a tampered file); integrity, not authenticity: "
        "see --allowed-signers",
        description="Checks every file of a bundle against its MANIFEST.sha256. That proves integrity, not "
        "authenticity: whoever can change a bundle can rewrite its sums. To know who made it, check its detached "
        "signature (<bundle>.sig) with --allowed-signers, or compare MANIFEST.sha256's sha256 (printed) with one "
        "the lab sent you by a separate channel.",
    )
    ver.add_argument("bundle", type=Path)
    ver.add_argument(
        "--allowed-signers",
        type=Path,
        default=None,
        metavar="FILE",
        help="ssh-keygen allowed-signers file: also check <bundle>.sig and name who signed it",
    )

    cmp_ = sub.add_parser("compare", help="two runs side by side: medians, change %%, Mann-Whitney U p-value")
    cmp_.add_argument("run_a", metavar="RUN_A", help="the earlier run (id or directory)")
    cmp_.add_argument("run_b", metavar="RUN_B", help="the later run (id or directory)")
    cmp_.add_argument("--json", action="store_true", help="machine-readable output")
    cmp_.add_argument("--all", action="store_true", help="also list metrics present in one run only")

    sub.add_parser("runs", help="list stored runs")

    ing = sub.add_parser(
        "ingest",
        help="turn logs captured by hand into result rows (each ingest adds repeats; evidence kept under ingested/)",
    )
    ing.add_argument("kpi")
    ing.add_argument("files", nargs="+", type=Path)
    ing.add_argument("--parser", default=None, help="parser name (default: the KPI's)")
    ing.add_argument("--variant", required=True)
    ing.add_argument("--workload", default="")
    ing.add_argument("--target", default="", help="target or board name")
    ing.add_argument(
        "--fidelity",
        default=None,
        choices=("board", "simulator", "emulated", "host", "static"),
        help="required: where the log was measured (board and simulator give measure rows, the others smoke rows)",
    )
    ing.add_argument(
        "--skip-checks",
        action="store_true",
        help="accept a file that fails a check (a benchmark_model log of another model, resourcebench "
        "numbers that grow like time since load); the rows say so",
    )
    ing.add_argument("--run-id", default=None, help="add to this run (default: a new one)")
    ing.add_argument(
        "--wait", action="store_true", help="wait for a run holding the runs directory instead of refusing"
    )

    d = sub.add_parser(
        "doctor", help="what each KPI needs on this machine, checked for real, with the fix for each gap"
    )
    d.add_argument("kpis", nargs="*", metavar="KPI", help="KPI ids, numbers or session names (default: all)")
    d.add_argument("--mode", choices=("smoke", "measure"), default="smoke", help="the mode to check for")
    d.add_argument("--source", action="append", default=[], metavar="NAME=PATH", help="as for `run`")

    img = sub.add_parser("images", help="container images")
    isub = img.add_subparsers(dest="images_command", required=True, metavar="ACTION")
    bs = isub.add_parser("bootstrap-base", help="build the Debian base offline (debootstrap → docker import)")
    bs.add_argument("--tag", default="ant-kpi/debian:bookworm")
    bs.add_argument("--suite", default="bookworm")
    bs.add_argument("--mirror", default="http://deb.debian.org/debian")
    bs.add_argument("--force", action="store_true")
    ib = isub.add_parser("build", help="build (or reuse) images named in kpis.toml")
    ib.add_argument("names", nargs="*")
    iw = isub.add_parser(
        "wheelhouse",
        help="download an image's pinned wheels with the host's pip (for an air-gapped lab: fill it on a "
        "connected machine, carry the folder, pass it as ANT_KPI_WHEELHOUSE)",
    )
    iw.add_argument("name", help="an image that installs Python wheels (cuda-train, tvm-npu)")
    iw.add_argument("-o", "--out", default=None, help="the folder (default: the cache, reused by runs)")
    iw.add_argument("--torch", choices=("cuda", "cpu"), default="cuda", help="cuda-train's PyTorch build")
    return p


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


# Each command: (module under harness.commands, function). The function takes the parsed
# arguments and the resolved GlobalOptions and returns the exit code.
COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "validate": ("plan", "cmd_validate"),
    "plan": ("plan", "cmd_plan"),
    "run": ("run", "cmd_run"),
    "build": ("build", "cmd_build"),
    "report": ("report", "cmd_report"),
    "runs": ("report", "cmd_runs"),
    "bundle": ("bundle", "cmd_bundle"),
    "verify": ("bundle", "cmd_verify"),
    "compare": ("compare", "cmd_compare"),
    "ingest": ("ingest", "cmd_ingest"),
    "doctor": ("doctor", "cmd_doctor"),
    "images": ("images", "cmd_images"),
}


def main(argv: Sequence[str] | None = None) -> int:
    # A shell that starts us in the background may have set SIGINT to "ignore", which Python keeps:
    # Ctrl-C and `kill -INT` must still stop a run cleanly, and so must SIGTERM.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        manifest = args.path if args.command == "validate" and args.path is not None else args.manifest
        opts = GlobalOptions.resolve(
            manifest=manifest, runs_dir=args.runs_dir, env=EnvSettings.from_environ(), package_root=SOURCE_ROOT
        )
        module, func = COMMANDS[args.command]
        command = getattr(importlib.import_module(f"harness.commands.{module}"), func)
        code: int = command(args, opts)
        return code
    except HarnessError as e:
        print(e.one_line(), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: completed steps and rows are kept; re-run with --run-id to resume", file=sys.stderr)
        return 130
