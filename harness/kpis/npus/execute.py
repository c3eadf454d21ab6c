"""KPI 7 execution: the NPUs whose compiler path passes (VTA, Ethos-U55, Gemmini).

Two paths. The seed's: build the ANT-Model-DB TVM fork with the three NPU back ends in the tvm-npu
image, then run testcase/test_{vta,ethosu,gemmini}.py; each testcase log is judged by a rule of
its own (`judge_vta`, `judge_ethosu`, `judge_gemmini`), so a testcase that skips, falls back to the
CPU or classifies wrongly is not a pass. Whatever that path lacks here (the image, the fork's build,
the Corstone-300 FVP licence, Spike with Gemmini, the network for the testcases' model downloads)
ends its steps BLOCKED, naming it. The smoke path, which runs here: Arm's Vela compiler
(ethos-u-vela from PyPI) compiles a small int8 TFLite model made by the harness for an Ethos-U55;
its row passes only if Vela placed the operators on the NPU. That is the Vela compile path with
Vela's performance estimates (fidelity `simulator`), not the seed's testcase on the FVP.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness.core.fsio import atomic_write_text
from harness.core.runner import Executor, Run
from harness.core.steps import Step
from harness.env.identity import host_identity
from harness.errors import BadInput, Blocked, StepFailed
from harness.kpis.common.executors import container_for, docker_for
from harness.kpis.common.tflite import tiny_mobilenet_like
from harness.parsers.vela import (
    VelaSummary,
    describe,
    parse_vela_csv,
    parse_vela_file,
    summary_measurements,
    with_csv_estimates,
)
from harness.results.store import Row, append_row_journal

KPI: Final = "npus"
IMAGE: Final = "tvm-npu"
NPUS: Final = ("VTA", "Ethos-U55", "Gemmini")
VELA_STEP: Final = "convert:vela:Ethos-U55"
VELA_VERSION: Final = "5.2.0"  # the ethos-u-vela release the harness pins (pip install ethos-u-vela==5.2.0)
VELA_FIX: Final = f"pip install ethos-u-vela=={VELA_VERSION}"
VELA_ACCELERATOR: Final = "ethos-u55-128"  # the Corstone-300 FVP's default Ethos-U55 configuration
VELA_CONFIG: Final = "Arm/vela.ini"
VELA_SYSTEM_CONFIG: Final = "Ethos_U55_High_End_Embedded"
VELA_MEMORY_MODE: Final = "Shared_Sram"
VELA_TIMEOUT_S: Final = 300.0
SMOKE_MODEL: Final = "tiny_mobilenet_like_int8.tflite"
ETHOSU_CUSTOM_CODE: Final = b"ethos-u"
# A hand-built tvm-npu image (e.g. with the FVP licence accepted) is named by this variable.
IMAGE_ENV: Final = "ANT_KPI_TVM_NPU_IMAGE"
# Building the tvm-npu image takes hours, so a KPI run only does it when asked to.
BUILD_IMAGE_ENV: Final = "ANT_KPI_BUILD_TVM_NPU_IMAGE"
ETHOSU_EXPECTED_LABEL: Final = "tabby"
_SEED_PATH_NOTE: Final = "seed testcase"


# --------------------------------------------------------------------------------------------
# Pass rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Judgement:
    """A pass/fail decision from one log, its reason, and the log lines it rests on."""

    passed: bool
    reason: str
    evidence: tuple[str, ...] = ()
    blocked: bool = False  # the log shows a missing component (the network), not a failed NPU path


_NETWORK_RE: Final = re.compile(
    r"URLError|urlopen error|Temporary failure in name resolution|Name or service not known|"
    r"Network is unreachable|Connection refused|Failed to download|Max retries exceeded|HTTP Error [45][0-9][0-9]"
)
_ERROR_LINE_RE: Final = re.compile(r"^(?:[A-Za-z_.]*(?:Error|Exception)|Traceback)\b.*$", re.MULTILINE)
_SKIP_RE: Final = re.compile(
    r"^\s*(?:SKIP(?:PED)?\b.*|.*\btest(?:case)?s? (?:was |were )?skipped\b.*|Skipping (?:the )?test\b.*)$",
    re.MULTILINE | re.IGNORECASE,
)
_VTA_STAT_RE: Final = re.compile(r"^\s+(?P<key>[a-z_]+)\s*:\s*(?P<val>[0-9]+)\s*$", re.MULTILINE)
_VTA_TOP_RE: Final = re.compile(r"^\s*#(?P<rank>[1-5]):\s*(?P<label>.+?)\s*$", re.MULTILINE)
_ETHOSU_LABEL_RE: Final = re.compile(r"The image has been classified as '(?P<label>[^']*)'")
_ETHOSU_INVOKE_RE: Final = re.compile(r"ethosu_invoke\b.*COMMAND_STREAM|handle_command_stream:")
_ETHOSU_PMU_RE: Final = re.compile(
    r"(?:ethosu_pmu_cycle_cntr|NPU (?:total |active )?cycles)\s*[:=]\s*(?P<n>[0-9]+)", re.IGNORECASE
)
_SPIKE_GEMMINI_RE: Final = re.compile(r"\bspike\b[^\n]*--extension=gemmini")
_GEMMINI_TOP5_RE: Final = re.compile(
    r"^(?P<which>Real|Expected) Top-5 output labels: \[ (?P<labels>[0-9 ]*)\]", re.MULTILINE
)


def _last_error(text: str) -> str:
    found = [m.group(0).strip() for m in _ERROR_LINE_RE.finditer(text) if not m.group(0).startswith("Traceback")]
    return found[-1] if found else ""


def _common_failure(npu: str, text: str, exit_status: int) -> Judgement | None:
    """What every testcase shares: network failures block, a non-zero exit or a skip fails."""
    net = next((ln.strip() for ln in text.splitlines() if _NETWORK_RE.search(ln)), None)
    if exit_status != 0 and net is not None:
        return Judgement(passed=False, blocked=True, evidence=(net,),
                         reason=f"{npu} testcase could not download its model or data ({net})")
    if exit_status != 0:
        err = _last_error(text)
        return Judgement(passed=False, evidence=(err,) if err else (),
                         reason=f"{npu} testcase exited {exit_status}" + (f": {err}" if err else ""))
    skip = _SKIP_RE.search(text)
    if skip:
        return Judgement(passed=False, evidence=(skip.group(0).strip(),),
                         reason=f"{npu} testcase skipped: {skip.group(0).strip()}")
    return None


def judge_vta(text: str, exit_status: int) -> Judgement:
    """VTA: fsim execution statistics with GEMM work, and a cat among the top-5 classes."""
    if (j := _common_failure("VTA", text, exit_status)) is not None:
        return j
    head = text.find("Execution statistics:")
    if head < 0:
        return Judgement(passed=False, reason="no 'Execution statistics:' from the VTA functional simulator: "
                                              "the network did not run on VTA (target not 'sim'?)")
    stats = {m["key"]: int(m["val"]) for m in _VTA_STAT_RE.finditer(text, head)}
    gemm = stats.get("gemm_counter", 0)
    if gemm <= 0:
        return Judgement(passed=False, evidence=(f"gemm_counter : {gemm}",),
                         reason="the VTA simulator counted no GEMM operations: the convolutions ran on the CPU")
    top = [m["label"] for m in _VTA_TOP_RE.finditer(text, head)]
    if not top:
        return Judgement(passed=False, reason="no top-5 classification printed after the simulator statistics")
    evidence = (f"gemm_counter : {gemm}", f"#1: {top[0]}")
    if not any("cat" in label for label in top[:5]):
        return Judgement(passed=False, evidence=evidence,
                         reason=f"no cat class among the top-5 ({', '.join(top[:5])}) for the cat test image")
    return Judgement(passed=True, evidence=evidence,
                     reason=f"ran on the VTA fsim ({gemm} GEMM ops per inference), top-1 '{top[0]}'")


def judge_ethosu(text: str, exit_status: int, *, expected_label: str = ETHOSU_EXPECTED_LABEL) -> Judgement:
    """Ethos-U55 on the FVP: the NPU driver ran a command stream (or PMU cycles > 0), and the label."""
    if (j := _common_failure("Ethos-U55", text, exit_status)) is not None:
        return j
    invoke = _ETHOSU_INVOKE_RE.search(text)
    pmu = [int(m["n"]) for m in _ETHOSU_PMU_RE.finditer(text)]
    if invoke is None and not any(n > 0 for n in pmu):
        return Judgement(passed=False, reason="no Ethos-U command stream and no NPU cycles in the FVP output: "
                                              "the model ran on the Cortex-M55 alone")
    npu_line = invoke.group(0).strip() if invoke is not None else f"NPU cycles {max(pmu)}"
    labels = [m["label"] for m in _ETHOSU_LABEL_RE.finditer(text)]
    if not labels:
        return Judgement(passed=False, evidence=(npu_line,),
                         reason="the NPU ran but the application printed no classification")
    if labels[-1] != expected_label:
        return Judgement(passed=False, evidence=(npu_line, labels[-1]),
                         reason=f"classified as '{labels[-1]}', expected '{expected_label}'")
    return Judgement(passed=True, evidence=(npu_line, labels[-1]),
                     reason=f"the Ethos-U55 ran on the FVP ({npu_line}), classified as '{labels[-1]}'")


def judge_gemmini(text: str, exit_status: int) -> Judgement:
    """Gemmini: Spike ran with the Gemmini extension, and its top-1 label matches the expected one."""
    if (j := _common_failure("Gemmini", text, exit_status)) is not None:
        return j
    tops = {m["which"]: [int(x) for x in m["labels"].split()] for m in _GEMMINI_TOP5_RE.finditer(text)}
    if "Real" not in tops:
        return Judgement(passed=False, reason="no Spike run in the log (no 'Real Top-5 output labels'): "
                                              "the model was compiled but not run on Gemmini")
    spike = _SPIKE_GEMMINI_RE.search(text)
    if spike is None:
        return Judgement(passed=False, reason="the log does not show Spike run with --extension=gemmini: "
                                              "the result may come from a CPU-only run")
    real, expected = tops["Real"], tops.get("Expected", [])
    evidence = (spike.group(0).strip(), f"real top-5 {real}", f"expected top-5 {expected}")
    if not real or not expected:
        return Judgement(passed=False, evidence=evidence, reason="the Spike run printed no labels to compare")
    if real[0] != expected[0]:
        return Judgement(passed=False, evidence=evidence,
                         reason=f"Gemmini top-1 label {real[0]} differs from the expected {expected[0]}")
    return Judgement(passed=True, evidence=evidence,
                     reason=f"ran on Spike with Gemmini, top-1 label {real[0]} as expected")


JUDGES: Final[dict[str, Callable[[str, int], Judgement]]] = {
    "VTA": judge_vta,
    "Ethos-U55": judge_ethosu,
    "Gemmini": judge_gemmini,
}


def judge_vela(summary: VelaSummary, *, exit_status: int, npu_custom_ops: int | None) -> Judgement:
    """The Vela smoke: compiled, at least one NPU operator, none left to the CPU, an Ethos-U op in the output."""
    if exit_status != 0 or summary.error:
        return Judgement(passed=False, reason=f"Vela exited {exit_status}" + (f": {summary.error}" if summary.error
                                                                                else ""))
    if not summary.compiled:
        return Judgement(passed=False, reason="Vela printed no network summary")
    ops = f"{summary.npu_ops} NPU / {summary.cpu_ops or 0} CPU operators"
    if not summary.npu_ops:
        return Judgement(passed=False, evidence=(ops,), reason=f"every operator fell back to the CPU ({ops})")
    # The smoke model holds only operators the Ethos-U55 supports: any fallback is a regression.
    if summary.cpu_ops:
        first = summary.unsupported[0] if summary.unsupported else None
        why = f"; first: {first.op} ({first.reason})" if first is not None else ""
        return Judgement(passed=False, evidence=(ops,),
                         reason=f"{summary.cpu_ops} operator(s) fell back to the CPU{why}")
    if npu_custom_ops is not None and npu_custom_ops < 1:
        return Judgement(passed=False, evidence=(ops,), reason="the compiled model holds no ethos-u operator")
    return Judgement(passed=True, evidence=(ops,), reason=f"all operators on the NPU ({ops})")


# --------------------------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------------------------


def _row(run: Run, step: Step, **kw: Any) -> Row:
    fields: dict[str, Any] = {
        "run_id": run.run_id, "kpi": KPI, "mode": run.mode, "variant": step.variant,
        "target": step.target or "x86_64", "repeat": step.repeat or 0, "fidelity": step.fidelity or "simulator",
        **run.provenance_base(), **kw,
    }
    return Row(**fields)


def _write(run: Run, rows: list[Row]) -> None:
    for r in rows:
        append_row_journal(run.run_dir, r)


# --------------------------------------------------------------------------------------------
# The Vela smoke (runs here)
# --------------------------------------------------------------------------------------------


def vela_command() -> list[str]:
    """How to start Vela: the `vela` of this Python environment, else one on PATH; Blocked if none."""
    beside = Path(sys.executable).parent / "vela"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("vela")
    if found:
        return [found]
    raise Blocked("Arm Vela (ethos-u-vela) is not installed, so the Ethos-U55 compile path cannot run", VELA_FIX)


def vela_version(cmd: list[str]) -> str:
    """`vela --version`, or '' when it prints none."""
    try:
        out = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    m = re.search(r"[0-9]+\.[0-9]+\.[0-9]+\S*", out.stdout or out.stderr)
    return m.group(0) if m else ""


def vela_argv(cmd: list[str], model: Path, out_dir: Path) -> list[str]:
    """The Vela command line of the smoke: explicit configuration, cycle estimate, operator list."""
    return [
        *cmd, "--accelerator-config", VELA_ACCELERATOR, "--config", VELA_CONFIG,
        "--system-config", VELA_SYSTEM_CONFIG, "--memory-mode", VELA_MEMORY_MODE,
        "--verbose-cycle-estimate", "--show-cpu-operations", "--output-dir", str(out_dir), str(model),
    ]


def ethosu_custom_ops(path: Path) -> int | None:
    """Operators of a Vela output model that run on the NPU (custom code 'ethos-u'); None if unreadable."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        return None
    try:
        model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    except Exception:  # a truncated flatbuffer raises anything from struct.error to IndexError
        return None
    codes = [c.customCode for c in (model.operatorCodes or [])]
    return sum(1 for sg in (model.subgraphs or []) for op in (sg.operators or [])
               if op.opcodeIndex < len(codes) and codes[op.opcodeIndex] == ETHOSU_CUSTOM_CODE)


def exec_vela(step: Step, run: Run) -> dict[str, Any]:
    """Compile the harness's int8 model with Vela for an Ethos-U55; rows: passed plus Vela's estimates."""
    common: dict[str, Any] = {"workload": SMOKE_MODEL, "unit": "count"}
    try:
        cmd = vela_command()
        work = run.work_dir("npus-vela")
        model = tiny_mobilenet_like(work / SMOKE_MODEL, int8=True)
    except Blocked as e:
        _write(run, [_row(run, step, metric="passed", value=float("nan"), status="blocked",
                          note=f"Vela compile path: {e}", **common)])
        raise
    version = vela_version(cmd)
    out_dir = work / "out"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    argv = vela_argv(cmd, model.path, out_dir)
    log = run.raw_path(step.id, ".log")
    try:
        with log.open("wb") as f:
            proc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, cwd=work, timeout=VELA_TIMEOUT_S,
                                  check=False)
    except subprocess.TimeoutExpired:
        raise StepFailed(f"Vela took longer than {VELA_TIMEOUT_S:g} s", log=run.rel(log)) from None
    identity = {
        **host_identity(), "kind": "compiler-estimate", "tool": "ethos-u-vela", "version": version,
        "pinned": VELA_VERSION, "accelerator": VELA_ACCELERATOR, "system_config": VELA_SYSTEM_CONFIG,
        "memory_mode": VELA_MEMORY_MODE,
    }
    prov: dict[str, Any] = {"argv": [str(a) for a in argv], "target_identity": identity, "log": run.rel(log),
                            "artefact_sha256": model.sha256}
    pin_note = "" if version == VELA_VERSION else f" (Vela {version or 'of unknown version'}; the harness pins " \
                                                  f"{VELA_VERSION})"
    try:
        summary = parse_vela_file(log)
    except BadInput as e:
        _write(run, [_row(run, step, metric="passed", value=float("nan"), status="failed",
                          note=f"Vela compile path: {e.one_line()}", **common, **prov)])
        raise StepFailed(f"Vela exited {proc.returncode} without a summary", log=run.rel(log)) from None
    stem = model.path.stem
    table = out_dir / f"{stem}_summary_{VELA_SYSTEM_CONFIG}.csv"
    if table.is_file():
        # A CSV the parser rejects changes nothing: the printed summary holds every figure, rounded.
        with contextlib.suppress(BadInput):
            summary = with_csv_estimates(summary, parse_vela_csv(table))
    compiled = out_dir / f"{stem}_vela.tflite"
    custom = ethosu_custom_ops(compiled) if compiled.is_file() else 0
    verdict = judge_vela(summary, exit_status=proc.returncode, npu_custom_ops=custom)
    if proc.returncode != 0 or summary.error:
        _write(run, [_row(run, step, metric="passed", value=float("nan"), status="failed",
                          note=f"Vela compile path: {verdict.reason}", **common, **prov)])
        raise StepFailed(verdict.reason, log=run.rel(log))
    note = (f"Vela compile path (not the seed's test_ethosu.py on the Corstone-300 FVP): {verdict.reason}; "
            f"{describe(summary)}; estimates from Vela's performance model{pin_note}")
    rows = [_row(run, step, metric="passed", value=1.0 if verdict.passed else 0.0, status="ok", note=note,
                 **common, **prov)]
    for m in summary_measurements(summary):
        rows.append(_row(run, step, metric=m["metric"], value=m["value"], unit=m["unit"], status="ok",
                         workload=SMOKE_MODEL, note=m.get("note", "Vela estimate"), **prov))
    _write(run, rows)
    return {
        "log": str(log), "passed": verdict.passed, "reason": verdict.reason, "vela_version": version,
        "model": str(model.path), "model_sha256": model.sha256, "compiled": str(compiled) if compiled.is_file()
        else "", "ethosu_custom_ops": custom, "npu_ops": summary.npu_ops, "cpu_ops": summary.cpu_ops,
        "npu_cycles": summary.npu_cycles, "summary_csv": str(table) if table.is_file() else "",
    }


# --------------------------------------------------------------------------------------------
# The seed path: tvm-npu image, TVM fork build, testcases
# --------------------------------------------------------------------------------------------


def _image_fix() -> str:
    return (f"build it once with `ant-kpi images build {IMAGE}` (or run with {BUILD_IMAGE_ENV}=1); for the "
            f"Ethos-U55 FVP build by hand with --build-arg ACCEPT_ARM_FVP_EULA=yes --build-arg FVP_SHA256=<sha256> "
            f"(see containers/tvm-npu/README.md) and pass {IMAGE_ENV}=<tag>")


def exec_image(step: Step, run: Run) -> dict[str, Any]:
    """The tvm-npu image: a named one, or the harness's tag when already built; built only when asked."""
    from harness.env.images import ensure_image, image_digest, image_tag, read_tool_versions

    img = run.manifest.images[IMAGE]
    ctx = run.project_root / img.context
    if not ctx.is_dir():
        raise Blocked(f"image {IMAGE}: its build context {img.context} is not in this version of the harness",
                      "add containers/tvm-npu")
    named = run.env.tvm_npu_image
    if run.env.build_tvm_npu_image and not named:
        ref = ensure_image(img, root=run.project_root, env=run.env, client=docker_for(run), console=run.console,
                           log_path=run.log_path(step.id))
        return {"tag": ref.tag, "id": ref.id, "digest": ref.digest, "provenance": ref.to_provenance(),
                "tool_versions": dict(ref.tool_versions)}
    tag = named or image_tag(img, image_digest(img, run.project_root, run.env))
    client = docker_for(run)
    from docker.errors import ImageNotFound

    try:
        found = client.images.get(tag)
    except ImageNotFound:
        if named:
            raise BadInput(f"{IMAGE_ENV}={named}: no such image on this Docker host") from None
        raise Blocked(
            f"image {IMAGE} ({tag}) is not built on this machine, and a KPI run does not build it unasked "
            "(LLVM, the TVM fork's Python dependencies, Spike and the RISC-V toolchain for Gemmini, "
            "the Corstone-300 FVP only with its licence accepted)",
            _image_fix(),
        ) from None
    versions = read_tool_versions(client, str(found.id))
    return {"tag": tag, "id": str(found.id), "digest": str(found.id), "tool_versions": versions,
            "provenance": {"image": IMAGE, "tag": tag, "id": str(found.id), "tool_versions": versions}}


def _fork_source(run: Run) -> dict[str, Any]:
    out = next((o for sid, o in run.outputs.items() if sid.startswith("source:ant_model_db")), None)
    if out is None:
        raise Blocked("the ANT-Model-DB checkout (compiler/, the TVM 0.13.dev0 fork) is missing",
                      "let source:ant_model_db complete, or pass --source ant_model_db=PATH (a local clone)")
    return out


# Appended to build/config.cmake: a later set() wins, while -D on the cmake line would be shadowed
# by the set(... OFF) lines config.cmake already holds.
CONFIG_LINES: Final = (
    "set(USE_LLVM llvm-config-14)",
    "set(USE_VTA_FSIM ON)",
    "set(USE_ETHOSU ON)",
    "set(USE_GEMMINI ON)",
)
BUILD_OUTPUTS: Final = ("build/libtvm.so", "build/libvta_fsim.so")
GEMMINI_DIR: Final = "3rdparty/gemmini"
# What TVM's CMake build reads from its submodules (headers of dmlc-core, dlpack and rang; the VTA
# hardware sources for the functional simulator; libbacktrace for the runtime's stack traces).
FORK_SUBMODULES: Final = ("3rdparty/dmlc-core", "3rdparty/dlpack", "3rdparty/rang", "3rdparty/vta-hw",
                          "3rdparty/libbacktrace")
# The kpis.toml source that fills each of them (the fork records no submodule commits).
SUBMODULE_SOURCES: Final = {
    "3rdparty/dmlc-core": "tvm_dmlc_core", "3rdparty/dlpack": "tvm_dlpack", "3rdparty/rang": "tvm_rang",
    "3rdparty/vta-hw": "tvm_vta_hw", "3rdparty/libbacktrace": "tvm_libbacktrace",
}


def missing_submodules(compiler: Path) -> list[str]:
    """The submodule folders the fork's build needs that are absent or empty in `compiler`."""
    return [d for d in FORK_SUBMODULES if not (compiler / d).is_dir() or not any((compiler / d).iterdir())]


def exec_build(step: Step, run: Run) -> dict[str, Any]:
    """Build the TVM fork in the tvm-npu image (cached by the step key): libtvm.so and libvta_fsim.so."""

    src = _fork_source(run)
    img = run.outputs.get(f"image:{IMAGE}")
    if img is None:
        raise Blocked(f"the {IMAGE} image is missing", _image_fix())
    tree = run.cache_dir / "tvm-fork" / step.key
    done = tree / ".ant-kpi-build.json"
    if done.is_file():
        return {**json.loads(done.read_text()), "reused": True}
    compiler = Path(src["path"]) / "compiler"
    if not (compiler / "CMakeLists.txt").is_file():
        raise StepFailed(f"{compiler} holds no CMakeLists.txt: not the TVM fork the seed builds")
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(compiler, tree, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    filled = {}
    for sub in missing_submodules(tree):
        out = run.outputs.get(f"source:{SUBMODULE_SOURCES[sub]}")
        if out is not None:
            shutil.rmtree(tree / sub, ignore_errors=True)
            shutil.copytree(out["path"], tree / sub, symlinks=True, ignore=shutil.ignore_patterns(".git"))
            filled[sub] = str(out.get("commit", ""))
    absent = missing_submodules(tree)
    if absent:
        # ANT-Model-DB vendors TVM with its .gitmodules but without the submodule commits, so a
        # clone cannot fill them at a pinned commit.
        raise Blocked(
            f"the TVM fork at {str(src.get('commit', ''))[:12] or 'this checkout'} lacks its submodules "
            f"{', '.join(absent)} (ANT-Model-DB records compiler/.gitmodules but no submodule commits)",
            "let the source:tvm_* steps complete (kpis.toml pins them at Apache TVM v0.13.dev0's commits), or "
            "pass --source ant_model_db=PATH: a checkout whose compiler/3rdparty holds those trees",
        )
    (tree / "build").mkdir(exist_ok=True)
    # The fork's .gitignore drops config.cmake, so 6bccd836 has none: TVM's CMakeLists.txt gives every
    # option its default, and the lines below switch on what the seed asks for.
    template = tree / "cmake" / "config.cmake"
    cfg = template.read_text() if template.is_file() else ""
    lines, not_built = list(CONFIG_LINES), {}
    if not (tree / GEMMINI_DIR).is_dir() or not any((tree / GEMMINI_DIR).iterdir()):
        # Gemmini.cmake copies sources out of 3rdparty/gemmini, a submodule the fork added without a
        # commit (not one of TVM's): build the other back ends and say why Gemmini is not there.
        lines = [ln if ln != "set(USE_GEMMINI ON)" else "set(USE_GEMMINI OFF)" for ln in lines]
        not_built["Gemmini"] = (f"the fork's {GEMMINI_DIR} (ucb-bar/gemmini, added by ANT-Model-DB) has no "
                                "recorded commit, so the Gemmini back end was built OFF")
    (tree / "build" / "config.cmake").write_text(cfg + "\n# ANT KPI harness (KPI 7)\n" + "\n".join(lines) + "\n")
    log = run.log_path(step.id)
    # The plan's argv (cmake + make, from /src) is what runs, so the dry run shows the real command.
    with container_for(run, img["tag"], mounts={str(tree): "/src"}, workdir="/src") as c:
        rc = c.run(list(step.argv), cwd="/src", log_path=log)
    if rc != 0:
        raise StepFailed(f"the TVM fork build exited {rc}", log=run.rel(log))
    missing = [p for p in BUILD_OUTPUTS if not (tree / p).is_file()]
    if missing:
        raise StepFailed(f"the TVM fork build produced no {', '.join(missing)}", log=run.rel(log))
    out = {"path": str(tree), "source_commit": str(src.get("commit", "")), "image": img["tag"],
           "config": lines, "submodules": filled, "not_built": not_built, "log": run.rel(log)}
    atomic_write_text(done, json.dumps(out, indent=1))
    return {**out, "reused": False}


def testcase_requirements(npu: str, tool_versions: dict[str, str]) -> list[tuple[str, str]]:
    """(what is missing, fix) for one testcase, from the tool versions the image recorded."""
    missing = []
    if npu == "Ethos-U55" and not tool_versions.get("fvp_corstone_sse_300"):
        missing.append(("the Arm Corstone-300 FVP (installed only when its licence is accepted at image build "
                        "time: ACCEPT_ARM_FVP_EULA=yes with FVP_SHA256)",
                        "build the image by hand with --build-arg ACCEPT_ARM_FVP_EULA=yes --build-arg "
                        f"FVP_SHA256=<sha256> (containers/tvm-npu/README.md) and pass {IMAGE_ENV}=<tag>"))
    if npu == "Gemmini":
        wanted = (("spike", "Spike with the Gemmini extension (esp-isa-sim) and libgemmini"),
                  ("riscv64-unknown-elf-gcc", "the RISC-V bare-metal GCC (riscv64-unknown-elf-gcc)"))
        for tool, what in wanted:
            if not tool_versions.get(tool):
                missing.append((f"{what}, installed only with INSTALL_GEMMINI_TOOLCHAIN=yes",
                                "build the image by hand with --build-arg INSTALL_GEMMINI_TOOLCHAIN=yes and the "
                                f"pinned URLs and sha256 (containers/tvm-npu/README.md); pass {IMAGE_ENV}=<tag>"))
    return missing


def exec_testcase(step: Step, run: Run) -> dict[str, Any]:
    """Run testcase/test_<npu>.py in the image against the built fork; one `passed` row from its rule."""

    build = run.outputs.get("build:tvm-fork")
    img = run.outputs.get(f"image:{IMAGE}")
    if build is None or img is None:
        raise Blocked(f"{step.id}: the TVM fork build or the {IMAGE} image is missing", "let build:tvm-fork complete")
    missing = testcase_requirements(step.variant, dict(img.get("tool_versions", {})))
    if step.variant in build.get("not_built", {}):
        missing.append((build["not_built"][step.variant],
                        f"pass --source ant_model_db=PATH with a checkout whose compiler/{GEMMINI_DIR} holds the "
                        "Gemmini release the fork was written against (with its gemmini-rocc-tests)"))
    if missing:
        raise Blocked("; ".join(w for w, _ in missing), "; ".join(dict.fromkeys(f for _, f in missing)))
    tree = Path(build["path"])
    log = run.raw_path(step.id, ".log")
    env = {"TVM_HOME": "/src", "PYTHONPATH": "/src/python:/src/vta/python", "TVM_LIBRARY_PATH": "/src/build"}
    with container_for(run, img["tag"], mounts={str(tree): "/src"}, workdir="/src", env=env) as c:
        rc = c.run(list(step.argv), cwd="/src", log_path=log)
    text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
    verdict = JUDGES[step.variant](text, rc)
    if verdict.blocked:
        raise Blocked(verdict.reason, "give the container network access, or pre-fetch the models into the "
                                      "download cache the testcase reads")
    _write(run, [_row(run, step, metric="passed", value=1.0 if verdict.passed else 0.0, unit="count", status="ok",
                      workload=step.workload, argv=list(step.argv), log=run.rel(log),
                      source_commit=str(build.get("source_commit", "")), image_digest=str(img.get("id", "")),
                      note=f"{_SEED_PATH_NOTE}: {verdict.reason}")])
    return {"log": str(log), "exit_status": rc, "passed": verdict.passed, "reason": verdict.reason}


def exec_measure(step: Step, run: Run) -> dict[str, Any]:
    """measure:<NPU>: the seed's testcase."""
    if step.variant not in JUDGES:
        raise BadInput(f"{step.id}: no pass rule for NPU {step.variant!r}; rules: {', '.join(JUDGES)}")
    return exec_testcase(step, run)


def exec_convert(step: Step, run: Run) -> dict[str, Any]:
    """convert:vela:Ethos-U55: the Vela smoke."""
    if step.id != VELA_STEP:
        raise Blocked(f"step {step.id}: this version knows no conversion of that name", "see `ant-kpi plan npus`")
    return exec_vela(step, run)


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _state(run: Run, step_id: str) -> dict[str, Any]:

    p = run.state_path(KPI, step_id)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _first_clause(message: str) -> str:
    """A blocked message without its fix and its chain of `depends on …:` prefixes."""
    what = message.split(" — fix:", 1)[0]
    while what.startswith("depends on ") and ": " in what:
        what = what.split(": ", 1)[1]
    return what


def seed_gaps(run: Run, npu: str) -> list[str]:
    """Everything the seed testcase of `npu` still lacks in this run, not only the first blocked step."""
    gaps = []
    steps = run.steps
    src_id = next((sid for sid in steps if sid.startswith("source:ant_model_db")), "source:ant_model_db:compiler")
    for sid, label in ((src_id, "ANT-Model-DB checkout"), (f"image:{IMAGE}", f"{IMAGE} image"),
                       ("build:tvm-fork", "TVM fork build")):
        st = _state(run, sid)
        if st.get("status") == "ok":
            continue
        own = str(st.get("message", ""))
        if own.startswith("depends on "):
            gaps.append(f"{label} (not attempted: its inputs are missing)")
        else:
            gaps.append(f"{label} ({_first_clause(own) or 'not run'})")
    versions = dict((run.outputs.get(f"image:{IMAGE}") or {}).get("tool_versions", {}))
    if npu in ("Ethos-U55", "Gemmini"):
        gaps += [w for w, _ in testcase_requirements(npu, versions)]
    if gaps:
        gaps.append("then network access for the models the testcase downloads at run time")
    return gaps


def npu_table(run: Run) -> list[dict[str, str]]:
    """Per NPU: status (passed/failed/blocked/no evidence), the path, the reason and the log."""
    from harness.results.runs import collect

    df = collect(run.run_dir).filter(kpi=KPI).df
    df = df[df["metric"] == "passed"]
    table = []
    for npu in NPUS:
        rows = df[df["variant"] == npu]
        if rows.empty:
            table.append({"npu": npu, "status": "no evidence", "path": "-", "reason": "no row", "log": ""})
            continue
        for rec in rows.to_dict("records"):
            if rec["status"] != "ok":
                status = str(rec["status"])
            else:
                status = "passed" if float(rec["value"]) >= 1.0 else "failed"
            seed = rec["workload"] != SMOKE_MODEL
            path = f"seed {rec['workload']}" if seed else "Vela compile (smoke)"
            reason = str(rec["note"] or "")
            if seed and status == "blocked":
                reason = "missing: " + "; ".join(seed_gaps(run, npu))
            table.append({"npu": npu, "status": status, "path": path, "reason": reason,
                          "log": str(rec["log"] or "")})
    return table


def exec_evaluate(step: Step, run: Run) -> dict[str, Any]:
    """KPI 7 verdict (stats.evaluate, count_at_least) and the per-NPU table."""
    from harness.kpis.common.executors import evaluate_kpi

    out = evaluate_kpi(run, KPI)
    table = npu_table(run)
    lines = ["| NPU | path | status | reason |", "|---|---|---|---|"]
    lines += [f"| {t['npu']} | {t['path']} | {t['status']} | {t['reason'].replace('|', '/')} |" for t in table]
    atomic_write_text(run.run_dir / "evaluations" / f"{KPI}-table.md", "\n".join(lines) + "\n")
    for t in table:
        run.console.print(f"    {t['npu']:10} {t['path']:24} {t['status']:8} {t['reason'][:110]}")
    return {**out, "table": table}


EXECUTORS: dict[str, Executor] = {
    "image": exec_image,
    "build": exec_build,
    "convert": exec_convert,
    "measure": exec_measure,
    "evaluate": exec_evaluate,
}
