"""What a verdict is made of: the verdict, the per-workload comparison, the evaluation, and helpers
that read the rows of one KPI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from harness.core.manifest import Direction, Kpi
from harness.results.statistics import (
    FIDELITY_PREFERENCE,
    Comparison,
    Side,
    Summary,
)

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
    unit: str = ""  # the compared metric's unit (the medians' unit)

    @property
    def label(self) -> str:
        parts = [self.workload or "(all)"]
        if self.target:
            parts.append(f"@{self.target}")
        return "".join(parts)


@dataclass(frozen=True, kw_only=True)
class TierValue:
    """A comparison KPI's figure at one (fidelity, mode): its cells only, never pooled with another."""

    fidelity: str
    mode: str
    metric: str  # the metric compared at this fidelity (KPI 1 emulated: guest_pss)
    statistic: str
    value: float
    low: float
    high: float
    interval: str  # what [low, high] is: a named CI, a range, or "" / "no interval ..."
    cells: int
    min_n: int  # the smallest n on any side of any cell


@dataclass(frozen=True, kw_only=True)
class Beside:
    """A variant measured in the run outside the compared pair (KPI 4's harness-converted model):
    shown on its own, never pooled with the baseline or the candidate, never part of the verdict."""

    variant: str
    label: str
    metric: str
    target: str
    fidelity: str
    mode: str
    n: int
    median: float
    unit: str


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
    runs: int = 0  # how many rows (runs of the check) speak for it
    passes: int = 0  # how many of them passed the check
    tier: str = ""  # how far the check got: compiled | ran on simulator | passed (NPUs), "" when not said
    check: str = ""  # which check decided it (NPUs: the testcase's own, agreement with the CPU, ...)


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
    metric_unit: str = ""  # the unit of `metric` itself (a comparison's value is in the statistic's unit)
    beside: tuple[Beside, ...] = ()  # variants outside the compared pair, each on its own
    notes: tuple[str, ...] = ()  # how the judged rows were obtained (a bound KPI: measured or given)
    interval: str = ""  # what [ci_low, ci_high] is: a named 95 % CI, a range, or "" (none)
    tiers: tuple[TierValue, ...] = ()  # comparison KPIs: the figure per (fidelity, mode), each apart


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


def _display_rows(ok: pd.DataFrame, *, one_fidelity: bool) -> pd.DataFrame:
    """Rows to compute a shown-but-not-judged value from: measure runs first, best fidelity."""
    measured = ok[ok["mode"] == "measure"]
    rows = measured if not measured.empty else ok
    if not one_fidelity:
        return rows
    best = _fidelities(rows)
    return rows[rows["fidelity"] == best[0]] if best else rows


def row_label(r: Mapping[str, Any]) -> str:
    """`variant/workload on target` of a row record, leaving out what is empty or repeats the variant."""
    variant, workload, target = (str(r.get(k) or "") for k in ("variant", "workload", "target"))
    if variant == "-":  # rows of steps without a variant, as older versions wrote them
        variant = ""
    name = variant + (f"/{workload}" if workload and workload != variant else "")
    return name + (f" on {target}" if target else "")


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
    interval: str = ""
