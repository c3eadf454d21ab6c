"""report.md (and report.ko.md): evaluations, per-workload tables, evidence and provenance in Markdown."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.core.fsio import atomic_write_text
from harness.report.buildnotes import BUILD_NOTES_HEADING
from harness.report.text import (
    _PROVENANCE_COLUMNS,
    Lang,
    _cell_header,
    _cell_values,
    _code,
    _commands,
    _entity_header,
    _entity_values,
    _fidelity,
    _group_header,
    _group_values,
    _harness_versions,
    _identities,
    _kpi_titles,
    _link,
    _per_workload_title,
    _reason,
    _row_counts,
    _run_id,
    _target,
    _title,
    _unique,
    _value_line,
    beside_lines,
    deviation_lines,
    entity_detail,
    fmt_headline,
    label,
    load_lines,
    not_in_mode,
    report_name,
    tier_lines,
    unit_label,
)
from harness.results.judgement import Evaluation, _records, row_label
from harness.results.store import Results


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|")


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(x) for x in row) + " |" for row in rows]
    return out


def _fence(lines: Sequence[str]) -> list[str]:
    longest = max((len(m) for line in lines for m in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}text", *lines, fence]


def render_markdown(
    evaluations: Sequence[Evaluation],
    results: Results,
    *,
    run_id: str,
    run_dir: str | Path,
    lang: Lang = "en",
    build_notes: str = "",
) -> str:
    """The whole report as Markdown: a summary table, one section per KPI, then the build notes."""
    d = Path(run_dir)
    df = results.df
    out = [f"# {label('report', lang)} — {label('run', lang)} {_code(run_id)}", ""]
    out += _table(
        [
            "#",
            label("kpi", lang),
            label("target", lang),
            label("value_ci", lang),
            label("unit", lang),
            label("fidelity", lang),
            label("verdict", lang),
        ],
        (
            [
                str(ev.number),
                _title(ev, lang),
                _target(ev, lang),
                fmt_headline(ev, lang),
                unit_label(ev),
                _fidelity(ev, lang),
                f"**{label(ev.verdict.value, lang)}**",
            ]
            for ev in evaluations
        ),
    )
    out.append("")
    out.append(f"- {label('rows', lang)}: {len(df)} ({_row_counts(df, lang)})")
    if len(df):
        out.append(f"- {label('measured', lang)}: {min(df['time'].tolist())} … {max(df['time'].tolist())}")
    out.append(f"- {label('harness', lang)}: {_harness_versions(results, lang)}")
    out.append(f"- {label('fidelity_legend', lang)}: {label('legend', lang)}")
    out.append("")
    for ev in evaluations:
        out += _kpi_section(ev, results, d, lang)
    if build_notes:
        out += ["", build_notes.replace(BUILD_NOTES_HEADING, f"## {label('build_notes', lang)}", 1)]
    return "\n".join(out).rstrip("\n") + "\n"


def _kpi_section(ev: Evaluation, results: Results, run_dir: Path, lang: Lang = "en") -> list[str]:
    main, second = _kpi_titles(ev, lang)
    out = [f"## {ev.number} · {ev.kpi} — {main}", ""]
    if second:
        out += [second, ""]
    out.append(f"- **{label('Target', lang)}:** {_target(ev, lang)}")
    out.append(f"- **{label('Value', lang)}:** {_value_line(ev, lang)}")
    out.append(f"- **{label('Fidelity', lang)}:** {_fidelity(ev, lang)}")
    out.append(f"- **{label('Verdict', lang)}:** **{label(ev.verdict.value, lang)}** — {_reason(ev, lang)}")
    if ev.with_evidence or ev.without_evidence:
        out.append(f"- **{label('with_evidence', lang)}:** {', '.join(ev.with_evidence) or '—'}")
        out.append(f"- **{label('without_evidence', lang)}:** {', '.join(ev.without_evidence) or '—'}")
    if ev.notes:
        out.append(f"- **{label('notes', lang)}:** {'; '.join(ev.notes)}")
    for line in tier_lines(ev, lang):
        out.append(f"- **{label('tiers', lang)}:** {line}")
    for line in beside_lines(ev, lang):
        out.append(f"- **{label('beside', lang)}:** {line}")
    if ev.blocked:
        out.append(f"- **{label('blocked_rows', lang)}:** {ev.blocked}")
    out.append("")
    if ev.per_workload:
        first = ev.per_workload[0]
        out += [f"### {_per_workload_title(ev.per_workload, lang)}", ""]
        out += _table(_cell_header(first, lang), (_cell_values(c) for c in ev.per_workload))
        out += ["", label("side_note", lang), ""]
    if ev.entities:
        out += [f"### {label('entities', lang)}", ""]
        detail = entity_detail(ev.entities)
        out += _table(_entity_header(lang, detail), (_entity_values(e, run_dir, lang, detail) for e in ev.entities))
        out.append("")
    loaded = load_lines(run_dir, ev.kpi)
    if loaded:
        out += [f"### {label('under_load', lang)}", "", *(f"- {line}" for line in loaded), ""]
    deviations = deviation_lines(ev, results, lang)
    if deviations:
        out += [f"### {label('deviations', lang)}", "", *(f"- {line}" for line in deviations), ""]
    kpi_rows = results.filter(kpi=ev.kpi)
    groups = kpi_rows.summaries()
    if groups:
        out += [f"### {label('measurements', lang)}", ""]
        out += _table(_group_header(lang), (_group_values(g) for g in groups))
        out.append("")
    lines = _not_ok_lines(kpi_rows)
    if lines:
        out += [f"### {label('blocked_section', lang)}", "", *(f"- {line}" for line in lines), ""]
    heading, skipped = not_in_mode(run_dir, ev.kpi, lang)
    if skipped:
        out += [f"### {heading}", "", *(f"- {line}" for line in skipped), ""]
    out += [f"### {label('evidence', lang)}", ""]
    out += [f"- {_link(p, run_dir, lang)}" for p in ev.evidence] or [f"- {label('none_recorded', lang)}"]
    out.append("")
    out += _provenance(kpi_rows, lang)
    return out


def _not_ok_lines(rows: Results) -> list[str]:
    """One line per reason: rows that share a status, metric and note are listed together, so a
    reason that blocks several rows (a missing model on two targets) is printed once."""
    bad = rows.df[rows.df["status"] != "ok"]
    groups: dict[tuple[str, str, str], list[str]] = {}
    for r in _records(bad):
        note = " ".join(str(r["note"]).split()) or "no note"
        labels = groups.setdefault((str(r["status"]), str(r["metric"]), note), [])
        label = row_label(r)
        if label and label not in labels:
            labels.append(label)
    return sorted(
        f"{status}: {metric}{' ' + ', '.join(sorted(labels)) if labels else ''} — {note}"
        for (status, metric, note), labels in groups.items()
    )


def _provenance(rows: Results, lang: Lang = "en") -> list[str]:
    df = rows.df
    out = [f"### {label('provenance', lang)}", ""]
    for key, col in _PROVENANCE_COLUMNS:
        vals = _unique(str(v) for v in df[col].tolist())
        out.append(f"- {label(key, lang)}: {', '.join(_code(v) for v in vals) if vals else '—'}")
    idents = _identities(df)
    out.append(f"- {label('targets', lang)}: {', '.join(_code(v) for v in idents) if idents else '—'}")
    out.append(f"- {label('harness', lang)}: {_harness_versions(rows, lang)}")
    commands = _commands(df)
    if commands:
        out += [f"- {label('commands', lang)}:", "", *("  " + line for line in _fence(commands))]
    out.append("")
    return out


def write_report(
    run_dir: str | Path,
    evaluations: Sequence[Evaluation],
    results: Results,
    *,
    lang: Lang = "en",
    links_from: Path | None = None,
    build_notes: str = "",
) -> Path:
    """Render report.md (report.<lang>.md) into the run directory atomically; returns its path."""
    d = Path(run_dir)
    text = render_markdown(
        evaluations,
        results,
        run_id=_run_id(links_from or d, results),
        run_dir=links_from or d,
        lang=lang,
        build_notes=build_notes,
    )
    return atomic_write_text(d / report_name(lang, "md"), text)
