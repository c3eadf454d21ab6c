"""Verdicts of comparison and bound KPIs: baseline vs candidate per workload, or one metric against a limit."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Final

import numpy as np
import pandas as pd

from harness.core.manifest import Compare, Kpi
from harness.results.judgement import (
    Beside,
    TierValue,
    Verdict,
    WorkloadComparison,
    _fidelities,
    _fidelity_rank,
    _Judged,
    _metric_direction,
    _metric_unit,
    _ok,
    _records,
    row_label,
)
from harness.results.statistics import (
    STATISTIC_UNITS,
    bootstrap_median,
    compare,
    good_threshold,
    side_of,
    summarize,
)
from harness.results.store import Results


def compared_rows(cmp: Compare, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of the metric each fidelity compares (`compare.metric_at`: KPI 1's emulated rows
    compare guest-only PSS); other metrics stay in the measurements table, for information."""
    wanted = rows["fidelity"].map(lambda f: cmp.metric_at(str(f)))
    return rows[(rows["metric"] == wanted).to_numpy()]


def _cells(kpi: Kpi, ok_rows: pd.DataFrame) -> list[WorkloadComparison]:
    """Per-(target, workload, fidelity, mode) comparisons of the compare metric's ok rows."""
    cmp = kpi.compare
    if cmp is None:
        return []
    mine = compared_rows(cmp, ok_rows)
    df = mine[mine["variant"].isin([cmp.baseline, cmp.candidate]).to_numpy()]
    if df.empty:
        return []
    variants = {v.name for v in kpi.variants} | {cmp.baseline, cmp.candidate}
    # Where the workload *is* the variant (a model, a script per API), compare across workloads.
    wl = df["workload"].where(~df["workload"].isin(list(variants)), "")
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
        metric = cmp.metric_at(fidelity)
        direction = _metric_direction(kpi, metric)
        b = sel[sel["variant"] == cmp.baseline]["value"].to_numpy(dtype=float)
        c = sel[sel["variant"] == cmp.candidate]["value"].to_numpy(dtype=float)
        comparison = compare(b, c, cmp.statistic, direction) if b.size and c.size else None
        out.append(
            WorkloadComparison(
                target=target,
                workload=workload,
                fidelity=fidelity,
                mode=mode,
                metric=metric,
                statistic=cmp.statistic,
                baseline=cmp.baseline,
                candidate=cmp.candidate,
                baseline_summary=summarize(b) if b.size else None,
                candidate_summary=summarize(c) if c.size else None,
                comparison=comparison,
                side=side_of(comparison, exact=fidelity == "static") if comparison is not None else "incomplete",
                unit=_metric_unit(kpi, metric, sel),
            )
        )
    return out


# Below this many workload cells the KPI-level figure is the range of their values, not a CI.
MIN_BOOTSTRAP_CELLS: Final = 5


def kpi_interval(cells: Sequence[WorkloadComparison]) -> tuple[float, float, float, str]:
    """(value, low, high, what the interval is) of one fidelity's complete cells.

    The value is the median of the per-cell statistics. The interval is a real one only where an
    estimator gives it: one cell's own percentile bootstrap (both sides n >= 2), or a percentile
    bootstrap of the median over cells when there are at least MIN_BOOTSTRAP_CELLS; with 2 to 4
    cells it is the range of their values, and says so; from one cell with n=1 there is none."""
    comps = [c.comparison for c in cells if c.comparison is not None]
    if not comps:
        return math.nan, math.nan, math.nan, ""
    values = np.array([c.value for c in comps], dtype=float)
    value = float(np.median(values))
    if all(c.fidelity == "static" for c in cells):
        # Read from the artefacts, not sampled: the values are exact and no interval applies.
        lo, hi = float(values.min()), float(values.max())
        what = "exact: static values, read not sampled" if len(comps) == 1 else f"range of {len(comps)} exact values"
        return value, lo, hi, what
    if len(comps) == 1:
        c = comps[0]
        if c.has_interval:
            return value, c.ci_low, c.ci_high, "95 % CI: percentile bootstrap of the two medians (one workload)"
        return value, math.nan, math.nan, f"no interval (n={min(c.n_baseline, c.n_candidate)} on a side)"
    if len(comps) >= MIN_BOOTSTRAP_CELLS and float(values.min()) != float(values.max()):
        lo, hi = bootstrap_median(values)
        return value, lo, hi, f"95 % CI: percentile bootstrap of the median over {len(comps)} workloads"
    return value, float(values.min()), float(values.max()), f"range of {len(comps)} per-workload values, not a CI"


def tier_values(cells: Sequence[WorkloadComparison]) -> tuple[TierValue, ...]:
    """One KPI-level figure per (fidelity, mode) of the cells, never pooled across them."""
    out = []
    keys = sorted({(c.fidelity, c.mode) for c in cells}, key=lambda k: (_fidelity_rank(k[0]), k[1] != "measure"))
    for fidelity, mode in keys:
        group = [c for c in cells if (c.fidelity, c.mode) == (fidelity, mode) and c.comparison is not None]
        if not group:
            continue
        value, lo, hi, what = kpi_interval(group)
        out.append(
            TierValue(
                fidelity=fidelity,
                mode=mode,
                metric=group[0].metric,
                statistic=group[0].statistic,
                value=value,
                low=lo,
                high=hi,
                interval=what,
                cells=len(group),
                min_n=min(min(c.comparison.n_baseline, c.comparison.n_candidate) for c in group if c.comparison),
            )
        )
    return tuple(out)


def beside_variants(kpi: Kpi, ok_rows: pd.DataFrame) -> list[Beside]:
    """The compare metric's ok rows of variants other than the baseline and the candidate, one entry
    per (variant, target, fidelity, mode): shown beside the comparison, never pooled into it."""
    cmp = kpi.compare
    if cmp is None:
        return []
    df = ok_rows[(ok_rows["metric"] == cmp.metric) & ~ok_rows["variant"].isin([cmp.baseline, cmp.candidate])]
    labels = {v.name: v.label for v in kpi.variants}
    out = []
    for (variant, target, fidelity, mode), g in df.groupby(["variant", "target", "fidelity", "mode"], sort=True):
        values = g["value"].to_numpy(dtype=float)
        out.append(
            Beside(
                variant=str(variant),
                label=labels.get(str(variant), ""),
                metric=cmp.metric,
                target=str(target),
                fidelity=str(fidelity),
                mode=str(mode),
                n=int(values.size),
                median=float(np.median(values)),
                unit=_metric_unit(kpi, cmp.metric, g),
            )
        )
    return out


def require_comparison(
    kpi: Kpi, judged: _Judged, ok_rows: pd.DataFrame, all_rows: pd.DataFrame, *, gated: bool = False
) -> _Judged:
    """A bound's PASS also needs the comparison's rows at `compare.required_at` (KPI 3: board timings of
    both models, in a measure run); the comparison found there is named beside the bound. When
    nothing may decide the KPI (`gated`: a smoke run) only the reason says what is missing."""
    cmp = kpi.compare
    if cmp is None or not cmp.required_at or judged.verdict != Verdict.PASS:
        return judged
    where = "/".join(cmp.required_at)
    pick = (ok_rows["metric"] == cmp.metric) & ok_rows["fidelity"].isin(list(cmp.required_at))
    at = ok_rows[(pick & (ok_rows["mode"] == "measure")).to_numpy()]
    missing = [v for v in (cmp.baseline, cmp.candidate) if v not in set(at["variant"].tolist())]
    if not missing:
        done = [c for c in _cells(kpi, at) if c.comparison is not None]
        shown = "; ".join(
            f"{c.comparison.value:.3g} {STATISTIC_UNITS[cmp.statistic]} on {c.target}" for c in done if c.comparison
        )
        return replace(
            judged,
            reason=f"{judged.reason}; {cmp.statistic} at {where}: {shown or '—'}",
            reason_ko=f"{judged.reason_ko}; {where} {cmp.statistic}: {shown or '—'}",
        )
    bad = all_rows[(all_rows["metric"] == cmp.metric) & (all_rows["status"] != "ok")]
    verdict = judged.verdict if gated else Verdict.BLOCKED if not bad.empty else Verdict.INCONCLUSIVE
    lacking = ", ".join(missing)
    return replace(
        judged,
        verdict=verdict,
        reason=f"{judged.reason}, but a PASS also needs {where} {cmp.metric} of both {cmp.baseline} and "
        f"{cmp.candidate} in a measure run: none for {lacking}",
        reason_ko=f"{judged.reason_ko}, 그러나 통과에는 측정 실행에서 {cmp.baseline}와 {cmp.candidate} 모두의 "
        f"{where} {cmp.metric}가 필요함: {lacking} 없음",
    )


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
    # One entry per reason: the rows a reason blocks are named together, the reason once.
    groups: dict[tuple[str, str], list[str]] = {}
    for r in _records(bad):
        labels = groups.setdefault((str(r["status"]), str(r["note"] or "no note")), [])
        label = row_label(r)
        if label and label not in labels:
            labels.append(label)
    lines = sorted(
        f"{status}{' ' + ', '.join(sorted(labels)) if labels else ''}: {note}"
        for (status, note), labels in groups.items()
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
    value, lo, hi, interval = kpi_interval(complete)
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
            interval=interval,
            reason=f"no numeric target: {cmp.statistic} of {cmp.candidate} vs "
            f"{cmp.baseline} is reported ({len(complete)} workload(s))",
            reason_ko=f"수치 목표 없음: {cmp.baseline} 대비 {cmp.candidate}의 {cmp.statistic}을 "
            f"보고함 (워크로드 {len(complete)}개)",
        )
    bad = [c.label for c in complete if c.side == "bad"]
    straddle = [c.label for c in complete if c.side == "straddles"]
    single = [c.label for c in complete if c.side == "no interval"]
    incomplete = [c.label for c in cells if c.comparison is None]
    if bad:
        verdict = Verdict.FAIL
        reason = f"95 % CI of {cmp.statistic} is wholly {worse} for: {', '.join(bad)}"
        reason_ko = f"{cmp.statistic}의 95 % 신뢰구간이 전부 {worse_ko}인 워크로드: {', '.join(bad)}"
    elif straddle or incomplete or single:
        parts, parts_ko = [], []
        if single:
            parts.append(f"fewer than two samples per side, so no interval, for: {', '.join(single)}")
            parts_ko.append(f"한쪽 표본이 2개 미만이라 구간이 없는 워크로드: {', '.join(single)}")
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
        interval=interval,
    )


def _judge_bound(kpi: Kpi, rows: pd.DataFrame, metric: str) -> _Judged:
    t = kpi.target
    s = summarize(rows["value"].to_numpy(dtype=float))
    unit = t.unit or _metric_unit(kpi, metric, rows)
    v = float(t.value if t.value is not None else math.nan)
    if s.n < 2:
        # One value has no interval: the bound is judged on the value itself, and the reason says so.
        lo = hi = s.median
        ci = f"the single value {s.median:g} {unit} (n=1, no interval)".rstrip()
        ci_ko = f"단일 값 {s.median:g} {unit} (n=1, 구간 없음)".rstrip()
        interval = ""
    else:
        lo, hi = s.ci_low, s.ci_high
        ci = f"95 % CI [{lo:g}, {hi:g}] {unit}".rstrip()
        ci_ko = f"95 % 신뢰구간 [{lo:g}, {hi:g}] {unit}".rstrip()
        interval = f"95 % CI of the median ({s.method})"
    if t.kind == "at_most":
        ok_all, ok_none, rel = hi <= v, lo > v, "≤"
    else:
        ok_all, ok_none, rel = lo >= v, hi < v, "≥"
    if ok_all:
        verdict, reason, reason_ko = Verdict.PASS, f"{ci} is wholly {rel} {v:g}", f"{ci_ko}이 전부 {rel} {v:g}"
    elif ok_none:
        verdict, reason = Verdict.FAIL, f"{ci} is wholly outside {rel} {v:g}"
        reason_ko = f"{ci_ko}이 전부 {rel} {v:g} 범위 밖"
    else:
        verdict, reason, reason_ko = Verdict.INCONCLUSIVE, f"{ci} straddles {v:g}", f"{ci_ko}이 {v:g}에 걸침"
    if s.note and s.n >= 2:
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
        interval=interval,
    )
