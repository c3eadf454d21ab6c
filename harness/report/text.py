"""What every rendering of the report shares: labels in English and Korean, number formats, table cells."""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final, Literal, get_args
from urllib.parse import quote

import pandas as pd

from harness.errors import BadInput
from harness.results.judgement import EntityEvidence, Evaluation, Verdict, WorkloadComparison
from harness.results.statistics import Summary
from harness.results.store import GroupSummary, Results

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
        "report": "ANT KPI report",
        "run": "run",
        "summary": "Summary",
        "kpi": "KPI",
        "target": "target",
        "value_ci": "value (interval)",
        "unit": "unit",
        "fidelity": "fidelity",
        "verdict": "verdict",
        "rows": "Rows",
        "measured": "Measured",
        "harness": "Harness",
        "fidelity_legend": "Fidelity",
        "Target": "Target",
        "Value": "Value",
        "Fidelity": "Fidelity",
        "Verdict": "Verdict",
        "with_evidence": "With evidence",
        "without_evidence": "Without evidence",
        "blocked_rows": "Blocked or failed rows",
        "per_workload": "per workload",
        "measurements": "Measurements",
        "blocked_section": "Blocked and failed rows",
        "beside": "Also measured, each on its own (not pooled with the compared pair, not part of the verdict)",
        "notes": "How the judged value was obtained",
        "not_in_mode": "Not part of this mode ({mode}): never run, not counted as blocked",
        "evidence": "Evidence",
        "provenance": "Provenance",
        "source_commits": "Source commits",
        "image_digests": "Image digests",
        "artefacts": "Artefact sha256",
        "targets": "Targets",
        "commands": "Commands",
        "metric": "metric",
        "workload": "workload",
        "variant": "variant",
        "mode": "mode",
        "n": "n",
        "median_ci": "median [CI]",
        "not_ok": "not ok",
        "ci_side": "CI side",
        "none_recorded": "none recorded",
        "plots": "Plots",
        "reason": "reason",
        "no_value": "no value for {what} ({n} usable row(s))",
        "value_line": "{what} = {value} {unit} ({interval}; {n} row(s))",
        "no_interval": "no interval",
        "a_count": "a count, no interval",
        "range": "range",
        "exact": "exact, read not sampled",
        "ci": "95 % CI",
        "tiers": "Per fidelity and mode, each on its own (never pooled)",
        "deviations": "How this run differs from the seed procedure",
        "under_load": "Measured under load (another job shared the machine; rerun on a quiet machine to trust these)",
        "ingested": "Ingested by hand (not run by the harness)",
        "build_notes": "Upstream builds on today's toolchains",
        "tier_line": (
            "{fidelity}, {mode}: {statistic} of {metric} = {value} {unit} "
            "({interval}; {cells} workload(s), n ≥ {min_n} per side)"
        ),
        "not_found": "not found in the run directory",
        "dirty": "dirty tree",
        "dirty_some": "dirty tree in {n} of {total} rows",
        "logs": "log(s)",
        "plots_missing": "plots not drawn: {why}",
        "generated": "rows measured",
        "ok": "ok",
        "blocked": "blocked",
        "failed": "failed",
        "legend": (
            "board = measured on the board; simulator = an NPU or hardware simulator; "
            "emulated = QEMU user mode (proves the steps run, never a timing or memory "
            "verdict); host = natively on the harness machine; static = read from the "
            "artefact itself"
        ),
        "side_note": (
            "CI side: good = the whole 95 % CI is better than the baseline, bad = none "
            "of it is, straddles = it crosses no change, no interval = fewer than two samples on a "
            "side (n=1 has no CI); each row keeps its own fidelity."
        ),
        "PASS": "PASS",
        "FAIL": "FAIL",
        "INCONCLUSIVE": "INCONCLUSIVE",
        "BLOCKED": "BLOCKED",
        "NO_VERDICT": "NO_VERDICT",
        "board": "board",
        "simulator": "simulator",
        "emulated": "emulated",
        "host": "host",
        "static": "static",
        "entities": "Evidence per listed entry",
        "entity": "entry",
        "passed_of_runs": "passed / runs",
        "tier": "tier reached",
        "check": "check",
        "result": "result",
        "where": "measured on",
        "log": "log",
        "passed": "passed",
        "passed, not counted": "passed, not counted",
        "passed without a camera": "passed without a camera (not counted)",
        "failed, not counted": "failed, not counted",
        "no evidence": "no evidence",
        "listed": "listed",
        "extra": "not listed",
    },
    "ko": {
        "report": "ANT KPI 평가 보고서",
        "run": "실행",
        "summary": "요약",
        "kpi": "KPI",
        "target": "목표",
        "value_ci": "측정값 (구간)",
        "unit": "단위",
        "fidelity": "측정 방식",
        "verdict": "판정",
        "rows": "결과 행",
        "measured": "측정 시각",
        "harness": "하네스",
        "fidelity_legend": "측정 방식",
        "Target": "목표",
        "Value": "측정값",
        "Fidelity": "측정 방식",
        "Verdict": "판정",
        "with_evidence": "증거 있음",
        "without_evidence": "증거 없음",
        "blocked_rows": "차단 또는 실패한 행",
        "per_workload": "워크로드별",
        "measurements": "측정 결과",
        "blocked_section": "차단 및 실패한 행",
        "beside": "따로 측정한 변형 (비교 쌍과 합치지 않으며 판정에 쓰지 않음)",
        "notes": "판정 값을 얻은 방법",
        "not_in_mode": "이 모드({mode})에 포함되지 않는 단계: 실행하지 않으며 차단으로 세지 않음",
        "evidence": "증거 자료",
        "provenance": "출처 정보",
        "source_commits": "소스 커밋",
        "image_digests": "이미지 다이제스트",
        "artefacts": "산출물 sha256",
        "targets": "대상 장치",
        "commands": "실행 명령",
        "metric": "지표",
        "workload": "워크로드",
        "variant": "변형",
        "mode": "모드",
        "n": "n",
        "median_ci": "중앙값 [신뢰구간]",
        "not_ok": "비정상",
        "ci_side": "신뢰구간 위치",
        "none_recorded": "기록 없음",
        "plots": "그래프",
        "reason": "근거",
        "no_value": "{what} 값 없음 (사용 가능한 행 {n}개)",
        "value_line": "{what} = {value} {unit} ({interval}; {n}개 행)",
        "no_interval": "구간 없음",
        "a_count": "개수, 구간 없음",
        "range": "범위",
        "exact": "정확값, 표본 아님",
        "ci": "95 % 신뢰구간",
        "tiers": "측정 방식·모드별 값 (서로 합치지 않음)",
        "deviations": "이 실행이 절차서와 다른 점",
        "under_load": "부하 중 측정 (다른 작업과 장비를 공유함; 조용한 장비에서 다시 측정해야 신뢰 가능)",
        "ingested": "수동으로 들여온 로그 (하네스가 실행하지 않음)",
        "build_notes": "현재 도구로 하는 업스트림 빌드",
        "tier_line": (
            "{fidelity}, {mode}: {metric}의 {statistic} = {value} {unit} "
            "({interval}; 워크로드 {cells}개, 한쪽 n ≥ {min_n})"
        ),
        "not_found": "실행 디렉터리에 없음",
        "dirty": "커밋되지 않은 변경 있음",
        "dirty_some": "{total}개 행 중 {n}개에 커밋되지 않은 변경",
        "logs": "개 로그",
        "plots_missing": "그래프 없음: {why}",
        "generated": "측정 구간",
        "ok": "정상",
        "blocked": "차단",
        "failed": "실패",
        "legend": (
            "보드 = 실제 보드에서 측정; 시뮬레이터 = NPU 또는 하드웨어 시뮬레이터; "
            "에뮬레이션 = QEMU 사용자 모드 (단계가 동작함을 보일 뿐, 시간·메모리 판정에는 "
            "쓰지 않음); 호스트 = 하네스 장비에서 직접 실행; 정적 = 산출물 자체에서 읽음"
        ),
        "side_note": (
            "신뢰구간 위치: good = 95 % 신뢰구간 전체가 기준보다 좋음, bad = 전혀 좋지 "
            "않음, straddles = 변화 없음(0)을 가로지름, no interval = 한쪽 표본이 2개 미만 (n=1에는 "
            "신뢰구간이 없음); 각 행은 자신의 측정 방식을 유지합니다."
        ),
        "PASS": "통과",
        "FAIL": "실패",
        "INCONCLUSIVE": "판정 보류",
        "BLOCKED": "차단됨",
        "NO_VERDICT": "판정 없음",
        "board": "보드",
        "simulator": "시뮬레이터",
        "emulated": "에뮬레이션",
        "host": "호스트",
        "static": "정적",
        "entities": "항목별 증거",
        "entity": "항목",
        "passed_of_runs": "통과 / 실행",
        "tier": "도달 단계",
        "check": "판정 방법",
        "result": "결과",
        "where": "측정 장치",
        "log": "로그",
        "passed": "통과",
        "passed, not counted": "통과 (집계 제외)",
        "passed without a camera": "카메라 없이 통과 (집계 제외)",
        "failed, not counted": "실패 (집계 제외)",
        "no evidence": "증거 없음",
        "listed": "목록",
        "extra": "목록 외",
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


def unit_label(ev: Evaluation) -> str:
    """The value's unit; for a comparison, also what it compares and in which unit (% of KB, x of images/s)."""
    if ev.statistic and ev.metric_unit:
        return f"{ev.unit} ({ev.statistic} of {ev.metric}, {ev.metric_unit})"
    return ev.unit


def beside_lines(ev: Evaluation, lang: Lang = "en") -> list[str]:
    """One line per variant measured outside the compared pair, with its own fidelity and n."""
    out = []
    for b in ev.beside:
        name = f"{b.variant} ({b.label})" if b.label else b.variant
        where = ", ".join(x for x in (label(b.fidelity, lang), b.mode, f"n={b.n}", b.target) if x)
        out.append(f"{name}: {b.metric} {fmt_num(b.median)} {b.unit} ({where})")
    return out


def _cell_header(first: WorkloadComparison, lang: Lang = "en") -> list[str]:
    median = label("median_ci", lang) + (f" ({first.unit})" if first.unit else "")
    return [
        label("target", lang),
        label("workload", lang),
        label("fidelity", lang),
        label("mode", lang),
        f"n {first.baseline}",
        f"{first.baseline} {median}",
        f"n {first.candidate}",
        f"{first.candidate} {median}",
        f"{first.statistic} [CI]",
        label("ci_side", lang),
    ]


def _cell_values(c: WorkloadComparison) -> list[str]:
    cmp = c.comparison
    return [
        c.target or "—",
        c.workload or "(all)",
        c.fidelity,
        c.mode,
        str(c.baseline_summary.n) if c.baseline_summary else "0",
        _fmt_summary(c.baseline_summary),
        str(c.candidate_summary.n) if c.candidate_summary else "0",
        _fmt_summary(c.candidate_summary),
        fmt_value(cmp.value, cmp.ci_low, cmp.ci_high) + f" {cmp.unit}" if cmp else "—",
        c.side,
    ]


def _group_header(lang: Lang = "en") -> list[str]:
    return [
        label(k, lang)
        for k in ("metric", "target", "workload", "variant", "fidelity", "mode", "n", "median_ci", "unit", "not_ok")
    ]


def _group_values(g: GroupSummary) -> list[str]:
    s = g.summary
    return [
        g.metric,
        g.target or "—",
        g.workload or "—",
        g.variant,
        g.fidelity,
        g.mode,
        str(s.n) if s else "0",
        _fmt_summary(s),
        g.unit,
        str(g.not_ok),
    ]


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def report_name(lang: Lang = "en", ext: str = "md") -> str:
    """report.md / report.html in English; report.<lang>.<ext> otherwise, so both can sit together."""
    return f"report.{ext}" if lang == "en" else f"report.{lang}.{ext}"


def _link(path: str, run_dir: Path, lang: Lang = "en") -> str:
    text = path.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
    exists = (run_dir / path).exists()
    return f"[{text}]({quote(path)})" + ("" if exists else f" ({label('not_found', lang)})")


def _unique(values: Iterable[str]) -> list[str]:
    return sorted({v for v in values if v})


def _row_counts(df: pd.DataFrame, lang: Lang) -> str:
    statuses = df["status"].value_counts().to_dict()
    return ", ".join(f"{statuses.get(s, 0)} {label(s, lang)}" for s in ("ok", "blocked", "failed"))


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


_INTERVAL_KO: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"^range of (\d+) per-workload values, not a CI$"), r"워크로드 \1개 값의 범위 (신뢰구간 아님)"),
    (re.compile(r"^range of (\d+) exact values$"), r"정확값 \1개의 범위"),
    (
        re.compile(r"^95 % CI: percentile bootstrap of the median over (\d+) workloads$"),
        r"95 % 신뢰구간: 워크로드 \1개 중앙값의 백분위 부트스트랩",
    ),
    (
        re.compile(r"^95 % CI: percentile bootstrap of the two medians \(one workload\)$"),
        "95 % 신뢰구간: 두 중앙값의 백분위 부트스트랩 (워크로드 1개)",
    ),
    (re.compile(r"^95 % CI of the median \((.+)\)$"), r"중앙값의 95 % 신뢰구간 (\1)"),
    (re.compile(r"^exact: static values, read not sampled$"), "정확값: 정적 값 (표본 아님)"),
)


def _interval_words(interval: str, lang: Lang) -> str:
    if lang != "ko":
        return interval
    for rx, ko in _INTERVAL_KO:
        if rx.match(interval):
            return rx.sub(ko, interval)
    return interval


def interval_text(interval: str, low: float, high: float, lang: Lang = "en", decimals: int | None = None) -> str:
    """'[low, high]: <what the interval is>', or 'no interval' when there is none."""
    if not interval or interval.startswith("no interval") or math.isnan(low) or math.isnan(high):
        rest = interval[len("no interval") :] if interval.startswith("no interval") else ""
        return label("no_interval", lang) + rest
    d = decimals if decimals is not None else _decimals([low, high])
    return f"[{_fmt(low, d)}, {_fmt(high, d)}]: {_interval_words(interval, lang)}"


def fmt_headline(ev: Evaluation, lang: Lang = "en") -> str:
    """A KPI's value for a summary cell: 'v [lo, hi] (range)' / 'v [lo, hi] (95 % CI)' / 'v (no interval)'."""
    if math.isnan(ev.value):
        return "—"
    if ev.unit == "count" and ev.ci_low == ev.ci_high == ev.value:
        return fmt_num(ev.value)
    if not ev.interval or ev.interval.startswith("no interval") or math.isnan(ev.ci_low) or math.isnan(ev.ci_high):
        return f"{fmt_num(ev.value)} ({label('no_interval', lang)})"
    kind = label(
        "exact" if ev.interval.startswith("exact") else "range" if ev.interval.startswith("range") else "ci", lang
    )
    return f"{fmt_value(ev.value, ev.ci_low, ev.ci_high)} ({kind})"


def _value_line(ev: Evaluation, lang: Lang) -> str:
    if math.isnan(ev.value):
        return label("no_value", lang).format(what=_what(ev), n=ev.n)
    d = _decimals([ev.value, ev.ci_low, ev.ci_high])
    if ev.unit == "count" and ev.ci_low == ev.ci_high == ev.value:
        interval = label("a_count", lang)
    else:
        interval = interval_text(ev.interval, ev.ci_low, ev.ci_high, lang, d)
    return label("value_line", lang).format(
        what=_what(ev), value=_fmt(ev.value, d), unit=ev.unit, interval=interval, n=ev.n
    )


def tier_lines(ev: Evaluation, lang: Lang = "en") -> list[str]:
    """One line per (fidelity, mode) of a comparison KPI: its own figure, never pooled."""
    out: list[str] = []
    if len(ev.tiers) < 2:  # one tier is the headline itself
        return out
    for t in ev.tiers:
        d = _decimals([t.value, t.low, t.high])
        out.append(
            label("tier_line", lang).format(
                fidelity=label(t.fidelity, lang),
                mode=t.mode,
                statistic=t.statistic,
                metric=t.metric,
                value=_fmt(t.value, d),
                unit=ev.unit,
                interval=interval_text(t.interval, t.low, t.high, lang, d),
                cells=t.cells,
                min_n=t.min_n,
            )
        )
    return out


def _kpi_titles(ev: Evaluation, lang: Lang) -> tuple[str, str]:
    """(main title, second title) of a KPI section in `lang`."""
    if lang == "ko" and ev.title_ko:
        return ev.title_ko, ev.title_en
    return ev.title_en, ev.title_ko


def _per_workload_title(cells: Sequence[WorkloadComparison], lang: Lang) -> str:
    """'<statistic> per workload: <candidate> vs <baseline> (<metric>)', naming each fidelity's own
    metric where they differ (KPI 1: guest_pss at emulated fidelity)."""
    first = cells[0]
    by_fidelity = {c.fidelity: c.metric for c in cells}
    if len(set(by_fidelity.values())) > 1:
        metrics = ", ".join(f"{label(f, lang)}: {m}" for f, m in by_fidelity.items())
    else:
        metrics = first.metric
    return f"{first.statistic} {label('per_workload', lang)}: {first.candidate} vs {first.baseline} ({metrics})"


def entity_detail(entities: Sequence[EntityEvidence]) -> bool:
    """Whether the entity table carries the tier and check columns (KPI 7's NPUs say them)."""
    return any(e.tier or e.check for e in entities)


def _entity_header(lang: Lang, detail: bool = False) -> list[str]:
    keys: tuple[str, ...] = ("entity", "result", "passed_of_runs", "fidelity", "where", "log")
    if detail:
        keys = ("entity", "result", "tier", "check", "passed_of_runs", "fidelity", "where", "log")
    return [label(k, lang) for k in keys]


def _entity_values(e: EntityEvidence, run_dir: Path, lang: Lang, detail: bool = False) -> list[str]:
    name = e.name if e.listed else f"{e.name} ({label('extra', lang)})"
    fid = label(e.fidelity, lang) if e.fidelity else "—"
    tally = f"{e.passes} of {e.runs}" if e.runs else "—"
    log = _link(e.log, run_dir, lang) if e.log else "—"
    extra = [e.tier or "—", e.check or "—"] if detail else []
    return [name, label(e.result, lang), *extra, tally, fid, e.where or "—", log]


_PROVENANCE_COLUMNS: Final = (
    ("source_commits", "source_commit"),
    ("image_digests", "image_digest"),
    ("artefacts", "artefact_sha256"),
)


def not_in_mode(run_dir: Path | None, kpi: str, lang: Lang = "en") -> tuple[str, list[str]]:
    """(heading, lines): the steps the run's mode left out for `kpi`, from plans/<kpi>.json."""
    if run_dir is None:
        return "", []
    try:
        doc = json.loads((run_dir / "plans" / f"{kpi}.json").read_text(encoding="utf-8"))
        items = [x for x in doc.get("not_in_mode", []) if isinstance(x, dict)]
    except (OSError, ValueError, AttributeError):
        return "", []
    lines = [
        f"{x.get('id', '')}: {x.get('what', '')} — {x.get('why', '')}; a {x.get('planned_in', '')} run plans it"
        for x in items
    ]
    return (label("not_in_mode", lang).format(mode=doc.get("mode", "")), lines) if lines else ("", [])


def _commands(df: pd.DataFrame) -> list[str]:
    commands = []
    for text in _unique(str(v) for v in df["argv"].tolist()):
        argv = json.loads(text)
        if argv:
            commands.append(shlex.join(str(a) for a in argv))
    return sorted(commands)


def _identities(df: pd.DataFrame) -> list[str]:
    return _unique(str(v) for v in df["target_identity"].tolist() if str(v) != "{}")


def _run_id(run_dir: Path, results: Results) -> str:
    ids = _unique(str(v) for v in results.df["run_id"].tolist())
    return ids[0] if len(ids) == 1 else run_dir.name


def _code(text: str) -> str:
    """An inline code span that survives backticks in the text."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def deviation_lines(ev: Evaluation, rows: Results, lang: Lang = "en") -> list[str]:
    """Where this KPI's numbers depart from the seed: each correction and substitution that concerns
    the run's rows (kind, what, which numbers), then each log ingested by hand with its sha256."""
    from harness.kpis.deviations import KIND_KO, deviations_for, ingested_lines

    df = rows.filter(kpi=ev.kpi).df
    out = []
    for d in deviations_for(ev.kpi, df):
        kind = KIND_KO[d.kind] if lang == "ko" else d.kind
        text = d.ko if lang == "ko" else d.en
        out.append(f"{kind}: {text} ({'영향' if lang == 'ko' else 'affects'}: {d.affects})")
    out += [f"{label('ingested', lang)}: {line}" for line in ingested_lines(df)]
    return out


def load_lines(run_dir: Path | None, kpi: str) -> list[str]:
    """The KPI's measurement steps that ran under load, from their stored states (steps/<kpi>/)."""
    from harness.core.runner import safe_name, under_load

    if run_dir is None:
        return []
    out = []
    for p in sorted((run_dir / "steps" / safe_name(kpi)).glob("*.json")):
        try:
            st = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        load = st.get("load") if isinstance(st, dict) else None
        if isinstance(load, dict) and under_load(load):
            before, after = load.get("before") or ["?"], load.get("after") or ["?"]
            out.append(
                f"{st.get('id', p.stem)}: 1-min load {before[0]} before, {after[0]} after, on {load.get('cpus')} CPUs"
            )
    return out
