"""The report on the terminal: one rich table of verdicts, then per-workload and per-group tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from harness.core.tables import print_table
from harness.report.markdown import _not_ok_lines
from harness.report.text import (
    VERDICT_STYLES,
    _cell_header,
    _cell_values,
    _fidelity,
    _group_values,
    _title,
    beside_lines,
    fmt_headline,
    load_lines,
    not_in_mode,
    tier_lines,
    unit_label,
)
from harness.results.judgement import Evaluation
from harness.results.store import GroupSummary, Results

# --------------------------------------------------------------------------------------------
# Console
# --------------------------------------------------------------------------------------------


def render_console(
    evaluations: Sequence[Evaluation],
    results: Results,
    console: Console,
    *,
    detail: bool = True,
    run_dir: Path | None = None,
) -> None:
    """Print the summary table and, with `detail`, one block per KPI."""
    table = Table(title="ANT KPI results", show_lines=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("#", "right"),
        ("KPI", "left"),
        ("target", "left"),
        ("value (interval)", "right"),
        ("unit", "left"),
        ("fidelity", "left"),
        ("verdict", "left"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for ev in evaluations:
        table.add_row(
            str(ev.number),
            Text(_title(ev)),
            Text(ev.target),
            Text(fmt_headline(ev)),
            Text(unit_label(ev)),
            Text(_fidelity(ev)),
            Text(ev.verdict.value, style=VERDICT_STYLES[ev.verdict]),
        )
    print_table(console, table)
    if not detail:
        return
    for ev in evaluations:
        console.rule(Text(f"KPI {ev.number} · {ev.kpi}"))
        line = Text()
        line.append(ev.verdict.value, style=VERDICT_STYLES[ev.verdict])
        line.append(f" — {ev.reason}")
        console.print(line)
        for entry in load_lines(run_dir, ev.kpi):
            console.print(Text(f"measured under load: {entry}", style="yellow"))
        if ev.notes:
            console.print(Text(f"how the judged value was obtained: {'; '.join(ev.notes)}"))
        for entry in tier_lines(ev):
            console.print(Text(f"per fidelity and mode, each on its own (never pooled): {entry}"))
        for entry in beside_lines(ev):
            console.print(Text(f"also measured, on its own (not pooled, not part of the verdict): {entry}"))
        if ev.with_evidence or ev.without_evidence:
            console.print(Text(f"with evidence: {', '.join(ev.with_evidence) or '—'}"))
            console.print(Text(f"no evidence: {', '.join(ev.without_evidence) or '—'}"))
        if ev.per_workload:
            print_table(console, _console_cells(ev))
        groups = results.summaries(kpi=ev.kpi)
        if groups:
            print_table(console, _console_groups(ev, groups))
        for bad in _not_ok_lines(results.filter(kpi=ev.kpi)):
            console.print(Text(bad))
        heading, skipped = not_in_mode(run_dir, ev.kpi)
        if skipped:
            console.print(Text(f"{heading}:", style="cyan"))
            for entry in skipped:
                console.print(Text(f"  {entry}"))
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
    for name in ("metric", "target", "workload", "variant", "fidelity", "mode", "n", "median [CI]", "unit", "not ok"):
        t.add_column(Text(name))
    for g in groups:
        t.add_row(*(Text(x) for x in _group_values(g)))
    return t
