"""The report: a rich console view, a Markdown file and an HTML page of evaluations and provenance.

Numbers come from the result object and the evaluations; this module only lays them out.
"""

from __future__ import annotations

import html
import json
import math
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final, Literal, get_args
from urllib.parse import quote

import pandas as pd
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from harness.core.fsio import atomic_write_text
from harness.errors import BadInput
from harness.report.plots import Plot
from harness.results.statistics import Summary
from harness.results.store import GroupSummary, Results
from harness.results.verdicts import EntityEvidence, Evaluation, Verdict, WorkloadComparison

REPORT_NAME: Final = "report.md"

VERDICT_STYLES: Final[dict[Verdict, str]] = {
    Verdict.PASS: "bold green",
    Verdict.FAIL: "bold red",
    Verdict.INCONCLUSIVE: "bold yellow",
    Verdict.BLOCKED: "bold magenta",
    Verdict.NO_VERDICT: "cyan",
}

Lang = Literal["en", "ko"]
LANGS: Final[tuple[str, ...]] = get_args(Lang)

# Every fixed word of the report per language; KPI titles come from kpis.toml, reasons stay as
# the statistics wrote them (they quote metric names and numbers).
LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "report": "ANT KPI report", "run": "run", "summary": "Summary", "kpi": "KPI",
        "target": "target", "value_ci": "value [95 % CI]", "unit": "unit", "fidelity": "fidelity",
        "verdict": "verdict", "rows": "Rows", "measured": "Measured", "harness": "Harness",
        "fidelity_legend": "Fidelity", "Target": "Target", "Value": "Value", "Fidelity": "Fidelity",
        "Verdict": "Verdict", "with_evidence": "With evidence", "without_evidence": "Without evidence",
        "blocked_rows": "Blocked or failed rows", "per_workload": "per workload",
        "measurements": "Measurements", "blocked_section": "Blocked and failed rows",
        "evidence": "Evidence", "provenance": "Provenance", "source_commits": "Source commits",
        "image_digests": "Image digests", "artefacts": "Artefact sha256", "targets": "Targets",
        "commands": "Commands", "metric": "metric", "workload": "workload", "variant": "variant",
        "mode": "mode", "n": "n", "median_ci": "median [CI]", "not_ok": "not ok",
        "ci_side": "CI side", "none_recorded": "none recorded", "plots": "Plots",
        "reason": "reason", "no_value": "no value for {what} ({n} usable row(s))",
        "value_line": "{what} = {value} {unit} (95 % CI {ci}; {n} row(s))",
        "not_found": "not found in the run directory", "dirty": "dirty tree",
        "dirty_some": "dirty tree in {n} of {total} rows", "logs": "log(s)",
        "plots_missing": "plots not drawn: {why}", "generated": "rows measured",
        "ok": "ok", "blocked": "blocked", "failed": "failed",
        "legend": ("board = measured on the board; simulator = an NPU or hardware simulator; "
                   "emulated = QEMU user mode (proves the steps run, never a timing or memory "
                   "verdict); host = natively on the harness machine; static = read from the "
                   "artefact itself"),
        "side_note": ("CI side: good = the whole 95 % CI is better than the baseline, bad = none "
                      "of it is, straddles = it crosses no change; each row keeps its own fidelity."),
        "PASS": "PASS", "FAIL": "FAIL", "INCONCLUSIVE": "INCONCLUSIVE", "BLOCKED": "BLOCKED",
        "NO_VERDICT": "NO_VERDICT",
        "board": "board", "simulator": "simulator", "emulated": "emulated", "host": "host",
        "static": "static",
        "entities": "Evidence per listed entry", "entity": "entry", "result": "result",
        "where": "measured on", "log": "log", "passed": "passed", "passed, not counted": "passed, not counted",
        "failed, not counted": "failed, not counted",
        "no evidence": "no evidence", "listed": "listed", "extra": "not listed",
    },
    "ko": {
        "report": "ANT KPI 평가 보고서", "run": "실행", "summary": "요약", "kpi": "KPI",
        "target": "목표", "value_ci": "측정값 [95 % 신뢰구간]", "unit": "단위", "fidelity": "측정 방식",
        "verdict": "판정", "rows": "결과 행", "measured": "측정 시각", "harness": "하네스",
        "fidelity_legend": "측정 방식", "Target": "목표", "Value": "측정값", "Fidelity": "측정 방식",
        "Verdict": "판정", "with_evidence": "증거 있음", "without_evidence": "증거 없음",
        "blocked_rows": "차단 또는 실패한 행", "per_workload": "워크로드별",
        "measurements": "측정 결과", "blocked_section": "차단 및 실패한 행",
        "evidence": "증거 자료", "provenance": "출처 정보", "source_commits": "소스 커밋",
        "image_digests": "이미지 다이제스트", "artefacts": "산출물 sha256", "targets": "대상 장치",
        "commands": "실행 명령", "metric": "지표", "workload": "워크로드", "variant": "변형",
        "mode": "모드", "n": "n", "median_ci": "중앙값 [신뢰구간]", "not_ok": "비정상",
        "ci_side": "신뢰구간 위치", "none_recorded": "기록 없음", "plots": "그래프",
        "reason": "근거", "no_value": "{what} 값 없음 (사용 가능한 행 {n}개)",
        "value_line": "{what} = {value} {unit} (95 % 신뢰구간 {ci}; {n}개 행)",
        "not_found": "실행 디렉터리에 없음", "dirty": "커밋되지 않은 변경 있음",
        "dirty_some": "{total}개 행 중 {n}개에 커밋되지 않은 변경", "logs": "개 로그",
        "plots_missing": "그래프 없음: {why}", "generated": "측정 구간",
        "ok": "정상", "blocked": "차단", "failed": "실패",
        "legend": ("보드 = 실제 보드에서 측정; 시뮬레이터 = NPU 또는 하드웨어 시뮬레이터; "
                   "에뮬레이션 = QEMU 사용자 모드 (단계가 동작함을 보일 뿐, 시간·메모리 판정에는 "
                   "쓰지 않음); 호스트 = 하네스 장비에서 직접 실행; 정적 = 산출물 자체에서 읽음"),
        "side_note": ("신뢰구간 위치: good = 95 % 신뢰구간 전체가 기준보다 좋음, bad = 전혀 좋지 "
                      "않음, straddles = 변화 없음(0)을 가로지름; 각 행은 자신의 측정 방식을 유지합니다."),
        "PASS": "통과", "FAIL": "실패", "INCONCLUSIVE": "판정 보류", "BLOCKED": "차단됨",
        "NO_VERDICT": "판정 없음",
        "board": "보드", "simulator": "시뮬레이터", "emulated": "에뮬레이션", "host": "호스트",
        "static": "정적",
        "entities": "항목별 증거", "entity": "항목", "result": "결과",
        "where": "측정 장치", "log": "로그", "passed": "통과", "passed, not counted": "통과 (집계 제외)",
        "failed, not counted": "실패 (집계 제외)",
        "no evidence": "증거 없음", "listed": "목록", "extra": "목록 외",
    },
}


def _target(ev: Evaluation, lang: Lang) -> str:
    return ev.target_ko if lang == "ko" and ev.target_ko else ev.target


def _reason(ev: Evaluation, lang: Lang) -> str:
    return ev.reason_ko if lang == "ko" and ev.reason_ko else ev.reason


def label(key: str, lang: Lang = "en") -> str:
    """A fixed word of the report in `lang` (English when the language lacks it)."""
    return LABELS.get(lang, LABELS["en"]).get(key, LABELS["en"].get(key, key))


def check_lang(lang: str) -> Lang:
    """`lang` if the report speaks it; BadInput otherwise."""
    if lang not in LANGS:
        raise BadInput(f"report language {lang!r} is not one of {', '.join(LANGS)}")
    return lang  # type: ignore[return-value]



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


def _title(ev: Evaluation, lang: Lang = "en") -> str:
    if lang == "ko" and ev.title_ko:
        return f"{ev.title_ko} ({ev.title_en})"
    return f"{ev.title_en} ({ev.title_ko})" if ev.title_ko else ev.title_en


def _fidelity(ev: Evaluation, lang: Lang = "en") -> str:
    return ", ".join(label(f, lang) for f in ev.fidelity) or "—"


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


def _cell_header(first: WorkloadComparison, lang: Lang = "en") -> list[str]:
    median = label("median_ci", lang)
    return [label("target", lang), label("workload", lang), label("fidelity", lang), label("mode", lang),
            f"n {first.baseline}", f"{first.baseline} {median}", f"n {first.candidate}",
            f"{first.candidate} {median}", f"{first.statistic} [CI]", label("ci_side", lang)]


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


def _group_header(lang: Lang = "en") -> list[str]:
    return [label(k, lang) for k in ("metric", "target", "workload", "variant", "fidelity", "mode", "n",
                                     "median_ci", "unit", "not_ok")]


def _group_values(g: GroupSummary) -> list[str]:
    s = g.summary
    return [
        g.metric, g.target or "—", g.workload or "—", g.variant, g.fidelity, g.mode,
        str(s.n) if s else "0", _fmt_summary(s), g.unit, str(g.not_ok),
    ]


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def report_name(lang: Lang = "en", ext: str = "md") -> str:
    """report.md / report.html in English; report.<lang>.<ext> otherwise, so both can sit together."""
    return f"report.{ext}" if lang == "en" else f"report.{lang}.{ext}"


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


def _link(path: str, run_dir: Path, lang: Lang = "en") -> str:
    text = path.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    exists = (run_dir / path).exists()
    return f"[{text}]({quote(path)})" + ("" if exists else f" ({label('not_found', lang)})")


def _unique(values: Iterable[str]) -> list[str]:
    return sorted({v for v in values if v})


def _row_counts(df: pd.DataFrame, lang: Lang) -> str:
    statuses = df["status"].value_counts().to_dict()
    return ", ".join(f"{statuses.get(s, 0)} {label(s, lang)}" for s in ("ok", "blocked", "failed"))


def render_markdown(
    evaluations: Sequence[Evaluation], results: Results, *, run_id: str, run_dir: str | Path,
    lang: Lang = "en",
) -> str:
    """The whole report as Markdown: a summary table, then one section per KPI."""
    d = Path(run_dir)
    df = results.df
    out = [f"# {label('report', lang)} — {label('run', lang)} {_code(run_id)}", ""]
    out += _table(
        ["#", label("kpi", lang), label("target", lang), label("value_ci", lang), label("unit", lang),
         label("fidelity", lang), label("verdict", lang)],
        ([str(ev.number), _title(ev, lang), _target(ev, lang), fmt_value(ev.value, ev.ci_low, ev.ci_high),
          ev.unit, _fidelity(ev, lang), f"**{label(ev.verdict.value, lang)}**"] for ev in evaluations),
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
    return "\n".join(out).rstrip("\n") + "\n"


def _harness_list(results: Results, lang: Lang) -> list[tuple[str, str]]:
    df = results.df
    parts = []
    for version in _unique(str(v) for v in df["harness_version"].tolist()):
        dirty = df[df["harness_version"] == version]["harness_dirty"]
        n_dirty = int(dirty.sum())
        if n_dirty == len(dirty):
            note = label("dirty", lang)
        elif n_dirty:
            note = label("dirty_some", lang).format(n=n_dirty, total=len(dirty))
        else:
            note = ""
        parts.append((version, note))
    return parts


def _harness_versions(results: Results, lang: Lang = "en") -> str:
    parts = [f"{_code(v)}{f' ({note})' if note else ''}" for v, note in _harness_list(results, lang)]
    return ", ".join(parts) or "—"


def _what(ev: Evaluation) -> str:
    return f"{ev.statistic} of {ev.metric}" if ev.statistic else ev.metric


def _value_line(ev: Evaluation, lang: Lang) -> str:
    if math.isnan(ev.value):
        return label("no_value", lang).format(what=_what(ev), n=ev.n)
    d = _decimals([ev.value, ev.ci_low, ev.ci_high])
    ci = f"[{_fmt(ev.ci_low, d)}, {_fmt(ev.ci_high, d)}]"
    return label("value_line", lang).format(what=_what(ev), value=_fmt(ev.value, d), unit=ev.unit, ci=ci, n=ev.n)


def _kpi_titles(ev: Evaluation, lang: Lang) -> tuple[str, str]:
    """(main title, second title) of a KPI section in `lang`."""
    if lang == "ko" and ev.title_ko:
        return ev.title_ko, ev.title_en
    return ev.title_en, ev.title_ko


def _per_workload_title(first: WorkloadComparison, lang: Lang) -> str:
    return (f"{first.statistic} {label('per_workload', lang)}: {first.candidate} vs {first.baseline} "
            f"({first.metric})")


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
    if ev.blocked:
        out.append(f"- **{label('blocked_rows', lang)}:** {ev.blocked}")
    out.append("")
    if ev.per_workload:
        first = ev.per_workload[0]
        out += [f"### {_per_workload_title(first, lang)}", ""]
        out += _table(_cell_header(first, lang), (_cell_values(c) for c in ev.per_workload))
        out += ["", label("side_note", lang), ""]
    if ev.entities:
        out += [f"### {label('entities', lang)}", ""]
        out += _table(_entity_header(lang), (_entity_values(e, run_dir, lang) for e in ev.entities))
        out.append("")
    kpi_rows = results.filter(kpi=ev.kpi)
    groups = kpi_rows.summaries()
    if groups:
        out += [f"### {label('measurements', lang)}", ""]
        out += _table(_group_header(lang), (_group_values(g) for g in groups))
        out.append("")
    lines = _not_ok_lines(kpi_rows)
    if lines:
        out += [f"### {label('blocked_section', lang)}", "", *(f"- {line}" for line in lines), ""]
    out += [f"### {label('evidence', lang)}", ""]
    out += [f"- {_link(p, run_dir, lang)}" for p in ev.evidence] or [f"- {label('none_recorded', lang)}"]
    out.append("")
    out += _provenance(kpi_rows, lang)
    return out


def _entity_header(lang: Lang) -> list[str]:
    return [label(k, lang) for k in ("entity", "result", "fidelity", "where", "log")]


def _entity_values(e: EntityEvidence, run_dir: Path, lang: Lang) -> list[str]:
    name = e.name if e.listed else f"{e.name} ({label('extra', lang)})"
    fid = label(e.fidelity, lang) if e.fidelity else "—"
    return [name, label(e.result, lang), fid, e.where or "—", _link(e.log, run_dir, lang) if e.log else "—"]


def _not_ok_lines(rows: Results) -> list[str]:
    bad = rows.df[rows.df["status"] != "ok"]
    return sorted({
        f"{r['status']}: {r['metric']} {r['variant']}"
        f"{'/' + str(r['workload']) if r['workload'] else ''}"
        f"{' on ' + str(r['target']) if r['target'] else ''} — "
        f"{' '.join(str(r['note']).split()) or 'no note'}"
        for r in bad.to_dict("records")
    })


_PROVENANCE_COLUMNS: Final = (("source_commits", "source_commit"), ("image_digests", "image_digest"),
                              ("artefacts", "artefact_sha256"))


def _commands(df: pd.DataFrame) -> list[str]:
    commands = []
    for text in _unique(str(v) for v in df["argv"].tolist()):
        argv = json.loads(text)
        if argv:
            commands.append(shlex.join(str(a) for a in argv))
    return sorted(commands)


def _identities(df: pd.DataFrame) -> list[str]:
    return _unique(str(v) for v in df["target_identity"].tolist() if str(v) != "{}")


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


def _run_id(run_dir: Path, results: Results) -> str:
    ids = _unique(str(v) for v in results.df["run_id"].tolist())
    return ids[0] if len(ids) == 1 else run_dir.name


def write_report(
    run_dir: str | Path, evaluations: Sequence[Evaluation], results: Results, *, lang: Lang = "en",
    links_from: Path | None = None,
) -> Path:
    """Render report.md (report.<lang>.md) into the run directory atomically; returns its path."""
    d = Path(run_dir)
    text = render_markdown(evaluations, results, run_id=_run_id(links_from or d, results), run_dir=links_from or d,
                           lang=lang)
    return atomic_write_text(d / report_name(lang, "md"), text)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_CSS: Final = """
:root{--ink:#1d2330;--muted:#5b6472;--line:#e3e6eb;--bg:#f4f6f8;--card:#fff;
--pass:#1a7f37;--fail:#cf222e;--inc:#b35900;--blocked:#8250df;--nov:#4a6078}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);line-height:1.45;font-size:14px;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK KR",
"Apple SD Gothic Neo","Malgun Gothic",sans-serif}
header{background:#1d2a3a;color:#fff;padding:22px 32px 18px}
header h1{margin:0 0 6px;font-size:22px;font-weight:650}
header .meta{display:flex;flex-wrap:wrap;gap:6px 18px;color:#c9d3df;font-size:13px}
header .meta b{color:#fff;font-weight:600}
main{max-width:1320px;margin:0 auto;padding:20px 24px 48px}
h2{font-size:17px;margin:0}
h3{font-size:14px;margin:22px 0 8px;color:#2b3442}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 20px;
margin:18px 0;box-shadow:0 1px 2px rgba(16,24,40,.04)}
.counts{display:flex;gap:8px;flex-wrap:wrap;margin:0 0 12px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f7f8fa;font-weight:600;color:#3b4452;vertical-align:bottom}
tbody tr:hover{background:#fafbfc}
td{white-space:nowrap}.summary td{white-space:normal}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.num{white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-weight:700;font-size:12px;
letter-spacing:.02em;color:#fff;white-space:nowrap}
.badge.big{font-size:14px;padding:4px 14px}
.v-PASS{background:var(--pass)}.v-FAIL{background:var(--fail)}.v-INCONCLUSIVE{background:var(--inc)}
.v-BLOCKED{background:var(--blocked)}.v-NO_VERDICT{background:var(--nov)}
.chip{display:inline-block;padding:1px 8px;border-radius:6px;font-size:12px;border:1px solid;
margin:0 4px 2px 0;white-space:nowrap}
.res{font-weight:600}.res-passed{color:var(--pass)}.res-failed{color:var(--fail)}
.res-blocked{color:var(--blocked)}.res-passed-not-counted,.res-failed-not-counted{color:#9a4a00}
.res-no-evidence{color:#8a8f98}
.f-board{color:#1a7f37;border-color:#a7d8b5;background:#eefaf1}
.f-simulator{color:#0b6b73;border-color:#9fd6da;background:#ecf8f9}
.f-emulated{color:#9a4a00;border-color:#f0c28e;background:#fff5ea}
.f-host{color:#1f5fa8;border-color:#a9c6ea;background:#eef4fc}
.f-static{color:#555;border-color:#ccc;background:#f5f5f5}
.side-good{color:var(--pass);font-weight:600}.side-bad{color:var(--fail);font-weight:600}
.side-straddles{color:var(--inc);font-weight:600}.side-incomplete{color:var(--muted)}
section.kpi{border-left:6px solid var(--nov)}
section.kpi.v-PASS-l{border-left-color:var(--pass)}section.kpi.v-FAIL-l{border-left-color:var(--fail)}
section.kpi.v-INCONCLUSIVE-l{border-left-color:var(--inc)}
section.kpi.v-BLOCKED-l{border-left-color:var(--blocked)}
.khead{display:flex;align-items:center;gap:14px;justify-content:space-between;flex-wrap:wrap}
.khead .num{display:inline-flex;align-items:center;justify-content:center;width:30px;height:30px;
border-radius:50%;background:#1d2a3a;color:#fff;font-weight:700;margin-right:10px;flex:none}
.khead .t{display:flex;align-items:center}
.khead .sub{color:var(--muted);font-size:13px;font-weight:400}
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:10px;margin:14px 0 6px}
.fact{background:#f7f8fa;border-radius:8px;padding:10px 12px}
.fact .k{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
.fact .v{font-size:15px;font-weight:600;margin-top:2px;overflow-wrap:anywhere}
.fact .big{font-size:24px;font-weight:700;font-variant-numeric:tabular-nums}
.fact .ci{color:var(--muted);font-size:12px;font-variant-numeric:tabular-nums}
.reason{margin:10px 0 0;padding:10px 12px;background:#fbfbfc;border:1px dashed var(--line);
border-radius:8px;color:#2b3442;overflow-wrap:anywhere}
figure{margin:14px 0;text-align:center}
figure img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:8px;background:#fff}
figcaption{font-size:12px;color:var(--muted);margin-top:4px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Noto Sans Mono CJK KR",monospace;
font-size:12px}
code{background:#f1f3f5;border-radius:4px;padding:1px 5px;overflow-wrap:anywhere}
pre{background:#f6f8fa;border:1px solid var(--line);border-radius:8px;padding:10px 12px;
overflow-x:auto;white-space:pre;margin:4px 0}
dl.prov{display:grid;grid-template-columns:max-content 1fr;gap:6px 16px;margin:0}
dl.prov dt{color:var(--muted);font-weight:600}dl.prov dd{margin:0;min-width:0}
details{margin:6px 0}summary{cursor:pointer;color:#1f5fa8;font-weight:600}
ul.logs{columns:2;column-gap:28px;margin:6px 0;padding-left:18px;font-size:12.5px}
ul.logs li{break-inside:avoid;overflow-wrap:anywhere}
a{color:#1f5fa8}.missing{color:var(--fail);font-size:11px}
.note{color:var(--muted);font-size:12.5px}
.legend{font-size:12.5px;color:var(--muted);margin-top:10px}
@media print{body{background:#fff}.card{box-shadow:none;break-inside:avoid}header{background:#fff;color:#000}}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _badge(verdict: Verdict, lang: Lang, *, big: bool = False) -> str:
    cls = f"badge v-{verdict.value}{' big' if big else ''}"
    return f'<span class="{cls}" title="{_e(verdict.value)}">{_e(label(verdict.value, lang))}</span>'


def _chips(fidelities: Iterable[str], lang: Lang) -> str:
    chips = [f'<span class="chip f-{_e(f)}">{_e(label(f, lang))}</span>' for f in fidelities]
    return "".join(chips) or "—"


def _html_table(header: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Iterable[int] = (),
                raw: Iterable[int] = ()) -> str:
    """A table; columns in `numeric` right-aligned, cells in `raw` columns already HTML."""
    num, rawc = set(numeric), set(raw)
    head = "".join(f'<th class="num">{_e(h)}</th>' if i in num else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(header))
    body = []
    for row in rows:
        cells = []
        for i, x in enumerate(row):
            content = x if i in rawc else _e(x)
            cells.append(f'<td class="num">{content}</td>' if i in num else f"<td>{content}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _html_link(path: str, run_dir: Path, lang: Lang) -> str:
    missing = "" if (run_dir / path).exists() else f' <span class="missing">({_e(label("not_found", lang))})</span>'
    return f'<a href="{_e(quote(path))}">{_e(path)}</a>{missing}'


def _value_cell(ev: Evaluation) -> str:
    return fmt_value(ev.value, ev.ci_low, ev.ci_high)


def _html_summary(evaluations: Sequence[Evaluation], lang: Lang) -> str:
    rows = []
    for ev in evaluations:
        title = f'<a href="#kpi-{_e(ev.kpi)}">{_e(_kpi_titles(ev, lang)[0])}</a>'
        rows.append([str(ev.number), title, _target(ev, lang), _value_cell(ev), ev.unit,
                     _chips(ev.fidelity, lang), _badge(ev.verdict, lang)])
    header = ["#", label("kpi", lang), label("target", lang), label("value_ci", lang), label("unit", lang),
              label("fidelity", lang), label("verdict", lang)]
    return f'<div class="summary">{_html_table(header, rows, numeric=(0, 3), raw=(1, 5, 6))}</div>'


def _html_cells(ev: Evaluation, lang: Lang) -> str:
    first = ev.per_workload[0]
    rows = []
    for c in ev.per_workload:
        values = _cell_values(c)
        values[2] = _chips([c.fidelity], lang)
        values[-1] = f'<span class="side-{_e(c.side)}">{_e(c.side)}</span>'
        rows.append([v if i in (2, 9) else _e(v) for i, v in enumerate(values)])
    table = _html_table(_cell_header(first, lang), rows, numeric=(4, 5, 6, 7, 8),
                        raw=range(len(rows[0]) if rows else 0))
    return (f"<h3>{_e(_per_workload_title(first, lang))}</h3>{table}"
            f'<p class="note">{_e(label("side_note", lang))}</p>')


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
    return f"<h3>{_e(label('provenance', lang))}</h3><dl class=\"prov\">{body}</dl>"


def _html_section(ev: Evaluation, results: Results, run_dir: Path, plots: Sequence[Plot], lang: Lang) -> str:
    main, second = _kpi_titles(ev, lang)
    out = [f'<section class="card kpi v-{_e(ev.verdict.value)}-l" id="kpi-{_e(ev.kpi)}">',
           '<div class="khead"><div class="t">'
           f'<span class="num">{ev.number}</span><div><h2>{_e(main)}</h2>'
           f'<div class="sub">{_e(ev.kpi)}{" · " + _e(second) if second else ""}</div></div></div>'
           f"{_badge(ev.verdict, lang, big=True)}</div>"]
    if math.isnan(ev.value):
        none = label("no_value", lang).format(what=_what(ev), n=ev.n)
        value = f'<div class="big">—</div><div class="ci">{_e(none)}</div>'
    else:
        d = _decimals([ev.value, ev.ci_low, ev.ci_high])
        ci = "" if ev.ci_low == ev.ci_high == ev.value else f"95 % CI [{_fmt(ev.ci_low, d)}, {_fmt(ev.ci_high, d)}]"
        value = (f'<div class="big">{_e(_fmt(ev.value, d))} <small>{_e(ev.unit)}</small></div>'
                 f'<div class="ci">{_e(_what(ev))}{" · " + _e(ci) if ci else ""} · n = {ev.n}</div>')
    facts = [
        (label("Target", lang), f'<div class="v">{_e(_target(ev, lang))}</div>'),
        (label("Value", lang), value),
        (label("Fidelity", lang), f'<div class="v">{_chips(ev.fidelity, lang)}</div>'),
    ]
    if ev.with_evidence or ev.without_evidence:
        facts.append((label("with_evidence", lang), f'<div class="v">{_e(", ".join(ev.with_evidence) or "—")}</div>'))
        facts.append((label("without_evidence", lang),
                      f'<div class="v">{_e(", ".join(ev.without_evidence) or "—")}</div>'))
    if ev.blocked:
        facts.append((label("blocked_rows", lang), f'<div class="v">{ev.blocked}</div>'))
    out.append('<div class="facts">' + "".join(f'<div class="fact"><div class="k">{_e(k)}</div>{v}</div>'
                                               for k, v in facts) + "</div>")
    out.append(f'<div class="reason"><b>{_e(label("reason", lang))}:</b> {_e(_reason(ev, lang))}</div>')
    for p in plots:
        out.append(f'<figure><img src="{_e(quote(p.path))}" alt="{_e(p.caption)}" loading="lazy">'
                   f"<figcaption>{_e(p.caption)}</figcaption></figure>")
    if ev.per_workload:
        out.append(_html_cells(ev, lang))
    if ev.entities:
        rows_html = []
        for e in ev.entities:
            name = e.name if e.listed else f"{e.name} ({label('extra', lang)})"
            css = e.result.replace(",", "").replace(" ", "-")
            badge = f'<span class="res res-{_e(css)}">{_e(label(e.result, lang))}</span>'
            rows_html.append([_e(name), badge, _chips([e.fidelity], lang) if e.fidelity else "—",
                              _e(e.where or "—"), _html_link(e.log, run_dir, lang) if e.log else "—"])
        out.append(f"<h3>{_e(label('entities', lang))}</h3>"
                   + _html_table(_entity_header(lang), rows_html, raw=range(5)))
    kpi_rows = results.filter(kpi=ev.kpi)
    groups = kpi_rows.summaries()
    if groups:
        rows = [_group_values(g) for g in groups]
        for r in rows:
            r[4] = _chips([r[4]], lang)
        table = _html_table(_group_header(lang), [[v if i == 4 else _e(v) for i, v in enumerate(r)] for r in rows],
                            numeric=(6, 7, 9), raw=range(10))
        # Every group of every metric is long; the comparison above is what decides, so fold it.
        out.append(f"<h3>{_e(label('measurements', lang))}</h3><details><summary>{len(groups)} × "
                   f"{_e(label('median_ci', lang))}</summary>{table}</details>")
    lines = _not_ok_lines(kpi_rows)
    if lines:
        out.append(f"<h3>{_e(label('blocked_section', lang))}</h3><ul>"
                   + "".join(f"<li>{_e(x)}</li>" for x in lines) + "</ul>")
    out.append(f"<h3>{_e(label('evidence', lang))}</h3>")
    if ev.evidence:
        links = "".join(f"<li>{_html_link(p, run_dir, lang)}</li>" for p in ev.evidence)
        out.append(f"<details><summary>{len(ev.evidence)} {_e(label('logs', lang))}</summary>"
                   f'<ul class="logs">{links}</ul></details>')
    else:
        out.append(f'<p class="note">{_e(label("none_recorded", lang))}</p>')
    out.append(_html_provenance(kpi_rows, lang))
    out.append("</section>")
    return "\n".join(out)


def render_html(
    evaluations: Sequence[Evaluation], results: Results, *, run_id: str, run_dir: str | Path,
    lang: Lang = "en", plots: Mapping[str, Sequence[Plot]] | None = None, plot_note: str = "",
) -> str:
    """The whole report as one self-contained HTML page (inline CSS; images are files beside it)."""
    d = Path(run_dir)
    df = results.df
    plots = plots or {}
    meta = [f"<span>{_e(label('run', lang))} <b>{_e(run_id)}</b></span>",
            f"<span>{_e(label('rows', lang))}: <b>{len(df)}</b> ({_e(_row_counts(df, lang))})</span>"]
    if len(df):
        meta.append(f"<span>{_e(label('measured', lang))}: {_e(min(df['time'].tolist()))} … "
                    f"{_e(max(df['time'].tolist()))}</span>")
    harness_items = [f"{_e(v)}{f' ({_e(n)})' if n else ''}" for v, n in _harness_list(results, lang)]
    meta.append(f"<span>{_e(label('harness', lang))}: {', '.join(harness_items) or '—'}</span>")
    counts: dict[Verdict, int] = {}
    for ev in evaluations:
        counts[ev.verdict] = counts.get(ev.verdict, 0) + 1
    strip = "".join(f'<span class="badge v-{v.value}">{n} × {_e(label(v.value, lang))}</span>'
                    for v, n in counts.items())
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{lang}"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(label('report', lang))} — {_e(run_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<header><h1>{_e(label('report', lang))}</h1><div class=\"meta\">{''.join(meta)}</div></header>",
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
    parts += ["</main></body></html>", ""]
    return "\n".join(parts)


def write_html_report(
    run_dir: str | Path, evaluations: Sequence[Evaluation], results: Results, *, lang: Lang = "en",
    plots: Mapping[str, Sequence[Plot]] | None = None, plot_note: str = "", links_from: Path | None = None,
) -> Path:
    """Render report.html (report.<lang>.html) into the run directory atomically; returns its path."""
    d = Path(run_dir)
    src = links_from or d
    text = render_html(evaluations, results, run_id=_run_id(src, results), run_dir=src, lang=lang, plots=plots,
                       plot_note=plot_note)
    return atomic_write_text(d / report_name(lang, "html"), text)
