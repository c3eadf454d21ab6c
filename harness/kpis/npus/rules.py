"""KPI 7's pass rules: what each NPU's testcase output must show to count."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from harness.kpis.npus.rows import ETHOSU_EXPECTED_LABEL
from harness.parsers.npu_sim import parse_ethosu_compile, parse_gemmini_run, parse_offloads, parse_vta_random
from harness.parsers.vela import (
    VelaSummary,
)

# VTA on random weights: the fsim's output agrees with the CPU's when its largest difference is at
# most this fraction of the CPU output's largest magnitude, with the same top-1 class. Set after the
# first runs here: with He-normal weights (activations that use the int8 range) the largest difference
# was 5.2 % of the range and the top-1 the same; where the difference comes from between the VTA
# build of the packed graph and the CPU build of the same quantised graph is not identified.
VTA_RANDOM_REL_TOLERANCE: Final = 0.10
# A reference with fewer distinct logits than this (a saturated or all-zero output) makes any
# agreement vacuous: such a check fails.
VTA_RANDOM_MIN_DISTINCT: Final = 10
# The fork's Gemmini programs call their result right when under 1 % of the elements differ.
GEMMINI_MAX_ERROR_FRACTION: Final = 0.01

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
        return Judgement(
            passed=False,
            blocked=True,
            evidence=(net,),
            reason=f"{npu} testcase could not download its model or data ({net})",
        )
    if exit_status != 0:
        err = _last_error(text)
        return Judgement(
            passed=False,
            evidence=(err,) if err else (),
            reason=f"{npu} testcase exited {exit_status}" + (f": {err}" if err else ""),
        )
    skip = _SKIP_RE.search(text)
    if skip:
        return Judgement(
            passed=False, evidence=(skip.group(0).strip(),), reason=f"{npu} testcase skipped: {skip.group(0).strip()}"
        )
    return None


def judge_vta(text: str, exit_status: int) -> Judgement:
    """VTA: fsim execution statistics with GEMM work, and a cat among the top-5 classes."""
    if (j := _common_failure("VTA", text, exit_status)) is not None:
        return j
    head = text.find("Execution statistics:")
    if head < 0:
        return Judgement(
            passed=False,
            reason="no 'Execution statistics:' from the VTA functional simulator: "
            "the network did not run on VTA (target not 'sim'?)",
        )
    stats = {m["key"]: int(m["val"]) for m in _VTA_STAT_RE.finditer(text, head)}
    gemm = stats.get("gemm_counter", 0)
    if gemm <= 0:
        return Judgement(
            passed=False,
            evidence=(f"gemm_counter : {gemm}",),
            reason="the VTA simulator counted no GEMM operations: the convolutions ran on the CPU",
        )
    top = [m["label"] for m in _VTA_TOP_RE.finditer(text, head)]
    if not top:
        return Judgement(passed=False, reason="no top-5 classification printed after the simulator statistics")
    evidence = (f"gemm_counter : {gemm}", f"#1: {top[0]}")
    if not any("cat" in label for label in top[:5]):
        return Judgement(
            passed=False,
            evidence=evidence,
            reason=f"no cat class among the top-5 ({', '.join(top[:5])}) for the cat test image",
        )
    return Judgement(
        passed=True, evidence=evidence, reason=f"ran on the VTA fsim ({gemm} GEMM ops per inference), top-1 '{top[0]}'"
    )


def judge_ethosu(text: str, exit_status: int, *, expected_label: str = ETHOSU_EXPECTED_LABEL) -> Judgement:
    """Ethos-U55 on the FVP: the NPU driver ran a command stream (or PMU cycles > 0), and the label."""
    if (j := _common_failure("Ethos-U55", text, exit_status)) is not None:
        return j
    invoke = _ETHOSU_INVOKE_RE.search(text)
    pmu = [int(m["n"]) for m in _ETHOSU_PMU_RE.finditer(text)]
    if invoke is None and not any(n > 0 for n in pmu):
        return Judgement(
            passed=False,
            reason="no Ethos-U command stream and no NPU cycles in the FVP output: "
            "the model ran on the Cortex-M55 alone",
        )
    npu_line = invoke.group(0).strip() if invoke is not None else f"NPU cycles {max(pmu)}"
    labels = [m["label"] for m in _ETHOSU_LABEL_RE.finditer(text)]
    if not labels:
        return Judgement(
            passed=False, evidence=(npu_line,), reason="the NPU ran but the application printed no classification"
        )
    if labels[-1] != expected_label:
        return Judgement(
            passed=False,
            evidence=(npu_line, labels[-1]),
            reason=f"classified as '{labels[-1]}', expected '{expected_label}'",
        )
    return Judgement(
        passed=True,
        evidence=(npu_line, labels[-1]),
        reason=f"the Ethos-U55 ran on the FVP ({npu_line}), classified as '{labels[-1]}'",
    )


def judge_gemmini(text: str, exit_status: int) -> Judgement:
    """Gemmini: Spike ran with the Gemmini extension, and its top-1 label matches the expected one."""
    if (j := _common_failure("Gemmini", text, exit_status)) is not None:
        return j
    tops = {m["which"]: [int(x) for x in m["labels"].split()] for m in _GEMMINI_TOP5_RE.finditer(text)}
    if "Real" not in tops:
        return Judgement(
            passed=False,
            reason="no Spike run in the log (no 'Real Top-5 output labels'): "
            "the model was compiled but not run on Gemmini",
        )
    spike = _SPIKE_GEMMINI_RE.search(text)
    if spike is None:
        return Judgement(
            passed=False,
            reason="the log does not show Spike run with --extension=gemmini: the result may come from a CPU-only run",
        )
    real, expected = tops["Real"], tops.get("Expected", [])
    evidence = (spike.group(0).strip(), f"real top-5 {real}", f"expected top-5 {expected}")
    if not real or not expected:
        return Judgement(passed=False, evidence=evidence, reason="the Spike run printed no labels to compare")
    if real[0] != expected[0]:
        return Judgement(
            passed=False,
            evidence=evidence,
            reason=f"Gemmini top-1 label {real[0]} differs from the expected {expected[0]}",
        )
    return Judgement(
        passed=True, evidence=evidence, reason=f"ran on Spike with Gemmini, top-1 label {real[0]} as expected"
    )


def judge_vta_random(text: str, exit_status: int) -> Judgement:
    """VTA on seeded random weights: GEMM and ALU work on the fsim, and agreement with the CPU."""
    if (j := _common_failure("VTA", text, exit_status)) is not None:
        return j
    doc = parse_vta_random(text)
    if doc is None:
        return Judgement(passed=False, reason="the VTA check printed no result line (ANT-KPI-VTA)")
    stats = doc.get("stats") or {}
    gemm, alu = int(stats.get("gemm_counter", 0)), int(stats.get("alu_counter", 0))
    diff, scale = float(doc.get("max_abs_diff", float("inf"))), float(doc.get("max_abs_ref", 0.0))
    top_cpu, top_vta = list(doc.get("top5_cpu") or []), list(doc.get("top5_vta") or [])
    evidence = (
        f"gemm_counter {gemm}, alu_counter {alu}",
        f"max |VTA - CPU| {diff:g} of max |CPU| {scale:g} ({doc.get('mismatches')} of {doc.get('elements')} differ, "
        f"relative L2 {float(doc.get('rel_l2', float('nan'))):.3g})",
        f"top-5 VTA {top_vta[:5]} CPU {top_cpu[:5]}",
    )
    if gemm <= 0 or alu <= 0:
        return Judgement(
            passed=False,
            evidence=evidence,
            reason=f"the VTA simulator counted {gemm} GEMM and {alu} ALU operations: the network did not run on VTA",
        )
    if not doc.get("ref_finite", False) or int(doc.get("ref_distinct_values", 0)) < VTA_RANDOM_MIN_DISTINCT:
        return Judgement(
            passed=False,
            evidence=evidence,
            reason=f"the CPU reference is degenerate ({doc.get('ref_distinct_values')} distinct values): "
            "agreement with it would prove nothing",
        )
    if not top_cpu or top_cpu[:1] != top_vta[:1] or diff > VTA_RANDOM_REL_TOLERANCE * scale:
        return Judgement(
            passed=False,
            evidence=evidence,
            reason=f"VTA disagrees with the CPU: max difference {diff:g} > {VTA_RANDOM_REL_TOLERANCE:g} × {scale:g} "
            f"or top-1 {top_vta[:1]} ≠ {top_cpu[:1]}",
        )
    return Judgement(
        passed=True,
        evidence=evidence,
        reason=f"ran on the VTA fsim ({gemm} GEMM, {alu} ALU ops) and agrees with the CPU on seeded random weights "
        f"(max difference {diff:g} ≤ {VTA_RANDOM_REL_TOLERANCE:g} × {scale:g}, same top-1)",
    )


def judge_gemmini_tutorial(text: str, exit_status: int) -> Judgement:
    """A Gemmini tutorial: Spike ran the program with the Gemmini extension, the generated code calls
    Gemmini, and under 1 % of the elements differ from the TFLite reference (counted here)."""
    run = parse_gemmini_run(text)
    if run.tutorial_error:
        return Judgement(
            passed=False, evidence=(run.tutorial_error,), reason=f"the tutorial stopped: {run.tutorial_error}"
        )
    if (j := _common_failure("Gemmini", text, exit_status)) is not None:
        return j
    if run.spike_exit is None:
        return Judgement(
            passed=False, reason="Spike never ran: the tutorial built no program or could not start the simulator"
        )
    if "--extension=gemmini" not in run.spike_argv:
        return Judgement(passed=False, reason=f"Spike ran without the Gemmini extension ({run.spike_argv})")
    if run.spike_exit != 0:
        return Judgement(
            passed=False, evidence=(run.spike_argv,), reason=f"the program exited {run.spike_exit} on Spike"
        )
    calls = run.gemmini_calls
    if not calls:
        return Judgement(
            passed=False,
            reason="the generated model code calls none of Gemmini's functions: it ran on the RISC-V core alone",
        )
    n = run.output_len
    if not run.program_verdict or not n:
        return Judgement(passed=False, reason="the program printed no comparison with its reference")
    errors = run.element_errors
    fraction = errors / n
    called = ", ".join(f"{k}×{v}" for k, v in sorted(calls.items()))
    evidence = (f"spike exit {run.spike_exit}: {run.spike_argv}", f"{errors} of {n} elements differ", called)
    said = f"; the program printed {run.program_verdict}!"
    if fraction >= GEMMINI_MAX_ERROR_FRACTION:
        return Judgement(
            passed=False,
            evidence=evidence,
            reason=f"{errors} of {n} elements differ from the TFLite reference "
            f"(≥ {GEMMINI_MAX_ERROR_FRACTION:.0%}){said}",
        )
    return Judgement(
        passed=True,
        evidence=evidence,
        reason=f"ran on Spike with Gemmini ({called}); {errors} of {n} elements differ from the TFLite reference{said}",
    )


def judge_ethosu_compile(text: str, exit_status: int) -> Judgement:
    """Ethos-U55 up to the FVP, evidence tier "compiled": tvmc (ethos-u,cmsis-nn,c) compiled the model,
    the generated C holds a non-empty command stream for every NPU function, tvmc's own offload report
    puts at least one operator on the Ethos-U, and that C compiled for the Cortex-M55."""
    facts = parse_ethosu_compile(text)
    if facts is None:
        last = _last_error(text)
        return Judgement(
            passed=False, reason=f"the compile script stopped (exit {exit_status})" + (f": {last}" if last else "")
        )
    if facts.get("tvmc_exit") != 0:
        usage = re.findall(r"^tvmc: error: .*$", text, re.MULTILINE)
        last = _last_error(text) or (usage[-1] if usage else "")
        return Judgement(
            passed=False, reason=f"tvmc compile exited {facts.get('tvmc_exit')}" + (f": {last}" if last else "")
        )
    streams = {k: int(v) for k, v in (facts.get("command_streams") or {}).items()}
    if not streams or not all(streams.values()):
        return Judgement(
            passed=False, reason="the generated C holds no Ethos-U command stream: nothing went to the NPU"
        )
    offloads = parse_offloads(text)
    if offloads is None:
        return Judgement(passed=False, reason="tvmc printed no report of what it offloaded (--dump-offloads)")
    if not offloads.operators("ethos-u"):
        return Judgement(passed=False, reason="tvmc's offload report shows nothing on the Ethos-U")
    m55 = facts.get("cortex_m55") or {}
    failed = m55.get("failed") or {}
    if failed or not m55.get("library_sha256"):
        first = next(iter(failed.items()), ("", "no source compiled"))
        return Judgement(
            passed=False,
            reason=f"the generated C did not compile for the Cortex-M55 ({len(failed)} of {m55.get('sources', 0)} "
            f"sources failed; {first[0]}: {first[1]})",
        )
    npu = offloads.composites["ethos-u"]
    evidence = (
        f"{len(npu)} operators (tvmc's composites) on the NPU, {offloads.relay_ops.get('ethos-u', 0)} of "
        f"{offloads.total} Relay operators: " + ", ".join(npu),
        f"command stream {sum(streams.values())} bytes in {len(streams)} NPU function(s)",
        f"libcodegen.a sha256 {m55['library_sha256']}",
    )
    return Judgement(
        passed=True,
        evidence=evidence,
        reason=f"compiled: {len(npu)} operators to the Ethos-U55 ({sum(streams.values())} bytes of command stream), "
        f"{offloads.operators('cmsis-nn')} to CMSIS-NN, {offloads.relay_ops.get('generic', 0)} Relay operators "
        "left in C; "
        f"the generated C built for the Cortex-M55 (libcodegen.a {str(m55['library_sha256'])[:12]}); compiled, not run",
    )


JUDGES: Final[dict[str, Callable[[str, int], Judgement]]] = {
    "VTA": judge_vta,
    "Ethos-U55": judge_ethosu,
    "Gemmini": judge_gemmini,
}


def judge_vela(summary: VelaSummary, *, exit_status: int, npu_custom_ops: int | None) -> Judgement:
    """The Vela smoke: compiled, at least one NPU operator, none left to the CPU, an Ethos-U op in the output."""
    if exit_status != 0 or summary.error:
        return Judgement(
            passed=False, reason=f"Vela exited {exit_status}" + (f": {summary.error}" if summary.error else "")
        )
    if not summary.compiled:
        return Judgement(passed=False, reason="Vela printed no network summary")
    ops = f"{summary.npu_ops} NPU / {summary.cpu_ops or 0} CPU operators"
    if not summary.npu_ops:
        return Judgement(passed=False, evidence=(ops,), reason=f"every operator fell back to the CPU ({ops})")
    # The smoke model holds only operators the Ethos-U55 supports: any fallback is a regression.
    if summary.cpu_ops:
        first = summary.unsupported[0] if summary.unsupported else None
        why = f"; first: {first.op} ({first.reason})" if first is not None else ""
        return Judgement(
            passed=False, evidence=(ops,), reason=f"{summary.cpu_ops} operator(s) fell back to the CPU{why}"
        )
    if npu_custom_ops is not None and npu_custom_ops < 1:
        return Judgement(passed=False, evidence=(ops,), reason="the compiled model holds no ethos-u operator")
    return Judgement(passed=True, evidence=(ops,), reason=f"all operators on the NPU ({ops})")


# Statements that do nothing when a module runs: its docstring (or any bare string), imports,
# `pass`, and definitions that nothing calls.
_INERT_NODES: Final = (ast.Import, ast.ImportFrom, ast.Pass, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def inert_testcase(source: str, name: str = "testcase") -> str:
    """Why a testcase script runs nothing ("" when it has an executable statement).

    The pinned fork's test_ethosu.py is one docstring (a tutorial): it exits 0 having run nothing,
    so its output must never be judged or counted."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return f"{name} is not valid Python (line {e.lineno}): it cannot run"
    body = [
        n
        for n in tree.body
        if not isinstance(n, _INERT_NODES)
        and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str))
    ]
    if body:
        return ""
    kinds = sorted({type(n).__name__ for n in tree.body}) or ["nothing"]
    return f"{name} has no executable statement (only {', '.join(kinds)}): it runs nothing"
