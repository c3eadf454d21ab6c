"""KPI verdicts from result rows: per-workload comparisons, counts, bounds and the PASS/FAIL rule.

A headline never pools fidelities; the statistics themselves (medians, intervals, comparisons)
are in results.statistics and know nothing of KPIs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from harness.core.manifest import Kpi
from harness.results.comparisons import (
    _blocked_reason,
    _cells,
    _gate_reason,
    _judge_bound,
    _judge_comparison,
    beside_variants,
    compared_rows,
    require_comparison,
    tier_values,
)
from harness.results.counts import _judge_count, _judge_report, evidence_by_entity
from harness.results.judgement import (
    Evaluation,
    Verdict,
    _display_rows,
    _evidence,
    _fidelities,
    _metric_unit,
    _ok,
    verdict_metric,
)
from harness.results.statistics import (
    STATISTIC_UNITS,
)
from harness.results.store import Results


def evaluate(kpi: Kpi, results: Results) -> Evaluation:
    """Judge one KPI from its rows: PASS, FAIL, INCONCLUSIVE, BLOCKED or NO_VERDICT, with reason."""
    rows = results.filter(kpi=kpi.id).df
    metric = verdict_metric(kpi)
    kind = kpi.target.kind
    use_compare = kpi.compare is not None and kind in ("better_than_baseline", "report")
    # A comparison judges the metric each fidelity compares (KPI 1 emulated: guest-only PSS).
    mrows = compared_rows(kpi.compare, rows) if use_compare and kpi.compare else rows[rows["metric"] == metric]
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
        "metric_unit": _metric_unit(kpi, metric, mrows),
        # Variants outside the compared pair (KPI 4's own conversion) are shown even when blocked.
        "beside": tuple(beside_variants(kpi, _ok(rows))),
    }
    if kind == "count_at_least":
        base["entities"] = tuple(evidence_by_entity(kpi, mrows, rows))
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
    other_tiers: tuple[str, ...] = ()
    if kind != "count_at_least" and not eligible.empty:
        # One fidelity decides: the highest present (board > simulator > host > ...); rows of the
        # other allowed fidelities are shown in their own rows, never pooled into the value.
        tiers = _fidelities(eligible)
        other_tiers = tiers[1:]
        eligible = eligible[(eligible["fidelity"] == tiers[0]).to_numpy()]
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
        # cell labelled with its own fidelity, and a PASS may need it (compare.required_at).
        judged = replace(_judge_bound(kpi, shown, metric), cells=tuple(_cells(kpi, _ok(rows))))
        judged = require_comparison(kpi, judged, _ok(rows), rows, gated=gated)
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
        reason += f" ({unused} smoke or other-fidelity row(s) not used"
        reason_ko += f" (스모크이거나 다른 측정 방식의 행 {unused}개는 쓰지 않음"
        if other_tiers:
            reason += f"; {', '.join(other_tiers)} shown apart, not pooled"
            reason_ko += f"; {', '.join(other_tiers)}는 따로 표시하며 합치지 않음"
        reason += ")"
        reason_ko += ")"
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
        notes=_row_notes(shown) if kind in ("at_most", "at_least") else (),
        interval=judged.interval,
        tiers=tier_values(_cells(kpi, ok)) if use_compare else (),
        **base,
    )


def _row_notes(rows: pd.DataFrame, limit: int = 3) -> tuple[str, ...]:
    """How the judged rows were obtained (their notes), each once: an override shows here."""
    notes = [" ".join(str(n).split()) for n in rows["note"].tolist() if str(n).strip()]
    return tuple(dict.fromkeys(notes))[:limit]


def evaluate_all(kpis: Sequence[Kpi], results: Results) -> list[Evaluation]:
    """evaluate() for each KPI, in the given order."""
    return [evaluate(k, results) for k in kpis]
