"""Statistics, pure: medians with 95 % CIs and A/B comparisons of two samples (no KPIs, no rows).

CIs for a median are distribution-free order statistics when n >= 6 (the smallest n whose
extreme order statistics already cover 95 %); below that, a percentile bootstrap with a fixed
seed so that a report rendered twice shows the same numbers.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import scipy.stats

from harness.core.manifest import Direction, Statistic

if TYPE_CHECKING:
    pass

CONFIDENCE: Final = 0.95
BOOTSTRAP_SEED: Final = 20_240_517
BOOTSTRAP_RESAMPLES: Final = 9_999
MIN_ORDER_STATISTIC_N: Final = 6
STATISTICS: Final[tuple[str, ...]] = ("reduction_pct", "overhead_pct", "speedup")
STATISTIC_UNITS: Final[dict[str, str]] = {"reduction_pct": "%", "overhead_pct": "%", "speedup": "x"}
# When no row may carry a verdict, the value shown comes from the most trustworthy fidelity present.
FIDELITY_PREFERENCE: Final = ("board", "simulator", "host", "static", "emulated")

# scipy 1.15 renamed bootstrap's random_state to rng; both take a Generator.
_RNG_KW: Final = "rng" if "rng" in inspect.signature(scipy.stats.bootstrap).parameters else "random_state"

# "no interval": fewer than two samples on a side, so no CI exists and no side can be told.
Side = Literal["good", "bad", "straddles", "incomplete", "no interval"]
MIN_CI_N: Final = 2  # no interval from fewer samples than this per side


# --------------------------------------------------------------------------------------------
# One sample: median and its CI
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Summary:
    """Median with a 95 % CI, and the usual spread figures, of one sample."""

    n: int
    median: float
    ci_low: float
    ci_high: float
    mean: float
    stdev: float
    min: float
    max: float
    ci_exact: bool
    method: str
    note: str = ""


def order_statistic_ci_indices(n: int, confidence: float = CONFIDENCE) -> tuple[int, int] | None:
    """0-based sorted-sample indices (lo, hi) of the median's CI; None when n is too small."""
    if n < 1:
        return None
    best = None
    # Coverage of [x_(k), x_(n-k+1)] is P(k <= B <= n-k) for B ~ Binomial(n, 1/2).
    for k in range(1, n // 2 + 1):
        coverage = 1.0 - 2.0 * float(scipy.stats.binom.cdf(k - 1, n, 0.5))
        if coverage < confidence:
            break
        best = k
    if best is None:
        return None
    return best - 1, n - best


def _as_array(values: Iterable[float]) -> np.ndarray:
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        raise ValueError("no values to summarize")
    if not np.all(np.isfinite(arr)):
        raise ValueError("values must be finite (drop blocked and failed rows first)")
    return arr


def _bootstrap(samples: tuple[np.ndarray, ...], statistic: Callable[..., Any]) -> tuple[float, float]:
    kwargs: dict[str, Any] = {_RNG_KW: np.random.default_rng(BOOTSTRAP_SEED)}
    with np.errstate(divide="ignore", invalid="ignore"):
        res = scipy.stats.bootstrap(
            samples,
            statistic,
            paired=False,
            vectorized=True,
            confidence_level=CONFIDENCE,
            n_resamples=BOOTSTRAP_RESAMPLES,
            method="percentile",
            **kwargs,
        )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _median_axis(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.asarray(np.median(x, axis=axis))


def bootstrap_median(values: Iterable[float]) -> tuple[float, float]:
    """95 % percentile-bootstrap CI of the median of `values` (fixed seed: the same numbers twice)."""
    return _bootstrap((_as_array(values),), _median_axis)


def summarize(values: Iterable[float]) -> Summary:
    """Median, 95 % CI of the median, mean, sample stdev, min and max of finite values."""
    arr = np.sort(_as_array(values))
    n = int(arr.size)
    median = float(np.median(arr))

    def make(lo: float, hi: float, exact: bool, method: str, note: str = "") -> Summary:
        return Summary(
            n=n,
            median=median,
            ci_low=lo,
            ci_high=hi,
            mean=float(np.mean(arr)),
            stdev=float(np.std(arr, ddof=1)) if n > 1 else math.nan,
            min=float(arr[0]),
            max=float(arr[-1]),
            ci_exact=exact,
            method=method,
            note=note,
        )

    if n < MIN_CI_N:
        return make(math.nan, math.nan, False, "single sample", "n=1: no interval")
    idx = order_statistic_ci_indices(n)
    if idx is not None:
        return make(float(arr[idx[0]]), float(arr[idx[1]]), True, "order statistic")
    if arr[0] == arr[-1]:
        # Every resample would be identical; scipy warns on such degenerate data.
        return make(median, median, False, "bootstrap", f"n={n}: identical values")
    lo, hi = _bootstrap((arr,), _median_axis)
    note = f"n={n} < {MIN_ORDER_STATISTIC_N}: percentile bootstrap"
    return make(lo, hi, False, "bootstrap", note)


# --------------------------------------------------------------------------------------------
# Two samples: baseline vs candidate
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """A comparison statistic of candidate vs baseline medians, with a bootstrap 95 % CI (NaN when a
    side has fewer than two samples: no interval is made from one)."""

    value: float
    ci_low: float
    ci_high: float
    statistic: str
    n_baseline: int
    n_candidate: int
    median_baseline: float = math.nan
    median_candidate: float = math.nan
    direction: str = "lower"

    @property
    def unit(self) -> str:
        return STATISTIC_UNITS.get(self.statistic, "")

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)


def _statistic_fn(statistic: str, direction: str) -> Callable[[Any, Any], Any]:
    if statistic not in STATISTICS:
        raise ValueError(f"statistic {statistic!r} is not one of {', '.join(STATISTICS)}")
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction {direction!r} is not lower or higher")
    if statistic == "reduction_pct":
        return lambda mb, mc: (1.0 - mc / mb) * 100.0
    if statistic == "overhead_pct":
        return lambda mb, mc: (mc / mb - 1.0) * 100.0
    if direction == "lower":  # time: how many times faster the candidate is
        return lambda mb, mc: mb / mc
    return lambda mb, mc: mc / mb  # throughput


def compare(
    baseline_values: Iterable[float],
    candidate_values: Iterable[float],
    statistic: Statistic | str,
    direction: Direction | str = "lower",
) -> Comparison:
    """reduction_pct, overhead_pct or speedup of the candidate's median vs the baseline's."""
    b = _as_array(baseline_values)
    c = _as_array(candidate_values)
    fn = _statistic_fn(statistic, direction)
    mb, mc = float(np.median(b)), float(np.median(c))
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(fn(np.float64(mb), np.float64(mc)))
    enough = b.size >= MIN_CI_N and c.size >= MIN_CI_N
    lo = hi = value if enough else math.nan
    # Constant samples make every resample identical; scipy warns on such degenerate data.
    degenerate = b.min() == b.max() and c.min() == c.max()
    if enough and not degenerate and math.isfinite(value):

        def stat(xb: np.ndarray, xc: np.ndarray, axis: int = -1) -> np.ndarray:
            return np.asarray(fn(np.median(xb, axis=axis), np.median(xc, axis=axis)))

        lo, hi = _bootstrap((b, c), stat)
    return Comparison(
        value=value,
        ci_low=lo,
        ci_high=hi,
        statistic=statistic,
        n_baseline=int(b.size),
        n_candidate=int(c.size),
        median_baseline=mb,
        median_candidate=mc,
        direction=direction,
    )


def good_threshold(statistic: str, direction: str) -> tuple[float, int]:
    """(threshold, sign): the candidate is better when sign * (value - threshold) > 0."""
    if statistic == "speedup":
        return 1.0, 1  # direction is already folded into the ratio
    lower_better = direction == "lower"
    if statistic == "reduction_pct":
        return 0.0, 1 if lower_better else -1
    return 0.0, -1 if lower_better else 1  # overhead_pct


def side_of(comparison: Comparison, *, exact: bool = False) -> Side:
    """Where the CI lies: wholly better ("good"), wholly not better ("bad"), or across the line;
    "no interval" when a side has fewer than two samples. `exact`: the values are read, not
    sampled (static fidelity: a file's size), so the point value itself decides."""
    thr, sign = good_threshold(comparison.statistic, comparison.direction)
    lo, hi = comparison.ci_low, comparison.ci_high
    if exact:
        lo = hi = comparison.value
    elif min(comparison.n_baseline, comparison.n_candidate) < MIN_CI_N:
        return "no interval"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "straddles"
    if sign > 0:
        return "good" if lo > thr else "bad" if hi <= thr else "straddles"
    return "good" if hi < thr else "bad" if lo >= thr else "straddles"
