"""Verdicts of count KPIs (boards, NPUs): which listed entity has evidence of a pass, and the count."""

from __future__ import annotations

import json
import math
from typing import Any

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


def evidence_by_entity(kpi: Kpi, rows: pd.DataFrame) -> list[EntityEvidence]:
    """Per listed entity (then any other that was tried): what the KPI's rows show for it.

    A row counts only in measure mode with a fidelity the KPI accepts; others are shown as
    "not counted" with their fidelity, so an emulated pass is visible but never mistaken for one.
    """
    t = kpi.target
    listed = {_name_key(n): n for n in t.of}
    best: dict[str, EntityEvidence] = {}
    order = {"passed": 0, "failed": 1, "blocked": 2, "passed, not counted": 3, "failed, not counted": 4}
    for r in _records(rows):
        name = _entity(listed, r)
        counted = r["mode"] == "measure" and (not kpi.verdict_fidelity or r["fidelity"] in kpi.verdict_fidelity)
        passed = r["status"] == "ok" and float(r["value"]) >= 1.0
        if r["status"] == "blocked":
            result = "blocked"
        elif not counted:
            result = "passed, not counted" if passed else "failed, not counted"
        else:
            result = "passed" if passed else "failed"
        names = _identity_names(str(r["target_identity"]))
        ev = EntityEvidence(
            name=name,
            listed=name in t.of,
            result=result,
            fidelity=str(r["fidelity"]),
            where=names[0] if names else str(r["target"]),
            log=str(r["log"]),
            note=str(r["note"])[:200],
        )
        if name not in best or order[result] < order[best[name].result]:
            best[name] = ev
    out = [best.get(n, EntityEvidence(name=n, listed=True, result="no evidence")) for n in t.of]
    return out + [e for n, e in sorted(best.items()) if n not in t.of]


def _judge_count(kpi: Kpi, rows: pd.DataFrame, all_rows: pd.DataFrame) -> _Judged:
    t = kpi.target
    listed = {_name_key(n): n for n in t.of}

    def entity(r: dict[str, Any]) -> str:
        return _entity(listed, r)

    recs = _records(rows)
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


def _identity_names(text: str) -> list[str]:
    """What a target identity calls the thing measured: board, inventory name, then model."""
    try:
        data = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return []
    if not isinstance(data, dict):
        return []
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
