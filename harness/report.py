"""The report: a rich console view and a Markdown file of evaluations, numbers and provenance.

Numbers come from the result object and the evaluations; this module only lays them out.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final
from urllib.parse import quote

from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from harness.fsio import atomic_write_text
from harness.results import GroupSummary, Results
from harness.stats import Evaluation, Summary, Verdict, WorkloadComparison

REPORT_NAME: Final = "report.md"

VERDICT_STYLES: Final[dict[Verdict, str]] = {
    Verdict.PASS: "bold green",
    Verdict.FAIL: "bold red",
    Verdict.INCONCLUSIVE: "bold yellow",
    Verdict.BLOCKED: "bold magenta",
    Verdict.NO_VERDICT: "cyan",
}


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def _decimals(values: Sequence[float]) -> int:
    """Decimals that show ~3 significant digits of the largest value; 0 for whole numbers."""
    finite = [v for v in values if math.isfinite(v)]
    if all(v == int(v) and abs(v) < 1e15 for v in finite):
        return 0
    a = max(abs(v) for v in finite)
    if a >= 1000:
        return 0
    if a >= 100:
        return 1
    if a >= 1:
        return 2
    return min(12, 2 - math.floor(math.log10(a)))


def _fmt(x: float, decimals: int) -> str:
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:,.{decimals}f}"


def fmt_num(x: float) -> str:
    """A number for people: thousands separators, about 3 significant digits, '—' for NaN."""
    return _fmt(x, _decimals([x]))


def fmt_ci(low: float, high: float) -> str:
    """A 95 % CI as '[low, high]' ('—' when unknown)."""
    if math.isnan(low) or math.isnan(high):
        return "—"
    d = _decimals([low, high])
    return f"[{_fmt(low, d)}, {_fmt(high, d)}]"


def fmt_value(value: float, low: float, high: float) -> str:
    """'value [low, high]' with one precision for all three; just the value for a point CI."""
    if math.isnan(value):
        return "—"
    if math.isnan(low) or math.isnan(high) or low == high == value:
        return fmt_num(value)
    d = _decimals([value, low, high])
    return f"{_fmt(value, d)} [{_fmt(low, d)}, {_fmt(high, d)}]"


def _fmt_summary(s: Summary | None) -> str:
    if s is None:
        return "—"
    return fmt_value(s.median, s.ci_low, s.ci_high)


def _title(ev: Evaluation) -> str:
    return f"{ev.title_en} ({ev.title_ko})" if ev.title_ko else ev.title_en


def _fidelity(ev: Evaluation) -> str:
    return ", ".join(ev.fidelity) or "—"


# --------------------------------------------------------------------------------------------
# Console
# --------------------------------------------------------------------------------------------


def render_console(
    evaluations: Sequence[Evaluation], results: Results, console: Console, *, detail: bool = True
) -> None:
    """Print the summary table and, with `detail`, one block per KPI."""
    table = Table(title="ANT KPI results", show_lines=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("#", "right"), ("KPI", "left"), ("target", "left"), ("value [95 % CI]", "right"),
        ("unit", "left"), ("fidelity", "left"), ("verdict", "left"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for ev in evaluations:
        table.add_row(
            str(ev.number), Text(_title(ev)), Text(ev.target),
            Text(fmt_value(ev.value, ev.ci_low, ev.ci_high)), Text(ev.unit), Text(_fidelity(ev)),
            Text(ev.verdict.value, style=VERDICT_STYLES[ev.verdict]),
        )
    console.print(table)
    if not detail:
        return
    for ev in evaluations:
        console.rule(Text(f"KPI {ev.number} · {ev.kpi}"))
        line = Text()
        line.append(ev.verdict.value, style=VERDICT_STYLES[ev.verdict])
        line.append(f" — {ev.reason}")
        console.print(line)
        if ev.with_evidence or ev.without_evidence:
            console.print(Text(f"with evidence: {', '.join(ev.with_evidence) or '—'}"))
            console.print(Text(f"no evidence: {', '.join(ev.without_evidence) or '—'}"))
        if ev.per_workload:
            console.print(_console_cells(ev))
        groups = results.summaries(kpi=ev.kpi)
        if groups:
            console.print(_console_groups(ev, groups))
        for bad in _not_ok_lines(results.filter(kpi=ev.kpi)):
            console.print(Text(bad))
        if ev.evidence:
            # A long list buries the tables; report.md links every file.
            shown = ", ".join(ev.evidence[:3]) + (", …" if len(ev.evidence) > 3 else "")
            console.print(Text(f"evidence: {len(ev.evidence)} log(s): {shown}", style="dim"))


def _console_cells(ev: Evaluation) -> Table:
    first = ev.per_workload[0]
    title = f"{first.statistic} of {first.metric}: {first.candidate} vs {first.baseline}"
    t = Table(title=Text(title))
    for name in _cell_header(first):
        t.add_column(Text(name))
    for c in ev.per_workload:
        t.add_row(*(Text(x) for x in _cell_values(c)))
    return t


def _console_groups(ev: Evaluation, groups: Sequence[GroupSummary]) -> Table:
    t = Table(title=Text(f"measurements of {ev.kpi}"))
    for name in ("metric", "target", "workload", "variant", "fidelity", "mode", "n", "median [CI]",
                 "unit", "not ok"):
        t.add_column(Text(name))
    for g in groups:
        t.add_row(*(Text(x) for x in _group_values(g)))
    return t


def _cell_header(first: WorkloadComparison) -> list[str]:
    return ["target", "workload", "fidelity", "mode", f"n {first.baseline}",
            f"{first.baseline} median [CI]", f"n {first.candidate}",
            f"{first.candidate} median [CI]", f"{first.statistic} [CI]", "CI side"]


def _cell_values(c: WorkloadComparison) -> list[str]:
    cmp = c.comparison
    return [
        c.target or "—", c.workload or "(all)", c.fidelity, c.mode,
        str(c.baseline_summary.n) if c.baseline_summary else "0",
        _fmt_summary(c.baseline_summary),
        str(c.candidate_summary.n) if c.candidate_summary else "0",
        _fmt_summary(c.candidate_summary),
        fmt_value(cmp.value, cmp.ci_low, cmp.ci_high) + f" {cmp.unit}" if cmp else "—",
        c.side,
    ]


def _group_values(g: GroupSummary) -> list[str]:
    s = g.summary
    return [
        g.metric, g.target or "—", g.workload or "—", g.variant, g.fidelity, g.mode,
        str(s.n) if s else "0", _fmt_summary(s), g.unit, str(g.not_ok),
    ]


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(_cell(h) for h in header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(x) for x in row) + " |" for row in rows]
    return out


def _code(text: str) -> str:
    """An inline code span that survives backticks in the text."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _fence(lines: Sequence[str]) -> list[str]:
    longest = max((len(m) for line in lines for m in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}text", *lines, fence]


def _link(path: str, run_dir: Path) -> str:
    text = path.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    exists = (run_dir / path).exists()
    return f"[{text}]({quote(path)})" + ("" if exists else " (not found in the run directory)")


def _unique(values: Iterable[str]) -> list[str]:
    return sorted({v for v in values if v})


def render_markdown(
    evaluations: Sequence[Evaluation], results: Results, *, run_id: str, run_dir: str | Path
) -> str:
    """The whole report as Markdown: a summary table, then one section per KPI."""
    d = Path(run_dir)
    df = results.df
    out = [f"# ANT KPI report — run {_code(run_id)}", ""]
    out += _table(
        ["#", "KPI", "target", "value [95 % CI]", "unit", "fidelity", "verdict"],
        ([str(ev.number), _title(ev), ev.target, fmt_value(ev.value, ev.ci_low, ev.ci_high),
          ev.unit, _fidelity(ev), f"**{ev.verdict.value}**"] for ev in evaluations),
    )
    out.append("")
    statuses = df["status"].value_counts().to_dict()
    counts = ", ".join(f"{statuses.get(s, 0)} {s}" for s in ("ok", "blocked", "failed"))
    out.append(f"- Rows: {len(df)} ({counts})")
    if len(df):
        out.append(f"- Measured: {min(df['time'].tolist())} … {max(df['time'].tolist())}")
    out.append(f"- Harness: {_harness_versions(results)}")
    out.append("- Fidelity: board = measured on the board; simulator = an NPU or hardware "
               "simulator; emulated = QEMU user mode (proves the steps run, never a timing or "
               "memory verdict); host = natively on the harness machine; static = read from the "
               "artefact itself")
    out.append("")
    for ev in evaluations:
        out += _kpi_section(ev, results, d)
    return "\n".join(out).rstrip("\n") + "\n"


def _harness_versions(results: Results) -> str:
    df = results.df
    parts = []
    for version in _unique(str(v) for v in df["harness_version"].tolist()):
        dirty = df[df["harness_version"] == version]["harness_dirty"]
        n_dirty = int(dirty.sum())
        if n_dirty == len(dirty):
            note = " (dirty tree)"
        elif n_dirty:
            note = f" (dirty tree in {n_dirty} of {len(dirty)} rows)"
        else:
            note = ""
        parts.append(f"{_code(version)}{note}")
    return ", ".join(parts) or "—"


def _kpi_section(ev: Evaluation, results: Results, run_dir: Path) -> list[str]:
    out = [f"## {ev.number} · {ev.kpi} — {ev.title_en}", ""]
    if ev.title_ko:
        out += [ev.title_ko, ""]
    what = f"{ev.statistic} of {ev.metric}" if ev.statistic else ev.metric
    out.append(f"- **Target:** {ev.target}")
    if math.isnan(ev.value):
        out.append(f"- **Value:** no value for {what} ({ev.n} usable row(s))")
    else:
        d = _decimals([ev.value, ev.ci_low, ev.ci_high])
        ci = f"[{_fmt(ev.ci_low, d)}, {_fmt(ev.ci_high, d)}]"
        out.append(f"- **Value:** {what} = {_fmt(ev.value, d)} {ev.unit} "
                   f"(95 % CI {ci}; {ev.n} row(s))")
    out.append(f"- **Fidelity:** {_fidelity(ev)}")
    out.append(f"- **Verdict:** **{ev.verdict.value}** — {ev.reason}")
    if ev.with_evidence or ev.without_evidence:
        out.append(f"- **With evidence:** {', '.join(ev.with_evidence) or '—'}")
        out.append(f"- **Without evidence:** {', '.join(ev.without_evidence) or '—'}")
    if ev.blocked:
        out.append(f"- **Blocked or failed rows:** {ev.blocked}")
    out.append("")
    if ev.per_workload:
        first = ev.per_workload[0]
        out += [f"### {first.statistic} per workload: {first.candidate} vs {first.baseline} "
                f"({first.metric})", ""]
        out += _table(_cell_header(first), (_cell_values(c) for c in ev.per_workload))
        out += ["", "CI side: good = the whole 95 % CI is better than the baseline, bad = none of "
                "it is, straddles = it crosses no change; each row keeps its own fidelity.", ""]
    kpi_rows = results.filter(kpi=ev.kpi)
    groups = kpi_rows.summaries()
    if groups:
        out += ["### Measurements", ""]
        out += _table(["metric", "target", "workload", "variant", "fidelity", "mode", "n",
                       "median [CI]", "unit", "not ok"], (_group_values(g) for g in groups))
        out.append("")
    lines = _not_ok_lines(kpi_rows)
    if lines:
        out += ["### Blocked and failed rows", "", *(f"- {line}" for line in lines), ""]
    out += ["### Evidence", ""]
    out += [f"- {_link(p, run_dir)}" for p in ev.evidence] or ["- none recorded"]
    out.append("")
    out += _provenance(kpi_rows)
    return out


def _not_ok_lines(rows: Results) -> list[str]:
    bad = rows.df[rows.df["status"] != "ok"]
    return sorted({
        f"{r['status']}: {r['metric']} {r['variant']}"
        f"{'/' + str(r['workload']) if r['workload'] else ''}"
        f"{' on ' + str(r['target']) if r['target'] else ''} — "
        f"{' '.join(str(r['note']).split()) or 'no note'}"
        for r in bad.to_dict("records")
    })


def _provenance(rows: Results) -> list[str]:
    df = rows.df
    out = ["### Provenance", ""]
    for label, col in (("Source commits", "source_commit"), ("Image digests", "image_digest"),
                       ("Artefact sha256", "artefact_sha256")):
        vals = _unique(str(v) for v in df[col].tolist())
        out.append(f"- {label}: {', '.join(_code(v) for v in vals) if vals else '—'}")
    idents = _unique(str(v) for v in df["target_identity"].tolist() if str(v) != "{}")
    out.append(f"- Targets: {', '.join(_code(v) for v in idents) if idents else '—'}")
    out.append(f"- Harness: {_harness_versions(rows)}")
    commands = []
    for text in _unique(str(v) for v in df["argv"].tolist()):
        argv = json.loads(text)
        if argv:
            commands.append(shlex.join(str(a) for a in argv))
    if commands:
        out += ["- Commands:", "", *("  " + line for line in _fence(sorted(commands)))]
    out.append("")
    return out


def write_report(run_dir: str | Path, evaluations: Sequence[Evaluation], results: Results) -> Path:
    """Render report.md into the run directory atomically; returns its path."""
    d = Path(run_dir)
    ids = _unique(str(v) for v in results.df["run_id"].tolist())
    run_id = ids[0] if len(ids) == 1 else d.name
    text = render_markdown(evaluations, results, run_id=run_id, run_dir=d)
    return atomic_write_text(d / REPORT_NAME, text)
