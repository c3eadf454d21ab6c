"""KPI 7, Ethos-U55 up to the FVP: what the fork's test_ethosu.py describes, on a generated model.

Runs inside the tvm-npu image with the built fork on PYTHONPATH, in an empty working folder.

1. `python3 -m tvm.driver.tvmc compile` with the command line of the fork's
   apps/microtvm/ethosu/run_demo.sh (targets ethos-u,cmsis-nn,c; Ethos-U55-256; Cortex-M55; AOT,
   C interface, USMP), on the int8 model given, into a Model Library Format archive.
2. tvmc's own report of which operators went where (`--dump-offloads FILE`, which only writes that
   report), printed between `ANT-KPI-OFFLOADS-BEGIN` and `ANT-KPI-OFFLOADS-END`.
3. The generated C of the archive compiled for the Cortex-M55 with arm-none-eabi-gcc and the
   demo Makefile's flags, into libcodegen.a (its sha256 identifies what was built).

Prints the tool output as it comes and closes with one line `ANT-KPI-ETHOSU {json}`; exits 0 when
that line was printed, whatever it says (the harness judges it).

Usage: python3 ethosu_compile.py MODEL.tflite --app /src/apps/microtvm/ethosu --cmsis DIR --cmsis-nn DIR
       --driver DIR
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

# apps/microtvm/ethosu/run_demo.sh of the fork, with the model and the output named.
TVMC_ARGS = [
    "--target=ethos-u,cmsis-nn,c",
    "--target-ethos-u-accelerator_config=ethos-u55-256",
    "--target-cmsis-nn-mcpu=cortex-m55",
    "--target-c-mcpu=cortex-m55",
    "--runtime=crt",
    "--executor=aot",
    "--executor-aot-interface-api=c",
    "--executor-aot-unpacked-api=1",
    "--pass-config",
    "tir.usmp.enable=1",
    "--pass-config",
    "tir.usmp.algorithm=hill_climb",
    "--pass-config",
    "tir.disable_storage_rewrite=1",
    "--pass-config",
    "tir.disable_vectorize=1",
]
# PKG_COMPILE_OPTS of the fork's apps/microtvm/ethosu/Makefile.
CFLAGS = [
    "-g",
    "-Wall",
    "-O2",
    "-Wno-incompatible-pointer-types",
    "-Wno-format",
    "-mcpu=cortex-m55",
    "-mthumb",
    "-mfloat-abi=hard",
    "-std=gnu99",
]
CMS = re.compile(r"\b(\w+)_cms_data_data\[(\d+)\]")
WEIGHTS = re.compile(r"static int8_t (\w+)_weights\[(\d+)\]")
DEFINED = re.compile(r"^(?:TVM_DLL )?int32_t (tvmgen_\w+)\(", re.M)


def tflite_operators(model: Path) -> dict[str, int]:
    """Operator counts of the model's first subgraph, by builtin name."""
    import tflite

    m = tflite.Model.GetRootAsModel(model.read_bytes(), 0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    g = m.Subgraphs(0)
    out: dict[str, int] = {}
    for i in range(g.OperatorsLength()):
        code = m.OperatorCodes(g.Operators(i).OpcodeIndex())
        b = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        out[names.get(b, str(b))] = out.get(names.get(b, str(b)), 0) + 1
    return out


def generated_c(src: Path) -> dict[str, Any]:
    """What the archive's generated C holds: command streams and encoded weights per NPU function,
    and the tvmgen functions it defines."""
    cms: dict[str, int] = {}
    weights: dict[str, int] = {}
    defined: list[str] = []
    for c in sorted(src.glob("*.c")):
        text = c.read_text(errors="replace")
        cms.update({k: int(v) for k, v in CMS.findall(text)})
        weights.update({k: int(v) for k, v in WEIGHTS.findall(text)})
        defined += DEFINED.findall(text)
    return {"command_streams": cms, "npu_weights": weights, "defined": sorted(set(defined))}


def cross_compile(
    mlf: Path, app: Path, out: Path, *, cmsis: Path | None, cmsis_nn: Path | None, driver: Path | None
) -> dict[str, Any]:
    """The archive's generated C compiled for the Cortex-M55 into libcodegen.a, as the demo Makefile
    does (its include folders that exist here)."""
    includes = [
        mlf / "runtime" / "include",
        mlf / "runtime" / "src" / "runtime" / "crt" / "include",
        mlf / "crt_config",
        app / "include",
        mlf / "codegen" / "host" / "include",
    ]
    if cmsis is not None:
        includes += [cmsis / "CMSIS" / "Core" / "Include", cmsis / "Device" / "ARM" / "ARMCM55" / "Include"]
    if cmsis_nn is not None:
        includes.append(cmsis_nn / "Include")
    if driver is not None:  # ethosu_driver.h, which the demo's tvm_ethosu_runtime.h includes
        includes.append(driver / "include")
    flags = [*CFLAGS, *(f"-I{p}" for p in includes if p.is_dir())]
    objs, failed = [], {}
    out.mkdir(parents=True, exist_ok=True)
    for c in sorted((mlf / "codegen" / "host" / "src").glob("*.c")):
        obj = out / (c.stem + ".o")
        argv = ["arm-none-eabi-gcc", "-c", *flags, "-o", str(obj), str(c)]
        print("$ " + " ".join(argv), flush=True)
        res = subprocess.run(argv, capture_output=True, text=True)
        sys.stdout.write(res.stdout + res.stderr)
        if res.returncode != 0:
            errors = [ln for ln in (res.stdout + res.stderr).splitlines() if "error" in ln]
            failed[c.name] = errors[0] if errors else f"exit {res.returncode}"
        else:
            objs.append(obj)
    facts: dict[str, Any] = {"sources": len(objs) + len(failed), "compiled": len(objs), "failed": failed}
    if objs and not failed:
        lib = out / "libcodegen.a"
        lib.unlink(missing_ok=True)
        # D: deterministic archive (no timestamps, uids), so the sha256 identifies the code.
        subprocess.run(["arm-none-eabi-ar", "-crD", str(lib), *map(str, objs)], check=True)
        size = subprocess.run(["arm-none-eabi-size", "-t", *map(str, objs)], capture_output=True, text=True)
        sys.stdout.write(size.stdout)
        total = size.stdout.strip().splitlines()[-1].split() if size.returncode == 0 else []
        facts |= {
            "library": lib.name,
            "library_sha256": hashlib.sha256(lib.read_bytes()).hexdigest(),
            "library_bytes": lib.stat().st_size,
            "text_bytes": int(total[0]) if total else None,
            "data_bytes": int(total[1]) if total else None,
            "bss_bytes": int(total[2]) if total else None,
        }
    facts["cflags"] = CFLAGS
    return facts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--app", type=Path, required=True, help="the fork's apps/microtvm/ethosu")
    ap.add_argument("--cmsis", type=Path, help="CMSIS_5 (Core and ARMCM55 device headers)")
    ap.add_argument("--cmsis-nn", type=Path, help="CMSIS-NN (its Include folder)")
    ap.add_argument("--driver", type=Path, help="the Ethos-U core driver (its include folder)")
    args = ap.parse_args(argv)
    work = Path.cwd()
    facts: dict[str, Any] = {"model": args.model.name}
    facts["model_sha256"] = hashlib.sha256(args.model.read_bytes()).hexdigest()
    facts["tflite_operators"] = tflite_operators(args.model)
    offloads = work / "offloads.txt"
    cmd = [sys.executable, "-m", "tvm.driver.tvmc", "compile", *TVMC_ARGS, str(args.model)]
    cmd += ["--output-format=mlf", "--output", str(work / "module.tar"), "--dump-offloads", str(offloads)]
    print("$ " + " ".join(cmd), flush=True)
    rc = subprocess.run(cmd).returncode
    facts["tvmc_exit"] = rc
    facts["tvmc_argv"] = ["tvmc", "compile", *TVMC_ARGS]
    if offloads.is_file():
        print("ANT-KPI-OFFLOADS-BEGIN\n" + offloads.read_text(errors="replace") + "\nANT-KPI-OFFLOADS-END", flush=True)
    if rc == 0 and (work / "module.tar").is_file():
        mlf = work / "mlf"
        with tarfile.open(work / "module.tar") as t:
            t.extractall(mlf)
        facts["module_sha256"] = hashlib.sha256((work / "module.tar").read_bytes()).hexdigest()
        facts |= generated_c(mlf / "codegen" / "host" / "src")
        facts["cortex_m55"] = cross_compile(
            mlf, args.app, work / "objects", cmsis=args.cmsis, cmsis_nn=args.cmsis_nn, driver=args.driver
        )
    print("ANT-KPI-ETHOSU " + json.dumps(facts, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
