"""Print plans for people: one table per KPI with where each step runs and its cache key."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.core.plan import KpiPlan
from harness.core.tables import print_table

_WHERE_STYLE = {"host": "cyan", "image": "magenta", "qemu": "yellow", "board": "green"}


def _collapse(plan: KpiPlan) -> list[tuple[str, str, str, str, str]]:
    """Group repeated measure steps into one line (`× n`) so a plan stays readable."""
    rows: list[tuple[str, str, str, str, str]] = []
    groups: dict[tuple[str, str, str], int] = {}
    for s in plan.steps:
        if s.kind == "measure" and s.repeat is not None:
            g = (s.variant, s.workload, s.target)
            if g in groups:
                i = groups[g]
                sid, kind, where, desc, key = rows[i]
                n = int(sid.rsplit("×", 1)[1]) + 1 if "×" in sid else 2
                base = sid.split(" ×")[0]
                rows[i] = (f"{base} ×{n}", kind, where, desc, key)
                continue
            groups[g] = len(rows)
            rows.append((s.id.rsplit(":", 1)[0], s.kind, s.where, s.description, s.key))
        else:
            rows.append((s.id, s.kind, s.where, s.description, s.key))
    return rows


def print_plans(plans: Sequence[KpiPlan], console: Console | None = None) -> None:
    con = console or Console(emoji=False, highlight=False)
    for p in plans:
        k = p.kpi
        t = Table(
            expand=True,
            title=f"KPI {k.number} · {k.id} · {k.title_en} ({k.title_ko})",
            title_justify="left",
            caption=f"mode {p.mode} · targets {', '.join(p.targets)} · target: "
            f"{k.target.describe(k.compare)} · verdict needs {', '.join(k.verdict_fidelity)}",
            caption_justify="left",
        )
        t.add_column("step", overflow="fold", ratio=3)
        t.add_column("where", no_wrap=True)
        t.add_column("what", ratio=6)
        t.add_column("key", style="dim", no_wrap=True)
        for sid, _kind, where, desc, key in _collapse(p):
            t.add_row(escape(sid), f"[{_WHERE_STYLE.get(where, 'white')}]{where}[/]", escape(desc), key)
        print_table(con, t)
        notes = sorted({n for s in p.steps for n in s.notes})
        for n in notes:
            con.print(f"  [dim]note:[/dim] {escape(n)}")
        for g in p.gaps:
            con.print(f"  [yellow]gap:[/yellow] {escape(g)}")
        for skipped in p.not_in_mode:
            con.print(f"  [cyan]not part of {p.mode} mode:[/cyan] {escape(skipped.line())}")
        con.print()
