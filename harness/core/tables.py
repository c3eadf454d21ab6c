"""Tables for people that never cut a number: every column folds instead of truncating with "…",
and output that is narrow (under WIDE columns) or not a terminal (a CI log, a pipe) gets a plain
layout, one block per row with "column: value" lines, which no width can cut."""

from __future__ import annotations

from typing import Final

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

WIDE: Final = 100  # below this many columns a table is printed as plain records


def folded(table: Table) -> Table:
    """`table` with every column folding long words instead of cutting them with an ellipsis."""
    for col in table.columns:
        col.overflow = "fold"
        col.no_wrap = False
    return table


def _plain(cell: RenderableType) -> str:
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return Text.from_markup(cell).plain
    return str(cell)


def plain_lines(table: Table) -> list[str]:
    """The table as records: its title, then per row the first cell and one 'header: value' line per
    other column; captions after. Nothing is cut."""
    out: list[str] = []
    if table.title:
        out.append(_plain(table.title))
    headers = [_plain(c.header) for c in table.columns]
    cells = [[_plain(x) for x in c.cells] for c in table.columns]
    for i in range(table.row_count):
        row = [col[i] if i < len(col) else "" for col in cells]
        out.append(f"- {headers[0]}: {row[0]}" if headers else "-")
        out += [f"    {h}: {v}" for h, v in zip(headers[1:], row[1:], strict=True) if v]
    if table.caption:
        out.append(_plain(table.caption))
    return out


def is_narrow(console: Console) -> bool:
    """True for a console under WIDE columns or not attached to a terminal."""
    return not console.is_terminal or console.width < WIDE


def print_table(console: Console, table: Table) -> None:
    """Print `table` folded on a wide terminal, as plain records otherwise."""
    if is_narrow(console):
        for line in plain_lines(table):
            console.print(Text(line), soft_wrap=True)
    else:
        console.print(folded(table))
