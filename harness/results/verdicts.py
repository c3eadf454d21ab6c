"""KPI verdicts from result rows: per-workload comparisons, counts, bounds and the PASS/FAIL rule.

A headline never pools fidelities; the statistics themselves (medians, intervals, comparisons)
are in results.statistics and know nothing of KPIs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from harness.core.manifest import Direction, Kpi
from harness.results.statistics import (
    FIDELITY_PREFERENCE,
    STATISTIC_UNITS,
    Comparison,
    Side,
    Summary,
    compare,
    good_threshold,
    side_of,
    summarize,
)
from harness.results.store import Results

# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------


class Verdict(str, Enum):
    """The outcome of one KPI; the string value is what reports and exit codes use."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    BLOCKED = "BLOCKED"
    NO_VERDICT = "NO_VERDICT"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, kw_only=True)
class WorkloadComparison:
    """Baseline vs candidate on one (target, workload, fidelity, mode) cell."""

    target: str
    workload: str
    fidelity: str
    mode: str
    metric: str
    statistic: str
    baseline: str
    candidate: str
    baseline_summary: Summary | None
    candidate_summary: Summary | None
    comparison: Comparison | None
    side: Side

    @property
    def label(self) -> str:
        parts = [self.workload or "(all)"]
        if self.target:
            parts.append(f"@{self.target}")
        return "".join(parts)


@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """One KPI judged against its target, with the numbers and the evidence behind it."""

    kpi: str
    number: int
    title_en: str
    title_ko: str
    target: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    unit: str
    fidelity: tuple[str, ...]
    verdict: Verdict
    reason: str
    evidence: tuple[str, ...]
    n: int
    blocked: int
    statistic: str = ""
    target_ko: str = ""  # the target and the reason in Korean, for the Korean report
    reason_ko: str = ""
    with_evidence: tuple[str, ...] = ()
    without_evidence: tuple[str, ...] = ()
    per_workload: tuple[WorkloadComparison, ...] = ()
    entities: tuple[EntityEvidence, ...] = ()  # count KPIs: each listed board / NPU and its evidence


def verdict_metric(kpi: Kpi) -> str:
    """The metric a KPI's value is computed from."""
    t = kpi.target
    if t.kind in ("at_most", "at_least") and t.metric:
        return t.metric
    if t.kind == "count_at_least":
        return "passed"
    if kpi.compare is not None:
        return kpi.compare.metric
    return kpi.metrics[0].name if kpi.metrics else ""


def _metric_unit(kpi: Kpi, metric: str, rows: pd.DataFrame) -> str:
    try:
        return kpi.metric(metric).unit
    except KeyError:
        units = sorted(set(rows["unit"].tolist()))
        return units[0] if units else ""


def _metric_direction(kpi: Kpi, metric: str) -> Direction:
    try:
        return kpi.metric(metric).direction
    except KeyError:
        return "lower"


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    values = df["value"].to_numpy(dtype=float)
    return df[(df["status"] == "ok").to_numpy() & np.isfinite(values)]


def _fidelity_rank(fidelity: str) -> int:
    if fidelity in FIDELITY_PREFERENCE:
        return FIDELITY_PREFERENCE.index(fidelity)
    return len(FIDELITY_PREFERENCE)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in rec.items()} for rec in df.to_dict("records")]


def _fidelities(df: pd.DataFrame) -> tuple[str, ...]:
    present = set(df["fidelity"].tolist())
    return tuple(f for f in FIDELITY_PREFERENCE if f in present)


def _evidence(df: pd.DataFrame) -> tuple[str, ...]:
    return tuple(sorted({str(x) for x in df["log"].tolist() if str(x)}))


def _cells(kpi: Kpi, ok_rows: pd.DataFrame) -> list[WorkloadComparison]:
    """Per-(target, workload, fidelity, mode) comparisons of the compare metric's ok rows."""
    cmp = kpi.compare
    if cmp is None:
        return []
    in_pair = ok_rows["variant"].isin([cmp.baseline, cmp.candidate])
    pick = (ok_rows["metric"] == cmp.metric) & in_pair
    df = ok_rows[pick]
    if df.empty:
        return []
    variants = {v.name for v in kpi.variants} | {cmp.baseline, cmp.candidate}
    # Where the workload *is* the variant (a model, a script per API), compare across workloads.
    wl = df["workload"].where(~df["workload"].isin(list(variants)), "")
    direction = _metric_direction(kpi, cmp.metric)
    cols = zip(df["target"], wl, df["fidelity"], df["mode"], strict=True)
    keys = sorted(
        {(str(t), str(w), str(f), str(m)) for t, w, f, m in cols},
        key=lambda k: (k[0], k[1], _fidelity_rank(k[2]), k[3]),
    )
    out = []
    for target, workload, fidelity, mode in keys:
        sel = df[
            (
                (df["target"] == target) & (wl == workload) & (df["fidelity"] == fidelity) & (df["mode"] == mode)
            ).to_numpy()
        ]
        b = sel[sel["variant"] == cmp.baseline]["value"].to_numpy(dtype=float)
        c = sel[sel["variant"] == cmp.candidate]["value"].to_numpy(dtype=float)
        comparison = compare(b, c, cmp.statistic, direction) if b.size and c.size else None
        out.append(
            WorkloadComparison(
                target=target,
                workload=workload,
                fidelity=fidelity,
                mode=mode,
                metric=cmp.metric,
                statistic=cmp.statistic,
                baseline=cmp.baseline,
                candidate=cmp.candidate,
                baseline_summary=summarize(b) if b.size else None,
                candidate_summary=summarize(c) if c.size else None,
                comparison=comparison,
                side=side_of(comparison) if comparison is not None else "incomplete",
            )
        )
    return out


def evaluate_per_workload(kpi: Kpi, results: Results) -> list[WorkloadComparison]:
    """The comparison of every (target, workload, fidelity, mode) cell of a KPI's ok rows."""
    return _cells(kpi, _ok(results.filter(kpi=kpi.id).df))


def _blocked_reason(kpi: Kpi, rows: pd.DataFrame, metric: str) -> tuple[str, str]:
    """Why there is no value, in English and Korean (the rows' own notes stay as they are)."""
    bad = rows[rows["status"] != "ok"]
    if rows.empty:
        return (
            f"no result rows for {kpi.id}: run `ant-kpi run {kpi.id}` (or ingest logs)",
            f"{kpi.id}의 결과 행이 없음: `ant-kpi run {kpi.id}`를 실행하거나 로그를 ingest하세요",
        )
    if bad.empty:
        return f"no ok rows of metric {metric!r}", f"지표 {metric!r}의 정상 행이 없음"
    lines = sorted(
        {
            f"{r['status']} {r['variant']}{'/' + str(r['workload']) if r['workload'] else ''}"
            f"{' on ' + str(r['target']) if r['target'] else ''}: {r['note'] or 'no note'}"
            for r in _records(bad)
        }
    )
    head = "; ".join(lines[:5])
    more = f"; and {len(lines) - 5} more" if len(lines) > 5 else ""
    more_ko = f"; 외 {len(lines) - 5}건" if len(lines) > 5 else ""
    return (
        f"{len(bad)} row(s) blocked or failed — {head}{more}",
        f"{len(bad)}개 행이 차단 또는 실패 — {head}{more_ko}",
    )


def _gate_reason(kpi: Kpi, ok: pd.DataFrame) -> tuple[str, str]:
    allowed = " or ".join(kpi.verdict_fidelity) or "an allowed fidelity"
    allowed_ko = " 또는 ".join(kpi.verdict_fidelity) or "허용된 측정 방식"
    measured = ok[ok["mode"] == "measure"]
    if measured.empty:
        fids = ", ".join(_fidelities(ok))
        return (
            f"smoke run ({fids}) proves the steps run; a verdict needs a measure run at {allowed} fidelity",
            f"스모크 실행({fids})은 단계가 동작함을 보일 뿐이며, "
            f"판정에는 {allowed_ko} 측정 방식의 측정 실행(measure)이 필요함",
        )
    fids = ", ".join(_fidelities(measured))
    return (
        f"{fids} fidelity proves the steps run; a verdict needs {allowed}",
        f"{fids} 측정 방식은 단계가 동작함을 보일 뿐이며, 판정에는 {allowed_ko} 방식이 필요함",
    )


def _display_rows(ok: pd.DataFrame, *, one_fidelity: bool) -> pd.DataFrame:
    """Rows to compute a shown-but-not-judged value from: measure runs first, best fidelity."""
    measured = ok[ok["mode"] == "measure"]
    rows = measured if not measured.empty else ok
    if not one_fidelity:
        return rows
    best = _fidelities(rows)
    return rows[rows["fidelity"] == best[0]] if best else rows


def _name_key(name: str) -> str:
    return "".join(ch for ch in name.casefold() if ch.isalnum())


@dataclass(frozen=True, kw_only=True)
class _Judged:
    value: float
    ci_low: float
    ci_high: float
    unit: str
    verdict: Verdict
    reason: str
    reason_ko: str
    statistic: str = ""
    with_evidence: tuple[str, ...] = ()
    without_evidence: tuple[str, ...] = ()
    cells: tuple[WorkloadComparison, ...] = ()


def _judge_comparison(kpi: Kpi, rows: pd.DataFrame, blocked_reason: tuple[str, str] | None) -> _Judged:
    cmp = kpi.compare
    assert cmp is not None
    unit = STATISTIC_UNITS[cmp.statistic]
    cells = tuple(_cells(kpi, rows))
    complete = [c for c in cells if c.comparison is not None]
    if not complete:
        if blocked_reason is not None:
            return _Judged(
                value=math.nan,
                ci_low=math.nan,
                ci_high=math.nan,
                unit=unit,
                verdict=Verdict.BLOCKED,
                reason=blocked_reason[0],
                reason_ko=blocked_reason[1],
                statistic=cmp.statistic,
                cells=cells,
            )
        return _Judged(
            value=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            unit=unit,
            verdict=Verdict.INCONCLUSIVE,
            statistic=cmp.statistic,
            cells=cells,
            reason=f"no workload has ok rows of both {cmp.baseline} and {cmp.candidate}",
            reason_ko=f"{cmp.baseline}와 {cmp.candidate}의 정상 행이 모두 있는 워크로드가 없음",
        )
    comps = [c.comparison for c in complete if c.comparison is not None]
    value = float(np.median([c.value for c in comps]))
    lo = float(min(c.ci_low for c in comps))
    hi = float(max(c.ci_high for c in comps))
    thr, sign = good_threshold(cmp.statistic, _metric_direction(kpi, cmp.metric))
    better = f"{'above' if sign > 0 else 'below'} {thr:g}"
    worse = f"{'at or below' if sign > 0 else 'at or above'} {thr:g}"
    better_ko = f"{thr:g} {'초과' if sign > 0 else '미만'}"
    worse_ko = f"{thr:g} {'이하' if sign > 0 else '이상'}"
    if kpi.target.kind != "better_than_baseline":
        return _Judged(
            value=value,
            ci_low=lo,
            ci_high=hi,
            unit=unit,
            verdict=Verdict.NO_VERDICT,
            statistic=cmp.statistic,
            cells=cells,
            reason=f"no numeric target: {cmp.statistic} of {cmp.candidate} vs "
            f"{cmp.baseline} is reported ({len(complete)} workload(s))",
            reason_ko=f"수치 목표 없음: {cmp.baseline} 대비 {cmp.candidate}의 {cmp.statistic}을 "
            f"보고함 (워크로드 {len(complete)}개)",
        )
    bad = [c.label for c in complete if c.side == "bad"]
    straddle = [c.label for c in complete if c.side == "straddles"]
    incomplete = [c.label for c in cells if c.comparison is None]
    if bad:
        verdict = Verdict.FAIL
        reason = f"95 % CI of {cmp.statistic} is wholly {worse} for: {', '.join(bad)}"
        reason_ko = f"{cmp.statistic}의 95 % 신뢰구간이 전부 {worse_ko}인 워크로드: {', '.join(bad)}"
    elif straddle or incomplete:
        parts, parts_ko = [], []
        if straddle:
            parts.append(f"95 % CI of {cmp.statistic} straddles {thr:g} for: {', '.join(straddle)}")
            parts_ko.append(f"{cmp.statistic}의 95 % 신뢰구간이 {thr:g}에 걸친 워크로드: {', '.join(straddle)}")
        if incomplete:
            parts.append(f"baseline or candidate rows missing for: {', '.join(incomplete)}")
            parts_ko.append(f"기준 또는 비교 대상 행이 없는 워크로드: {', '.join(incomplete)}")
        verdict, reason, reason_ko = Verdict.INCONCLUSIVE, "; ".join(parts), "; ".join(parts_ko)
    else:
        verdict = Verdict.PASS
        reason = f"95 % CI of {cmp.statistic} is {better} on every workload ({len(complete)} of {len(cells)})"
        reason_ko = (
            f"모든 워크로드에서 {cmp.statistic}의 95 % 신뢰구간이 {better_ko} ({len(cells)}개 중 {len(complete)}개)"
        )
    return _Judged(
        value=value,
        ci_low=lo,
        ci_high=hi,
        unit=unit,
        verdict=verdict,
        reason=reason,
        reason_ko=reason_ko,
        statistic=cmp.statistic,
        cells=cells,
    )


def _judge_bound(kpi: Kpi, rows: pd.DataFrame, metric: str) -> _Judged:
    t = kpi.target
    s = summarize(rows["value"].to_numpy(dtype=float))
    unit = t.unit or _metric_unit(kpi, metric, rows)
    v = float(t.value if t.value is not None else math.nan)
    ci = f"95 % CI [{s.ci_low:g}, {s.ci_high:g}] {unit}".rstrip()
    ci_ko = f"95 % 신뢰구간 [{s.ci_low:g}, {s.ci_high:g}] {unit}".rstrip()
    if t.kind == "at_most":
        ok_all, ok_none, rel = s.ci_high <= v, s.ci_low > v, "≤"
    else:
        ok_all, ok_none, rel = s.ci_low >= v, s.ci_high < v, "≥"
    if ok_all:
        verdict, reason, reason_ko = Verdict.PASS, f"{ci} is wholly {rel} {v:g}", f"{ci_ko}이 전부 {rel} {v:g}"
    elif ok_none:
        verdict, reason = Verdict.FAIL, f"{ci} is wholly outside {rel} {v:g}"
        reason_ko = f"{ci_ko}이 전부 {rel} {v:g} 범위 밖"
    else:
        verdict, reason, reason_ko = Verdict.INCONCLUSIVE, f"{ci} straddles {v:g}", f"{ci_ko}이 {v:g}에 걸침"
    if s.note:
        reason += f" ({s.note})"
        reason_ko += f" ({s.note})"
    return _Judged(
        value=s.median,
        ci_low=s.ci_low,
        ci_high=s.ci_high,
        unit=unit,
        verdict=verdict,
        reason=reason,
        reason_ko=reason_ko,
    )


def _entity(listed: dict[str, str], r: dict[str, Any]) -> str:
    """The listed name (board model, NPU) a row is evidence for, else its target."""
    named = _identity_names(str(r["target_identity"]))
    for cand in (str(r["variant"]), str(r["target"]), *named):
        if cand and _name_key(cand) in listed:
            return listed[_name_key(cand)]
    return str(r["target"] or r["variant"])


@dataclass(frozen=True, kw_only=True)
class EntityEvidence:
    """One listed board or NPU of a count KPI, and the row that speaks for it (if any)."""

    name: str
    listed: bool
    result: str  # passed | failed | blocked | passed, not counted | failed, not counted | no evidence
    fidelity: str = ""
    where: str = ""  # the board (inventory name) or target the row came from
    log: str = ""
    note: str = ""


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
    )


def evaluate(kpi: Kpi, results: Results) -> Evaluation:
    """Judge one KPI from its rows: PASS, FAIL, INCONCLUSIVE, BLOCKED or NO_VERDICT, with reason."""
    rows = results.filter(kpi=kpi.id).df
    metric = verdict_metric(kpi)
    kind = kpi.target.kind
    use_compare = kpi.compare is not None and kind in ("better_than_baseline", "report")
    mrows = rows[rows["metric"] == metric]
    ok = _ok(mrows)
    n_bad = int((rows["status"] != "ok").sum())
    base: dict[str, Any] = {
        "kpi": kpi.id,
        "number": kpi.number,
        "title_en": kpi.title_en,
        "title_ko": kpi.title_ko,
        "target": kpi.target.describe(kpi.compare),
        "target_ko": kpi.target.describe(kpi.compare, "ko"),
        "metric": metric,
        "blocked": n_bad,
        "evidence": _evidence(rows),
    }
    if kind == "count_at_least":
        base["entities"] = tuple(evidence_by_entity(kpi, mrows))
    has_bad = bool((mrows["status"] != "ok").any())
    blocked_reason = _blocked_reason(kpi, mrows if has_bad else rows, metric)  # (English, Korean)
    statistic = kpi.compare.statistic if use_compare and kpi.compare is not None else ""
    if statistic:
        default_unit = STATISTIC_UNITS[statistic]
    elif kind == "count_at_least":
        default_unit = "count"
    else:
        default_unit = _metric_unit(kpi, metric, mrows)
    if ok.empty:
        return Evaluation(
            value=math.nan,
            ci_low=math.nan,
            ci_high=math.nan,
            unit=default_unit,
            fidelity=_fidelities(mrows),
            verdict=Verdict.BLOCKED,
            reason=blocked_reason[0],
            reason_ko=blocked_reason[1],
            n=0,
            statistic=statistic,
            **base,
        )
    allowed = ok["fidelity"].isin(list(kpi.verdict_fidelity))
    eligible = ok[((ok["mode"] == "measure") & allowed).to_numpy()]
    gated = eligible.empty
    shown = _display_rows(ok, one_fidelity=kind != "count_at_least") if gated else eligible

    if use_compare:
        judged = _judge_comparison(kpi, shown, blocked_reason if has_bad else None)
        if gated:
            # Nothing decides the KPI, so show every target's comparison, each with its fidelity
            # (the emulated ARM runs beside the host reference), not only the best fidelity's.
            judged = replace(judged, cells=tuple(_cells(kpi, ok)))
    elif kind in ("at_most", "at_least"):
        # The bound is on one metric; a comparison (KPI 3's speed-up) is shown beside it, each
        # cell labelled with its own fidelity.
        judged = replace(_judge_bound(kpi, shown, metric), cells=tuple(_cells(kpi, _ok(rows))))
    elif kind == "count_at_least":
        judged = _judge_count(kpi, shown, mrows)
    else:
        judged = _judge_report(kpi, shown, metric)

    verdict, reason, reason_ko = judged.verdict, judged.reason, judged.reason_ko
    if gated and verdict != Verdict.BLOCKED:
        # The value is still shown, but emulated or smoke numbers never decide a KPI.
        verdict = Verdict.NO_VERDICT
        gate, gate_ko = _gate_reason(kpi, ok)
        reason = f"{gate} (for information: {judged.reason})"
        reason_ko = f"{gate_ko} (참고: {judged.reason_ko})"
    elif not gated and len(eligible) < len(ok):
        unused = len(ok) - len(eligible)
        reason += f" ({unused} smoke or non-verdict-fidelity row(s) not used)"
        reason_ko += f" (스모크이거나 판정에 쓰지 않는 측정 방식의 행 {unused}개는 쓰지 않음)"
    return Evaluation(
        value=judged.value,
        ci_low=judged.ci_low,
        ci_high=judged.ci_high,
        unit=judged.unit,
        fidelity=_fidelities(shown),
        verdict=verdict,
        reason=reason,
        reason_ko=reason_ko,
        n=len(shown),
        statistic=judged.statistic,
        with_evidence=judged.with_evidence,
        without_evidence=judged.without_evidence,
        per_workload=judged.cells,
        **base,
    )


def evaluate_all(kpis: Sequence[Kpi], results: Results) -> list[Evaluation]:
    """evaluate() for each KPI, in the given order."""
    return [evaluate(k, results) for k in kpis]
