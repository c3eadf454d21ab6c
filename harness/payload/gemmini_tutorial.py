"""KPI 7, Gemmini: run one of the fork's Gemmini tutorials as it is, and print what the harness judges.

Runs inside the gemmini-sim image with the built fork on PYTHONPATH, in an empty working folder.
The tutorial compiles its int8 layer for Gemmini with microTVM, generates the bare-metal project,
builds it with riscv64-unknown-elf-gcc (`generated_project.build()`) and runs it on Spike with the
Gemmini extension (`generated_project.flash()`); the program compares Gemmini's output with the
TFLite reference element by element and prints its own verdict.

The tutorial ignores the exit status of both build.sh and spike (subprocess.call), so `spike` on
PATH is a shim that runs the real one and prints `ANT-KPI-SPIKE exit=N argv=...`. After the
tutorial, one closing line `ANT-KPI-GEMMINI {json}` says what the generated project holds: the
reference's element count (OUTPUT_LEN of include/tvm/output.h), the calls into Gemmini's library in
the generated model code, and the program's sha256.

Usage: python3 gemmini_tutorial.py TUTORIAL.py --spike /path/to/spike
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import runpy
import stat
import sys
import tempfile
from pathlib import Path

SHIM = """#!/bin/sh
"{spike}" "$@"
rc=$?
echo "ANT-KPI-SPIKE exit=$rc argv=spike $*"
exit $rc
"""
# Gemmini's C library entry points the generated code calls (gemmini.h of gemmini-rocc-tests).
GEMMINI_CALL = re.compile(r"\b(tiled_\w+|gemmini_\w+)\s*\(")


def project_facts(project: Path, test: str) -> dict[str, object]:
    facts: dict[str, object] = {"project": str(project), "exists": project.is_dir()}
    header = project / "include" / "tvm" / "output.h"
    if header.is_file():
        m = re.search(r"#define OUTPUT_LEN (\d+)", header.read_text(errors="replace"))
        facts["output_len"] = int(m.group(1)) if m else None
    calls: dict[str, int] = {}
    for c in sorted((project / "src" / "model").glob("*.c")):
        for name in GEMMINI_CALL.findall(c.read_text(errors="replace")):
            calls[name] = calls.get(name, 0) + 1
    facts["gemmini_calls"] = calls
    elf = project / "src" / "build" / f"{test}-baremetal"
    if elf.is_file():
        facts["elf"] = elf.name
        facts["elf_sha256"] = hashlib.sha256(elf.read_bytes()).hexdigest()
        facts["elf_bytes"] = elf.stat().st_size
    return facts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("tutorial", type=Path)
    ap.add_argument("--spike", required=True, help="the real Spike binary")
    args = ap.parse_args(argv)

    shims = Path(tempfile.mkdtemp(prefix="spike-shim-"))
    shim = shims / "spike"
    shim.write_text(SHIM.format(spike=args.spike))
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.environ["PATH"] = f"{shims}:{os.environ.get('PATH', '')}"

    # micro_gemmini_add.py -> the project type add_example, the program add-baremetal.
    test = args.tutorial.stem.removeprefix("micro_gemmini_")
    status = 0
    try:
        runpy.run_path(str(args.tutorial), run_name="__main__")
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else 1
    except BaseException as e:  # the tutorial's own failure: reported, then the facts
        print(f"ANT-KPI-TUTORIAL-ERROR {type(e).__name__}: {e}")
        status = 1
    sys.stdout.flush()
    facts = project_facts(Path.cwd() / "generated-project", test)
    print("ANT-KPI-GEMMINI " + json.dumps({"tutorial": args.tutorial.name, "test": test, **facts}, sort_keys=True))
    return status


if __name__ == "__main__":
    sys.exit(main())
