"""Plots for the report: baseline vs candidate bars with 95 % CIs, PSS traces, latency spreads.

PNG files are written next to the report (plots/), drawn with matplotlib's Agg backend so no
display is needed. Plot text stays in plain ASCII identifiers (variants, workloads, units), so one
set of images serves every report language without a CJK font.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from harness.core.fsio import atomic_write_bytes
from harness.results.judgement import Evaluation, WorkloadComparison
from harness.results.statistics import Summary
from harness.results.store import Results

PLOTS_DIR: Final = "plots"
# Okabe-Ito colours: distinguishable with every common colour-vision deficiency.
BASELINE_COLOUR: Final = "#E69F00"
CANDIDATE_COLOUR: Final = "#0072B2"
OTHER_COLOURS: Final = ("#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
TIME_UNITS: Final = frozenset({"ns", "us", "µs", "ms", "s"})
MAX_FACETS: Final = 12
# Fixed PNG metadata: the same rows give the same bytes, so bundles of a re-render compare equal.
_PNG_METADATA: Final[dict[str, Any]] = {"Software": None}


@dataclass(frozen=True, kw_only=True)
class Plot:
    """One image of a KPI section: its path relative to the report, a caption and its kind."""

    path: str
    caption: str
    kind: str


class PlotsUnavailable(Exception):
    """matplotlib is not installed: the report is written without images."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        raise PlotsUnavailable("matplotlib is not installed (pip install matplotlib)") from e
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 110,
            "font.size": 9,
            "axes.titlesize": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.axisbelow": True,
            "legend.frameon": False,
            "svg.hashsalt": "ant-kpi",
        }
    )
    return plt


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", name)


def _save(fig: Any, out_dir: Path, name: str) -> str:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", metadata=_PNG_METADATA)
    atomic_write_bytes(out_dir / name, buf.getvalue())
    return f"{PLOTS_DIR}/{name}"


def _grid(n: int, *, cols_max: int = 4) -> tuple[int, int]:
    cols = min(n, cols_max)
    return math.ceil(n / cols), cols


def _err(s: Summary | None) -> tuple[float, float, float]:
    """(median, distance down, distance up) for an error bar; NaN when there is no summary."""
    if s is None:
        return math.nan, 0.0, 0.0
    if math.isnan(s.ci_low) or math.isnan(s.ci_high):  # n=1: no interval, so no error bar
        return s.median, 0.0, 0.0
    return s.median, max(0.0, s.median - s.ci_low), max(0.0, s.ci_high - s.median)


# --------------------------------------------------------------------------------------------
# Baseline vs candidate per workload
# --------------------------------------------------------------------------------------------


def comparison_bars(cells: Sequence[WorkloadComparison], unit: str, out_dir: Path, name: str) -> str:
    """Grouped bars of baseline and candidate medians per workload with CI error bars."""
    plt = _pyplot()
    facets: dict[tuple[str, str, str], list[WorkloadComparison]] = {}
    for c in cells:
        facets.setdefault((c.target, c.fidelity, c.mode), []).append(c)
    keys = list(facets)[:MAX_FACETS]
    first = cells[0]
    rows, cols = _grid(len(keys), cols_max=2)
    widest = max(len(facets[k]) for k in keys)
    fig, axes = plt.subplots(
        rows, cols, squeeze=False, figsize=(min(13.0, 1.0 + cols * max(3.2, 1.3 * widest)), 3.2 * rows)
    )
    for ax, key in zip(axes.flat, keys, strict=False):
        group = facets[key]
        x = np.arange(len(group))
        for offset, colour, label, pick in (
            (-0.2, BASELINE_COLOUR, first.baseline, lambda c: c.baseline_summary),
            (0.2, CANDIDATE_COLOUR, first.candidate, lambda c: c.candidate_summary),
        ):
            med, lo, hi = zip(*(_err(pick(c)) for c in group), strict=True)
            ax.bar(
                x + offset,
                med,
                width=0.4,
                color=colour,
                label=label,
                yerr=np.array([lo, hi]),
                capsize=3,
                ecolor="#333333",
                error_kw={"lw": 1},
            )
        for i, c in enumerate(group):
            if c.comparison is not None and math.isfinite(c.comparison.value):
                top = max(
                    _err(c.baseline_summary)[0] + _err(c.baseline_summary)[2],
                    _err(c.candidate_summary)[0] + _err(c.candidate_summary)[2],
                )
                ax.annotate(
                    f"{c.comparison.value:+.1f}{c.comparison.unit}"
                    if c.comparison.unit == "%"
                    else f"{c.comparison.value:.2f}{c.comparison.unit}",
                    (i, top),
                    textcoords="offset points",
                    xytext=(0, 4),
                    ha="center",
                    fontsize=8,
                    color="#333333",
                )
        ax.set_xticks(x, [c.workload or "(all)" for c in group], rotation=20, ha="right")
        target, fidelity, mode = key
        ax.set_title(f"{target or 'any target'} - {fidelity}, {mode}")
        ax.set_ylabel(f"{first.metric} ({unit})" if unit else first.metric)
        ax.margins(y=0.15)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    axes.flat[0].legend(loc="lower left", bbox_to_anchor=(0, 1.08), ncol=2)
    fig.tight_layout()
    path = _save(fig, out_dir, name)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# PSS over time (KPI 1)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Trace:
    target: str
    workload: str
    variant: str
    fidelity: str
    t: np.ndarray
    kb: np.ndarray


def _load_traces(run_dir: Path, rows: Results, metric: str) -> list[_Trace]:
    from harness.payload.pss import load_json

    df = rows.df
    df = df[(df["metric"] == metric) & (df["status"] == "ok")]
    out = []
    seen: set[str] = set()
    for rec in df.to_dict("records"):
        log = str(rec["log"])
        if not log.endswith(".json") or log in seen:
            continue
        seen.add(log)
        path = run_dir / log
        try:
            res = load_json(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a PSS trace (another tool's JSON) or unreadable: no curve, no crash
        if len(res.trace) < 2:
            continue
        t0 = res.trace[0].t
        out.append(
            _Trace(
                target=str(rec["target"]),
                workload=str(rec["workload"]),
                variant=str(rec["variant"]),
                fidelity=str(rec["fidelity"]),
                t=np.array([s.t - t0 for s in res.trace]),
                kb=np.array([s.pss_kb for s in res.trace]),
            )
        )
    return out


def pss_traces(
    run_dir: Path, rows: Results, *, metric: str, baseline: str, candidate: str, out_dir: Path, name: str
) -> str | None:
    """PSS (KB) against time for every repeat, one panel per (target, workload); None if no trace."""
    traces = _load_traces(run_dir, rows, metric)
    if not traces:
        return None
    plt = _pyplot()
    keys = sorted({(tr.target, tr.workload) for tr in traces})[:MAX_FACETS]
    rows_n, cols = _grid(len(keys))
    fig, axes = plt.subplots(rows_n, cols, squeeze=False, figsize=(3.1 * cols + 0.6, 2.4 * rows_n))
    others = iter(OTHER_COLOURS)
    colours: dict[str, str] = {baseline: BASELINE_COLOUR, candidate: CANDIDATE_COLOUR}
    for ax, key in zip(axes.flat, keys, strict=False):
        for tr in (x for x in traces if (x.target, x.workload) == key):
            if tr.variant not in colours:
                colours[tr.variant] = next(others, "#777777")
            # The baseline wide and pale under the candidate: overlapping curves stay readable.
            is_base = tr.variant == baseline
            ax.plot(
                tr.t,
                tr.kb / 1024.0,
                color=colours[tr.variant],
                lw=2.4 if is_base else 1.1,
                alpha=0.55 if is_base else 0.9,
                zorder=2 if is_base else 3,
            )
        fid = sorted({x.fidelity for x in traces if (x.target, x.workload) == key})
        ax.set_title(f"{key[1]} @ {key[0]} ({', '.join(fid)})")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("PSS (MB)")
        ax.set_ylim(bottom=0)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    handles = [
        plt.Line2D([], [], color=c, lw=2, label=v) for v, c in colours.items() if any(tr.variant == v for tr in traces)
    ]
    fig.legend(handles=handles, loc="upper left", ncol=len(handles), bbox_to_anchor=(0.0, 1.04))
    fig.tight_layout()
    path = _save(fig, out_dir, name)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# Latency distributions
# --------------------------------------------------------------------------------------------


def _spread_apart(medians: Sequence[float]) -> bool:
    """Whether group medians differ so much that one shared axis would flatten every box."""
    pos = [abs(m) for m in medians if m]
    return len(pos) > 1 and max(pos) / min(pos) > 1.5


def distributions(
    rows: Results, *, metric: str, out_dir: Path, name: str, colours: Mapping[str, str] | None = None
) -> str | None:
    """Box and points of every ok value of `metric` per (workload, variant), a panel per target.

    Groups whose medians are far apart get a panel (and a y axis) each.
    """
    df = rows.df
    df = df[(df["metric"] == metric) & (df["status"] == "ok")]
    values = df["value"].to_numpy(dtype=float)
    df = df[np.isfinite(values)]
    if df.empty:
        return None
    plt = _pyplot()
    palette = dict(colours or {})
    spare = iter((BASELINE_COLOUR, CANDIDATE_COLOUR, *OTHER_COLOURS))
    panels: list[tuple[str, list[tuple[str, np.ndarray, str]]]] = []
    for target in sorted(set(df["target"].tolist())):
        groups = []
        for (workload, variant), g in df[df["target"] == target].groupby(["workload", "variant"], sort=True):
            if str(variant) not in palette:
                palette[str(variant)] = next(spare, "#777777")
            text = f"{variant}" if workload in ("", variant) else f"{workload}\n{variant}"
            groups.append((text, g["value"].to_numpy(dtype=float), palette[str(variant)]))
        if _spread_apart([float(np.median(v)) for _, v, _ in groups]):
            panels += [
                (f"{target or 'any target'}: {text.replace(chr(10), ' ')}", [(text, v, c)]) for text, v, c in groups
            ]
        else:
            panels.append((target or "any target", groups))
    panels = panels[:MAX_FACETS]
    rows_n, cols = _grid(len(panels), cols_max=4)
    widest = max(len(g) for _, g in panels)
    fig, axes = plt.subplots(
        rows_n, cols, squeeze=False, figsize=(min(13.0, 1.0 + cols * max(2.8, 0.9 * widest)), 3.0 * rows_n)
    )
    unit = ", ".join(sorted(set(df["unit"].tolist())))
    rng = np.random.default_rng(0)  # fixed jitter: the same rows draw the same picture
    for ax, (title, groups) in zip(axes.flat, panels, strict=False):
        data = [v for _, v, _ in groups]
        box = ax.boxplot(data, patch_artist=True, widths=0.55, showfliers=False, medianprops={"color": "#222222"})
        for patch, (_, _, colour) in zip(box["boxes"], groups, strict=True):
            patch.set_facecolor(colour)
            patch.set_alpha(0.35)
        for i, (_, vals, colour) in enumerate(groups, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, size=vals.size), vals, s=9, color=colour, zorder=3)
        ax.set_xticks(range(1, len(groups) + 1), [t for t, _, _ in groups] if len(groups) > 1 else [""], fontsize=8)
        ax.set_title(title)
        ax.set_ylabel(f"{metric} ({unit})")
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    path = _save(fig, out_dir, name)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# Which plots a KPI gets
# --------------------------------------------------------------------------------------------


def plots_for(ev: Evaluation, results: Results, run_dir: Path, *, out_dir: Path | None = None) -> list[Plot]:
    """Draw the plots that say more than the tables for one KPI; paths relative to the report.

    Traces are read from run_dir; images go to <out_dir or run_dir>/plots.
    """
    out_dir = (out_dir or run_dir) / PLOTS_DIR
    rows = results.filter(kpi=ev.kpi)
    if not len(rows):
        return []
    out: list[Plot] = []
    stem = _safe(ev.kpi)
    cells = [c for c in ev.per_workload if c.baseline_summary or c.candidate_summary]
    units = sorted(set(rows.filter(metric=cells[0].metric).df["unit"].tolist())) if cells else []
    if cells:
        first = cells[0]
        unit = units[0] if len(units) == 1 else ""
        path = comparison_bars(cells, unit, out_dir, f"{stem}-compare.png")
        out.append(
            Plot(
                path=path,
                kind="compare",
                caption=f"median {first.metric} of {first.baseline} and {first.candidate} "
                f"per workload; error bars: 95 % CI; label: {first.statistic}",
            )
        )
        traces = pss_traces(
            run_dir,
            rows,
            metric=first.metric,
            baseline=first.baseline,
            candidate=first.candidate,
            out_dir=out_dir,
            name=f"{stem}-pss-trace.png",
        )
        if traces:
            out.append(
                Plot(
                    path=traces,
                    kind="trace",
                    caption="PSS of the process tree over time, every repeat (raw/*.json traces)",
                )
            )
    metric = cells[0].metric if cells else ev.metric
    m_units = set(rows.filter(metric=metric).df["unit"].tolist())
    if m_units and m_units <= TIME_UNITS:
        colours = {cells[0].baseline: BASELINE_COLOUR, cells[0].candidate: CANDIDATE_COLOUR} if cells else {}
        path_d = distributions(rows, metric=metric, out_dir=out_dir, name=f"{stem}-distribution.png", colours=colours)
        if path_d:
            out.append(
                Plot(path=path_d, kind="distribution", caption=f"every {metric} sample: box = quartiles, line = median")
            )
    return out


def make_plots(
    evaluations: Sequence[Evaluation], results: Results, run_dir: Path, *, out_dir: Path | None = None
) -> dict[str, list[Plot]]:
    """Plots of every KPI, keyed by KPI id; empty when matplotlib is missing."""
    try:
        _pyplot()
    except PlotsUnavailable:
        return {}
    out: dict[str, list[Plot]] = {}
    for ev in evaluations:
        try:
            out[ev.kpi] = plots_for(ev, results, run_dir, out_dir=out_dir)
        except (ValueError, TypeError, RuntimeError, OverflowError) as e:
            # A picture that cannot be drawn (odd data) must not cost the evaluator the report.
            print(f"warning: no plot for {ev.kpi}: {e}", file=sys.stderr)
            out[ev.kpi] = []
    return out
