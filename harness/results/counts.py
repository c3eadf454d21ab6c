"""Verdicts of count KPIs (boards, NPUs): which listed entity has evidence of a pass, and the count."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any, Final

import pandas as pd

from harness.core.manifest import Kpi
from harness.results.judgement import EntityEvidence, Verdict, _Judged, _metric_unit, _name_key, _records
from harness.results.statistics import (
    summarize,
)


def _entity(listed: dict[str, str], r: dict[str, Any]) -> str:
    """The listed name (board model, NPU) a row is evidence for, else its target."""
    named = _identity_names(str(r["target_identity"]))
    for cand in (str(r["variant"]), str(r["target"]), *named):
        if cand and _name_key(cand) in listed:
            return listed[_name_key(cand)]
    return str(r["target"] or r["variant"])


NOT_COUNTED: Final = "not counted:"  # a row note that keeps a pass out of the count, with its reason
WITHOUT_CAMERA: Final = "passed without a camera"


def _model_key(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def model_matches(inventory: str, hardware: str) -> bool:
    """The model the board reports names the inventory's model (a revision suffix is allowed)."""
    inv, hw = _model_key(inventory), _model_key(hardware)
    return bool(inv and hw) and (hw.startswith(inv) or inv.startswith(hw))


def not_counted_reason(r: dict[str, Any]) -> str:
    """Why a row may not count even though it passed ("" when it may): the row says so itself (a
    test-pattern camera), or the board's reported model does not match the inventory."""
    note = str(r.get("note") or "")
    if NOT_COUNTED in note:
        return note.split(NOT_COUNTED, 1)[1].split(";", 1)[0].strip()
    if r.get("fidelity") == "board":
        try:
            ident = json.loads(str(r.get("target_identity") or "{}"))
        except json.JSONDecodeError:
            ident = {}
        if isinstance(ident, dict) and "hardware_model" in ident:
            inv, hw = str(ident.get("model") or ""), str(ident.get("hardware_model") or "")
            if not model_matches(inv, hw):
                got = f"'{hw}'" if hw else "no model"
                return f"the board reports {got}, the inventory says '{inv}'"
    return ""


# Evidence tiers a row's target identity may name, from least to most (KPI 7).
TIERS: Final = ("none", "compiled", "ran on simulator", "passed")


def furthest_tiers(kpi: Kpi, rows: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Per entity, the furthest evidence tier any ok row of the KPI reached, whatever its metric
    (a compile's row, a check that ran), with that row's check and log."""
    t = kpi.target
    listed = {_name_key(n): n for n in t.of}
    out: dict[str, dict[str, str]] = {}
    for r in _records(rows):
        tier = str(parse_identity(r["target_identity"]).get("tier") or "")
        if r["status"] != "ok" or tier not in TIERS or tier == "none":
            continue
        name = _entity(listed, r)
        if name not in out or TIERS.index(tier) > TIERS.index(out[name]["tier"]):
            ident = parse_identity(r["target_identity"])
            out[name] = {
                "tier": tier,
                "check": str(ident.get("check") or ""),
                "log": str(r["log"] or ""),
                "fidelity": str(r["fidelity"]),
                "metric": str(r["metric"]),
            }
    return out


def evidence_by_entity(kpi: Kpi, rows: pd.DataFrame, all_rows: pd.DataFrame | None = None) -> list[EntityEvidence]:
    """Per listed entity (then any other that was tried): what the KPI's rows show for it.

    A row counts only in measure mode with a fidelity the KPI accepts; others are shown as
    "not counted" with their fidelity, so an emulated pass is visible but never mistaken for one.
    With `all_rows` (every row of the KPI, any metric), an entity whose deciding row reached no
    evidence tier shows the furthest tier another of its rows reached (an NPU compiled, whose
    simulator run is blocked), with that row's check; it never changes the result or the count.
    """
    t = kpi.target
    listed = {_name_key(n): n for n in t.of}
    best: dict[str, EntityEvidence] = {}
    tally: dict[str, tuple[int, int]] = {}
    order = {
        "passed": 0,
        "failed": 1,
        "blocked": 2,
        WITHOUT_CAMERA: 3,
        "passed, not counted": 4,
        "failed, not counted": 5,
    }
    for r in _records(rows):
        name = _entity(listed, r)
        counted = r["mode"] == "measure" and (not kpi.verdict_fidelity or r["fidelity"] in kpi.verdict_fidelity)
        passed = r["status"] == "ok" and float(r["value"]) >= 1.0
        why_not = not_counted_reason(r)
        if r["status"] == "blocked":
            result = "blocked"
        elif passed and why_not.startswith(WITHOUT_CAMERA):
            result = WITHOUT_CAMERA
        elif not counted or why_not:
            result = "passed, not counted" if passed else "failed, not counted"
        else:
            result = "passed" if passed else "failed"
        names = _identity_names(str(r["target_identity"]))
        ident = parse_identity(r["target_identity"])
        ev = EntityEvidence(
            name=name,
            listed=name in t.of,
            result=result,
            fidelity=str(r["fidelity"]),
            # A simulator is where an NPU's check ran.
            where=names[0] if names else str(ident.get("simulator") or r["target"]),
            tier=str(ident.get("tier") or ""),
            check=str(ident.get("check") or ""),
            log=str(r["log"]),
            # The reason leads the note, once (a row's own "not counted: ..." already does).
            note=(f"{NOT_COUNTED} {why_not}; " if why_not and NOT_COUNTED not in str(r["note"]) else "")
            + str(r["note"])[:200],
        )
        if r["status"] == "ok":  # a blocked row is no run of the check
            tally[name] = (tally.get(name, (0, 0))[0] + 1, tally.get(name, (0, 0))[1] + int(passed))
        if name not in best or order[result] < order[best[name].result]:
            best[name] = ev
    # Every entry says how many runs of the check it had and how many passed (k of n), beside the best.
    best = {n: replace(e, runs=tally.get(n, (0, 0))[0], passes=tally.get(n, (0, 0))[1]) for n, e in best.items()}
    further = furthest_tiers(kpi, all_rows) if all_rows is not None else {}
    for n, e in best.items():
        got = further.get(n)
        if got and TIERS.index(got["tier"]) > (TIERS.index(e.tier) if e.tier in TIERS else 0):
            why = f"{got['check']} (a {got['metric']} row, {got['fidelity']} fidelity: not counted)"
            best[n] = replace(e, tier=got["tier"], check=why, log=e.log or got["log"])
    out = [best.get(n, EntityEvidence(name=n, listed=True, result="no evidence")) for n in t.of]
    return out + [e for n, e in sorted(best.items()) if n not in t.of]


def _judge_count(kpi: Kpi, rows: pd.DataFrame, all_rows: pd.DataFrame) -> _Judged:
    t = kpi.target
    listed = {_name_key(n): n for n in t.of}

    def entity(r: dict[str, Any]) -> str:
        return _entity(listed, r)

    recs = _records(rows)
    uncounted = sorted(
        {f"{entity(r)} ({why})" for r in recs if float(r["value"]) >= 1.0 and (why := not_counted_reason(r))}
    )
    recs = [r for r in recs if not not_counted_reason(r)]
    passed = sorted({entity(r) for r in recs if float(r["value"]) >= 1.0})
    tried = {entity(r) for r in _records(all_rows)}
    failed_listed = sorted({entity(r) for r in recs if float(r["value"]) < 1.0} - set(passed))
    count = len(passed)
    with_ev = tuple(n for n in t.of if n in passed)
    without = tuple(n for n in t.of if n not in passed)
    unlisted = [p for p in passed if p not in t.of]
    need = float(t.value if t.value is not None else math.inf)
    untested = [n for n in without if n not in failed_listed]
    detail = f"{count} passed with evidence"
    detail_ko = f"증거와 함께 통과 {count}개"
    if with_ev:
        detail += f": {', '.join(with_ev)}"
        detail_ko += f": {', '.join(with_ev)}"
    if unlisted:
        detail += f"; also passed (not listed): {', '.join(unlisted)}"
        detail_ko += f"; 목록 밖 통과: {', '.join(unlisted)}"
    if uncounted:
        detail += f"; passed but not counted: {', '.join(uncounted)}"
        detail_ko += f"; 통과했으나 세지 않음: {', '.join(uncounted)}"
    if failed_listed:
        detail += f"; failed: {', '.join(n for n in failed_listed)}"
        detail_ko += f"; 실패: {', '.join(n for n in failed_listed)}"
    if untested:
        detail += f"; no evidence: {', '.join(untested)}"
        detail_ko += f"; 증거 없음: {', '.join(untested)}"
        # Say which of them had rows at all: blocked or emulated runs are not evidence.
        seen = [n for n in untested if n in tried]
        if seen:
            detail += f" (blocked, failed or not usable: {', '.join(seen)})"
            detail_ko += f" (차단, 실패 또는 쓸 수 없음: {', '.join(seen)})"
    if count >= need:
        verdict = Verdict.PASS
    elif count + len(untested) < need:
        verdict = Verdict.FAIL  # even if every untested one passed, the target is out of reach
    else:
        verdict = Verdict.INCONCLUSIVE
    return _Judged(
        value=float(count),
        ci_low=float(count),
        ci_high=float(count),
        unit="count",
        verdict=verdict,
        reason=f"{detail}; target ≥ {need:g}",
        reason_ko=f"{detail_ko}; 목표 ≥ {need:g}",
        with_evidence=with_ev,
        without_evidence=without,
    )


def parse_identity(value: object) -> dict[str, Any]:
    """A row's target identity as a dict, from its JSON text (or a dict already); {} if it is none."""
    if isinstance(value, dict):
        return value
    try:
        data = json.loads(str(value)) if value else {}
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _identity_names(text: str) -> list[str]:
    """What a target identity calls the thing measured: board, inventory name, then model."""
    data = parse_identity(text)
    return [v for key in ("board", "name", "model") if isinstance(v := data.get(key), str) and v]


def _judge_report(kpi: Kpi, rows: pd.DataFrame, metric: str) -> _Judged:
    s = summarize(rows["value"].to_numpy(dtype=float))
    return _Judged(
        value=s.median,
        ci_low=s.ci_low,
        ci_high=s.ci_high,
        unit=_metric_unit(kpi, metric, rows),
        verdict=Verdict.NO_VERDICT,
        reason=f"no numeric target: median {metric} is reported",
        reason_ko=f"수치 목표 없음: {metric}의 중앙값을 보고함",
        interval=f"95 % CI of the median ({s.method})" if s.n >= 2 else "no interval (n=1)",
    )
