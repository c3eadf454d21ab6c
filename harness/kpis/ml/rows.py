"""Result rows of KPIs 3 and 4: the run's identity and provenance on every row, appended to the journal."""

from __future__ import annotations

from typing import Any

from harness.core.runner import Run
from harness.results.journal import append_row_journal
from harness.results.rows import Row


def _row(run: Run, kpi: str, **kw: Any) -> Row:
    fields: dict[str, Any] = {"run_id": run.run_id, "kpi": kpi, "mode": run.mode, **run.provenance_base(), **kw}
    return Row(**fields)


def _write(run: Run, rows: list[Row]) -> int:
    for r in rows:
        append_row_journal(run.run_dir, r)
    return len(rows)
