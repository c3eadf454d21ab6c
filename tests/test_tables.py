"""Tables never cut a number: folded on a wide terminal, plain records when narrow or not a terminal."""

from __future__ import annotations

import io

from rich.console import Console
from rich.table import Table

from harness.core.tables import WIDE, is_narrow, plain_lines, print_table

STEP = "measure:iotjs_plus:sp-access-binary-trees:rpi2:0"
VALUE = "249,612.375 [248,901.125, 250,377.5]"


def _table() -> Table:
    t = Table(title="KPI 1 · js_memory", caption="mode smoke")
    for name in ("step", "where", "median [CI]", "key"):
        t.add_column(name)
    t.add_row(STEP, "[cyan]qemu[/]", VALUE, "0123456789abcdef")
    return t


def _out(console: Console) -> str:
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue()


def test_a_ci_log_80_columns_wide_gets_every_value_whole() -> None:
    con = Console(file=io.StringIO(), width=80, color_system=None)  # not a terminal: a CI log, a pipe
    assert is_narrow(con)
    print_table(con, _table())
    out = _out(con)
    assert STEP in out and VALUE in out and "0123456789abcdef" in out and "…" not in out
    assert "    where: qemu" in out and out.splitlines()[-1] == "mode smoke"


def test_a_narrow_terminal_gets_the_plain_layout_too() -> None:
    con = Console(file=io.StringIO(), width=60, force_terminal=True, color_system=None)
    print_table(con, _table())
    assert STEP in _out(con) and VALUE in _out(con)


def test_a_wide_terminal_gets_a_folded_table_that_cuts_nothing() -> None:
    con = Console(file=io.StringIO(), width=WIDE, force_terminal=True, color_system=None)
    assert not is_narrow(con)
    t = _table()
    for col in t.columns:
        col.overflow = "ellipsis"  # what rich does by default
    print_table(con, t)
    out = _out(con)
    assert "│" in out and "…" not in out
    # Folding may break a long value over lines; its column joined again holds every character.
    cells = [line.split("│") for line in out.splitlines() if line.startswith("│")]
    column = "".join("".join(c[3].split()) for c in cells if len(c) > 3)
    assert column == "".join(VALUE.split())
    steps = "".join(c[1].strip() for c in cells if len(c) > 3)
    assert steps == STEP


def test_plain_lines_keep_markup_out_and_empty_cells_away() -> None:
    t = Table("name", "note")
    t.add_row("a", "")
    assert plain_lines(t) == ["- name: a"]
