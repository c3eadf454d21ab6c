"""report.html (and report.ko.html): one self-contained page with the plots, for evaluators."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final
from urllib.parse import quote

from harness.core.fsio import atomic_write_text
from harness.report.markdown import _not_ok_lines
from harness.report.plots import Plot
from harness.report.text import (
    _PROVENANCE_COLUMNS,
    Lang,
    _cell_header,
    _cell_values,
    _commands,
    _decimals,
    _entity_header,
    _fmt,
    _group_header,
    _group_values,
    _harness_list,
    _identities,
    _kpi_titles,
    _per_workload_title,
    _reason,
    _row_counts,
    _run_id,
    _target,
    _unique,
    _what,
    beside_lines,
    deviation_lines,
    entity_detail,
    fmt_headline,
    interval_text,
    label,
    load_lines,
    not_in_mode,
    report_name,
    tier_lines,
    unit_label,
)
from harness.results.judgement import Evaluation, Verdict
from harness.results.store import Results

# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

# The page's style sheet is package data beside this module, inlined so the page is self-contained.
_CSS: Final = (Path(__file__).with_name("report.css")).read_text(encoding="utf-8")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _badge(verdict: Verdict, lang: Lang, *, big: bool = False) -> str:
    cls = f"badge v-{verdict.value}{' big' if big else ''}"
    return f'<span class="{cls}" title="{_e(verdict.value)}">{_e(label(verdict.value, lang))}</span>'


def _chips(fidelities: Iterable[str], lang: Lang) -> str:
    chips = [f'<span class="chip f-{_e(f)}">{_e(label(f, lang))}</span>' for f in fidelities]
    return "".join(chips) or "—"


def _html_table(
    header: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Iterable[int] = (), raw: Iterable[int] = ()
) -> str:
    """A table; columns in `numeric` right-aligned, cells in `raw` columns already HTML."""
    num, rawc = set(numeric), set(raw)
    head = "".join(f'<th class="num">{_e(h)}</th>' if i in num else f"<th>{_e(h)}</th>" for i, h in enumerate(header))
    body = []
    for row in rows:
        cells = []
        for i, x in enumerate(row):
            content = x if i in rawc else _e(x)
            cells.append(f'<td class="num">{content}</td>' if i in num else f"<td>{content}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _html_link(path: str, run_dir: Path, lang: Lang) -> str:
    missing = "" if (run_dir / path).exists() else f' <span class="missing">({_e(label("not_found", lang))})</span>'
    return f'<a href="{_e(quote(path))}">{_e(path)}</a>{missing}'


def _value_cell(ev: Evaluation, lang: Lang) -> str:
    return fmt_headline(ev, lang)


def _html_summary(evaluations: Sequence[Evaluation], lang: Lang) -> str:
    rows = []
    for ev in evaluations:
        title = f'<a href="#kpi-{_e(ev.kpi)}">{_e(_kpi_titles(ev, lang)[0])}</a>'
        rows.append(
            [
                str(ev.number),
                title,
                _target(ev, lang),
                _value_cell(ev, lang),
                unit_label(ev),
                _chips(ev.fidelity, lang),
                _badge(ev.verdict, lang),
            ]
        )
    header = [
        "#",
        label("kpi", lang),
        label("target", lang),
        label("value_ci", lang),
        label("unit", lang),
        label("fidelity", lang),
        label("verdict", lang),
    ]
    return f'<div class="summary">{_html_table(header, rows, numeric=(0, 3), raw=(1, 5, 6))}</div>'


def _html_cells(ev: Evaluation, lang: Lang) -> str:
    first = ev.per_workload[0]
    rows = []
    for c in ev.per_workload:
        values = _cell_values(c)
        values[2] = _chips([c.fidelity], lang)
        values[-1] = f'<span class="side-{_e(c.side.replace(" ", "-"))}">{_e(c.side)}</span>'
        rows.append([v if i in (2, 9) else _e(v) for i, v in enumerate(values)])
    table = _html_table(
        _cell_header(first, lang), rows, numeric=(4, 5, 6, 7, 8), raw=range(len(rows[0]) if rows else 0)
    )
    title = _e(_per_workload_title(ev.per_workload, lang))
    return f'<h3>{title}</h3>{table}<p class="note">{_e(label("side_note", lang))}</p>'


def _html_provenance(rows: Results, lang: Lang) -> str:
    df = rows.df
    items = []
    for key, col in _PROVENANCE_COLUMNS:
        vals = _unique(str(v) for v in df[col].tolist())
        items.append((label(key, lang), " ".join(f"<code>{_e(v)}</code>" for v in vals) or "—"))
    pretty_idents: set[str] = set()
    for text in _identities(df):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = text
        if isinstance(data, dict):
            # The load average changes per row; the machine does not. One line per machine.
            pretty_idents.add(", ".join(f"{k}={v}" for k, v in sorted(data.items()) if k != "load"))
        else:
            pretty_idents.add(text)
    idents = [f"<code>{_e(x)}</code>" for x in sorted(pretty_idents)]
    items.append((label("targets", lang), "<br>".join(idents) or "—"))
    harness_items = [f"<code>{_e(v)}</code>{f' ({_e(n)})' if n else ''}" for v, n in _harness_list(rows, lang)]
    items.append((label("harness", lang), ", ".join(harness_items) or "—"))
    commands = _commands(df)
    if commands:
        items.append((label("commands", lang), f"<pre>{_e(chr(10).join(commands))}</pre>"))
    body = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<h3>{_e(label("provenance", lang))}</h3><dl class="prov">{body}</dl>'


def _html_section(ev: Evaluation, results: Results, run_dir: Path, plots: Sequence[Plot], lang: Lang) -> str:
    main, second = _kpi_titles(ev, lang)
    out = [
        f'<section class="card kpi v-{_e(ev.verdict.value)}-l" id="kpi-{_e(ev.kpi)}">',
        '<div class="khead"><div class="t">'
        f'<span class="num">{ev.number}</span><div><h2>{_e(main)}</h2>'
        f'<div class="sub">{_e(ev.kpi)}{" · " + _e(second) if second else ""}</div></div></div>'
        f"{_badge(ev.verdict, lang, big=True)}</div>",
    ]
    if math.isnan(ev.value):
        none = label("no_value", lang).format(what=_what(ev), n=ev.n)
        value = f'<div class="big">—</div><div class="ci">{_e(none)}</div>'
    else:
        d = _decimals([ev.value, ev.ci_low, ev.ci_high])
        ci = "" if ev.unit == "count" else interval_text(ev.interval, ev.ci_low, ev.ci_high, lang, d)
        value = (
            f'<div class="big">{_e(_fmt(ev.value, d))} <small>{_e(ev.unit)}</small></div>'
            f'<div class="ci">{_e(_what(ev))}{" · " + _e(ci) if ci else ""} · n = {ev.n}</div>'
        )
    facts = [
        (label("Target", lang), f'<div class="v">{_e(_target(ev, lang))}</div>'),
        (label("Value", lang), value),
        (label("Fidelity", lang), f'<div class="v">{_chips(ev.fidelity, lang)}</div>'),
    ]
    if ev.with_evidence or ev.without_evidence:
        facts.append((label("with_evidence", lang), f'<div class="v">{_e(", ".join(ev.with_evidence) or "—")}</div>'))
        facts.append(
            (label("without_evidence", lang), f'<div class="v">{_e(", ".join(ev.without_evidence) or "—")}</div>')
        )
    if ev.blocked:
        facts.append((label("blocked_rows", lang), f'<div class="v">{ev.blocked}</div>'))
    out.append(
        '<div class="facts">'
        + "".join(f'<div class="fact"><div class="k">{_e(k)}</div>{v}</div>' for k, v in facts)
        + "</div>"
    )
    out.append(f'<div class="reason"><b>{_e(label("reason", lang))}:</b> {_e(_reason(ev, lang))}</div>')
    if ev.notes:
        out.append(f'<div class="reason"><b>{_e(label("notes", lang))}:</b> {_e("; ".join(ev.notes))}</div>')
    for line in tier_lines(ev, lang):
        out.append(f'<div class="reason"><b>{_e(label("tiers", lang))}:</b> {_e(line)}</div>')
    loaded = load_lines(run_dir, ev.kpi)
    if loaded:
        items = "".join(f"<li>{_e(x)}</li>" for x in loaded)
        out.append(f'<div class="reason"><b>{_e(label("under_load", lang))}:</b><ul>{items}</ul></div>')
    deviations = deviation_lines(ev, results, lang)
    if deviations:
        items = "".join(f"<li>{_e(x)}</li>" for x in deviations)
        out.append(f'<div class="reason"><b>{_e(label("deviations", lang))}:</b><ul>{items}</ul></div>')
    for line in beside_lines(ev, lang):
        out.append(f'<div class="reason"><b>{_e(label("beside", lang))}:</b> {_e(line)}</div>')
    for p in plots:
        out.append(
            f'<figure><img src="{_e(quote(p.path))}" alt="{_e(p.caption)}" loading="lazy">'
            f"<figcaption>{_e(p.caption)}</figcaption></figure>"
        )
    if ev.per_workload:
        out.append(_html_cells(ev, lang))
    if ev.entities:
        rows_html = []
        detail = entity_detail(ev.entities)
        for e in ev.entities:
            name = e.name if e.listed else f"{e.name} ({label('extra', lang)})"
            css = e.result.replace(",", "").replace(" ", "-")
            badge = f'<span class="res res-{_e(css)}">{_e(label(e.result, lang))}</span>'
            rows_html.append(
                [
                    _e(name),
                    badge,
                    *([_e(e.tier or "—"), _e(e.check or "—")] if detail else []),
                    _e(f"{e.passes} of {e.runs}" if e.runs else "—"),
                    _chips([e.fidelity], lang) if e.fidelity else "—",
                    _e(e.where or "—"),
                    _html_link(e.log, run_dir, lang) if e.log else "—",
                ]
            )
        out.append(
            f"<h3>{_e(label('entities', lang))}</h3>"
            + _html_table(_entity_header(lang, detail), rows_html, raw=range(8 if detail else 6))
        )
    kpi_rows = results.filter(kpi=ev.kpi)
    groups = kpi_rows.summaries()
    if groups:
        rows = [_group_values(g) for g in groups]
        for r in rows:
            r[4] = _chips([r[4]], lang)
        table = _html_table(
            _group_header(lang),
            [[v if i == 4 else _e(v) for i, v in enumerate(r)] for r in rows],
            numeric=(6, 7, 9),
            raw=range(10),
        )
        # Every group of every metric is long; the comparison above is what decides, so fold it.
        out.append(
            f"<h3>{_e(label('measurements', lang))}</h3><details><summary>{len(groups)} × "
            f"{_e(label('median_ci', lang))}</summary>{table}</details>"
        )
    lines = _not_ok_lines(kpi_rows)
    if lines:
        out.append(
            f"<h3>{_e(label('blocked_section', lang))}</h3><ul>" + "".join(f"<li>{_e(x)}</li>" for x in lines) + "</ul>"
        )
    heading, skipped = not_in_mode(run_dir, ev.kpi, lang)
    if skipped:
        out.append(f"<h3>{_e(heading)}</h3><ul>" + "".join(f"<li>{_e(x)}</li>" for x in skipped) + "</ul>")
    out.append(f"<h3>{_e(label('evidence', lang))}</h3>")
    if ev.evidence:
        links = "".join(f"<li>{_html_link(p, run_dir, lang)}</li>" for p in ev.evidence)
        out.append(
            f"<details><summary>{len(ev.evidence)} {_e(label('logs', lang))}</summary>"
            f'<ul class="logs">{links}</ul></details>'
        )
    else:
        out.append(f'<p class="note">{_e(label("none_recorded", lang))}</p>')
    out.append(_html_provenance(kpi_rows, lang))
    out.append("</section>")
    return "\n".join(out)


def render_html(
    evaluations: Sequence[Evaluation],
    results: Results,
    *,
    run_id: str,
    run_dir: str | Path,
    lang: Lang = "en",
    plots: Mapping[str, Sequence[Plot]] | None = None,
    plot_note: str = "",
    build_notes: str = "",
) -> str:
    """The whole report as one self-contained HTML page (inline CSS; images are files beside it)."""
    d = Path(run_dir)
    df = results.df
    plots = plots or {}
    meta = [
        f"<span>{_e(label('run', lang))} <b>{_e(run_id)}</b></span>",
        f"<span>{_e(label('rows', lang))}: <b>{len(df)}</b> ({_e(_row_counts(df, lang))})</span>",
    ]
    if len(df):
        meta.append(
            f"<span>{_e(label('measured', lang))}: {_e(min(df['time'].tolist()))} … "
            f"{_e(max(df['time'].tolist()))}</span>"
        )
    harness_items = [f"{_e(v)}{f' ({_e(n)})' if n else ''}" for v, n in _harness_list(results, lang)]
    meta.append(f"<span>{_e(label('harness', lang))}: {', '.join(harness_items) or '—'}</span>")
    counts: dict[Verdict, int] = {}
    for ev in evaluations:
        counts[ev.verdict] = counts.get(ev.verdict, 0) + 1
    strip = "".join(
        f'<span class="badge v-{v.value}">{n} × {_e(label(v.value, lang))}</span>' for v, n in counts.items()
    )
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{lang}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(label('report', lang))} — {_e(run_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<header><h1>{_e(label("report", lang))}</h1><div class="meta">{"".join(meta)}</div></header>',
        "<main>",
        f'<section class="card"><h2>{_e(label("summary", lang))}</h2>',
        f'<div class="counts" style="margin-top:10px">{strip}</div>',
        _html_summary(evaluations, lang),
        f'<p class="legend"><b>{_e(label("fidelity_legend", lang))}:</b> {_e(label("legend", lang))}</p>',
    ]
    if plot_note:
        parts.append(f'<p class="note">{_e(label("plots_missing", lang).format(why=plot_note))}</p>')
    parts.append("</section>")
    for ev in evaluations:
        parts.append(_html_section(ev, results, d, plots.get(ev.kpi, ()), lang))
    if build_notes:
        parts.append(_build_notes_html(build_notes, lang))
    parts += ["</main></body></html>", ""]
    return "\n".join(parts)


def _build_notes_html(markdown: str, lang: Lang) -> str:
    """The build notes (Markdown of buildnotes.build_notes_markdown) as a card of lists."""
    out = [f'<section class="card"><h2>{_e(label("build_notes", lang))}</h2>']
    items: list[str] = []

    def flush() -> None:
        if items:
            out.append("<ul>" + "".join(f"<li>{_e(x)}</li>" for x in items) + "</ul>")
            items.clear()

    for line in markdown.splitlines()[1:]:
        if line.startswith("### "):
            flush()
            out.append(f"<h3>{_e(line[4:])}</h3>")
        elif line.startswith("- "):
            items.append(line[2:].replace("`", ""))
        elif line.strip():
            flush()
            out.append(f'<p class="note">{_e(line)}</p>')
    flush()
    return "".join(out) + "</section>"


def write_html_report(
    run_dir: str | Path,
    evaluations: Sequence[Evaluation],
    results: Results,
    *,
    lang: Lang = "en",
    plots: Mapping[str, Sequence[Plot]] | None = None,
    plot_note: str = "",
    links_from: Path | None = None,
    build_notes: str = "",
) -> Path:
    """Render report.html (report.<lang>.html) into the run directory atomically; returns its path."""
    d = Path(run_dir)
    src = links_from or d
    text = render_html(
        evaluations,
        results,
        run_id=_run_id(src, results),
        run_dir=src,
        lang=lang,
        plots=plots,
        plot_note=plot_note,
        build_notes=build_notes,
    )
    return atomic_write_text(d / report_name(lang, "html"), text)
