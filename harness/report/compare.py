"""Two runs side by side: per KPI, metric, variant, workload and target, the medians of A and B,
the change in %, and a two-sided Mann-Whitney U test of whether the samples differ.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
import scipy.stats
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.core.tables import print_table
from harness.results.store import Results

ALPHA: Final = 0.05
MIN_N: Final = 3  # below this per side the U test cannot reach p < 0.05 two-sided
# A cell never mixes fidelities or modes: an emulated smoke run and a board measurement of the
# same workload are different things, compared only with their own kind.
KEYS: Final = ("kpi", "metric", "variant", "workload", "target", "fidelity", "mode")

Finding = Literal["significant", "no significant change", "too few samples", "only in A", "only in B"]
Trend = Literal["better", "worse", "changed", ""]


@dataclass(frozen=True, kw_only=True)
class MetricChange:
    """One (kpi, metric, variant, workload, target, fidelity, mode) cell compared across two runs."""

    kpi: str
    metric: str
    variant: str
    workload: str
    target: str
    fidelity: str
    mode: str
    unit: str
    n_a: int
    n_b: int
    median_a: float
    median_b: float
    change_pct: float
    p_value: float
    finding: Finding
    trend: Trend

    def to_json(self) -> dict[str, Any]:
        """JSON-ready data (NaN → null)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def mann_whitney_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 when every value of both samples is the same."""
    if a.size == 0 or b.size == 0:
        return math.nan
    if np.unique(np.concatenate([a, b])).size == 1:
        return 1.0  # scipy returns NaN (with a warning) for all-tied samples; nothing differs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(scipy.stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def _ok_values(df: pd.DataFrame) -> pd.DataFrame:
    values = df["value"].to_numpy(dtype=float)
    return df[(df["status"] == "ok").to_numpy() & np.isfinite(values)]


def _trend(median_a: float, median_b: float, direction: str) -> Trend:
    if median_a == median_b or math.isnan(median_a) or math.isnan(median_b):
        return ""
    if direction not in ("lower", "higher"):
        return "changed"
    lower = median_b < median_a
    return "better" if lower == (direction == "lower") else "worse"


def compare_runs(
    a: Results, b: Results, *, directions: Mapping[tuple[str, str], str] | None = None, include_one_sided: bool = False
) -> list[MetricChange]:
    """Every cell with ok rows in both runs (and, if asked, those in one run only), sorted."""
    da, db = _ok_values(a.df), _ok_values(b.df)
    ga = {tuple(str(x) for x in k): g for k, g in da.groupby(list(KEYS), sort=True)}
    gb = {tuple(str(x) for x in k): g for k, g in db.groupby(list(KEYS), sort=True)}
    keys = sorted(set(ga) | set(gb)) if include_one_sided else sorted(set(ga) & set(gb))
    dirs = directions or {}
    out = []
    for key in keys:
        kpi, metric, variant, workload, target, fidelity, mode = key
        xa = ga[key]["value"].to_numpy(dtype=float) if key in ga else np.array([])
        xb = gb[key]["value"].to_numpy(dtype=float) if key in gb else np.array([])
        ma = float(np.median(xa)) if xa.size else math.nan
        mb = float(np.median(xb)) if xb.size else math.nan
        change = (mb / ma - 1.0) * 100.0 if xa.size and xb.size and ma != 0 else math.nan
        p = mann_whitney_p(xa, xb)
        finding: Finding
        if not xa.size:
            finding = "only in B"
        elif not xb.size:
            finding = "only in A"
        elif xa.size < MIN_N or xb.size < MIN_N:
            finding = "too few samples"
        elif p < ALPHA:
            finding = "significant"
        else:
            finding = "no significant change"
        units = sorted({str(u) for g in (ga.get(key), gb.get(key)) if g is not None for u in g["unit"]})
        out.append(
            MetricChange(
                kpi=kpi,
                metric=metric,
                variant=variant,
                workload=workload,
                target=target,
                fidelity=fidelity,
                mode=mode,
                unit=", ".join(units),
                n_a=int(xa.size),
                n_b=int(xb.size),
                median_a=ma,
                median_b=mb,
                change_pct=change,
                p_value=p,
                finding=finding,
                trend=_trend(ma, mb, dirs.get((kpi, metric), "")) if finding == "significant" else "",
            )
        )
    return out


_FINDING_STYLE: Final[dict[str, str]] = {
    "significant": "bold",
    "no significant change": "dim",
    "too few samples": "yellow",
    "only in A": "dim",
    "only in B": "dim",
}
_TREND_STYLE: Final[dict[str, str]] = {"better": "bold green", "worse": "bold red", "changed": "bold cyan"}


def _fmt_p(p: float) -> str:
    if math.isnan(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def render_table(changes: Sequence[MetricChange], console: Console, *, name_a: str, name_b: str) -> None:
    """The comparison as a rich table, significant changes coloured by whether they are better."""
    from harness.report.text import fmt_num

    t = Table(title=Text(f"{name_a} → {name_b}"), title_justify="left")
    for col, justify in (
        ("KPI", "left"),
        ("metric", "left"),
        ("variant", "left"),
        ("workload", "left"),
        ("target", "left"),
        ("fidelity", "left"),
        ("mode", "left"),
        ("n A", "right"),
        ("median A", "right"),
        ("n B", "right"),
        ("median B", "right"),
        ("unit", "left"),
        ("change", "right"),
        ("p (MWU)", "right"),
        ("finding", "left"),
    ):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for c in changes:
        change = "—" if math.isnan(c.change_pct) else f"{c.change_pct:+.2f} %"
        finding = Text(c.finding, style=_FINDING_STYLE.get(c.finding, ""))
        if c.trend:
            finding = Text(f"{c.finding}: {c.trend}", style=_TREND_STYLE[c.trend])
        t.add_row(
            Text(c.kpi),
            Text(c.metric),
            Text(c.variant),
            Text(c.workload or "—"),
            Text(c.target or "—"),
            Text(c.fidelity),
            Text(c.mode),
            str(c.n_a),
            fmt_num(c.median_a),
            str(c.n_b),
            fmt_num(c.median_b),
            Text(c.unit),
            Text(change, style=_TREND_STYLE.get(c.trend, "")),
            _fmt_p(c.p_value),
            finding,
        )
    print_table(console, t)
    n_sig = sum(c.finding == "significant" for c in changes)
    few = sum(c.finding == "too few samples" for c in changes)
    console.print(
        Text(
            f"{n_sig} significant change(s) (two-sided Mann-Whitney U, p < {ALPHA}, n ≥ {MIN_N} "
            f"per run); {few} cell(s) with too few samples to test"
        )
    )
