"""vminfo logs: samples, the last and peak PSS, one-line errors, and the parser registry."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import BadInput
from harness.parsers import PARSERS, get_parser
from harness.parsers.vminfo import (
    final_pss_kb,
    max_pss_kb,
    measurements,
    parse_vminfo,
    parse_vminfo_text,
)

# Timer mode (`vminfo iotjs LOG 1 -s`): an empty line before the app starts and after it exits.
TIMER_LOG = """
1714564800123456 3488 10468 132 2876 12040 12040
1714564801124012 3488 11504 132 2876 13076 13076
1714564802124580 3488 11220 132 2876 12792 13076

"""

# Immediate mode (`-i`) appends one line per call; a call that found no process adds a blank one.
IMMEDIATE_LOG = "1714564800000001 48 1320 132 1904 2411 2411\n\n1714564805000002 48 1408 132 1904 2490 2490\n"


def write(tmp_path: Path, text: str, name: str = "run.vminfo") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_timer_log_gives_three_samples_last_and_peak(tmp_path: Path) -> None:
    samples = parse_vminfo(write(tmp_path, TIMER_LOG))
    assert len(samples) == 3
    first = samples[0]
    assert (
        first.line,
        first.timestamp_us,
        first.text_kb,
        first.data_kb,
        first.stack_kb,
        first.shlib_kb,
        first.pss_kb,
        first.max_pss_kb,
    ) == (2, 1714564800123456, 3488, 10468, 132, 2876, 12040, 12040)
    assert final_pss_kb(samples) == 12792
    assert max_pss_kb(samples) == 13076


def test_blank_lines_between_samples_are_skipped() -> None:
    samples = parse_vminfo_text(IMMEDIATE_LOG)
    assert [s.line for s in samples] == [1, 3]
    assert final_pss_kb(samples) == 2490


def test_crlf_line_ends_are_accepted() -> None:
    assert final_pss_kb(parse_vminfo_text(IMMEDIATE_LOG.replace("\n", "\r\n"))) == 2490


def test_a_log_with_only_empty_lines_has_no_last_value() -> None:
    samples = parse_vminfo_text("\n\n\n")
    assert samples == []
    with pytest.raises(BadInput, match="no sample"):
        final_pss_kb(samples)


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("1 2 3 4 5 6 7\n1 2 3 4 5 6\n", ":2:", "expected 7 fields"),
        ("\n\n1 2 3 4 5 6 7 8\n", ":3:", "found 8"),
        ("1 2 3 4 5 x 7\n", ":1:", "pss_kb 'x'"),
        ("1 2 3 4 5 -6 7\n", ":1:", "pss_kb '-6'"),
        ("1 2 3 4 5 6 7.5\n", ":1:", "max_pss_kb '7.5'"),
        ("VMInfo begin : (Interval : 1s)\n", ":1:", "expected 7 fields"),
    ],
)
def test_a_bad_line_is_one_line_naming_its_number(text: str, where: str, what: str) -> None:
    with pytest.raises(BadInput) as e:
        parse_vminfo_text(text, source="x.vminfo")
    msg = e.value.one_line()
    assert f"x.vminfo{where}" in msg and what in msg
    assert "\n" not in msg


def test_non_text_file_and_missing_file_are_bad_input(tmp_path: Path) -> None:
    p = tmp_path / "bin.vminfo"
    p.write_bytes(b"1 2 3 4 5 6 7\n\xff\xfe\n")
    with pytest.raises(BadInput, match=r"bin\.vminfo:2: not text"):
        parse_vminfo(p)
    with pytest.raises(BadInput, match="cannot read"):
        parse_vminfo(tmp_path / "absent.vminfo")


def test_registry_turns_a_log_into_peak_and_final_pss(tmp_path: Path) -> None:
    assert PARSERS["vminfo"] is measurements
    got = get_parser("vminfo")(write(tmp_path, TIMER_LOG))
    assert [(m["metric"], m["value"], m["unit"]) for m in got] == [
        ("peak_pss", 13076.0, "KB"),
        ("final_pss", 12792.0, "KB"),
    ]
    assert "3 sample(s)" in got[0]["note"]


def test_unknown_parser_name_suggests_the_close_one() -> None:
    with pytest.raises(BadInput, match="did you mean 'vminfo'"):
        get_parser("vminf")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_either_parses_or_raises_bad_input(text: str) -> None:
    try:
        samples = parse_vminfo_text(text)
    except BadInput as e:
        assert "\n" not in e.one_line()
        return
    for s in samples:
        assert s.pss_kb >= 0 and s.max_pss_kb >= 0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.just(""),
            st.lists(st.integers(min_value=0, max_value=2**63), min_size=7, max_size=7).map(
                lambda xs: " ".join(map(str, xs))
            ),
            st.text(alphabet="0123456789 \t-x.", max_size=30),
        )
    )
)
def test_line_shaped_text_either_parses_or_raises_bad_input(lines: list[str]) -> None:
    try:
        samples = parse_vminfo_text("\n".join(lines))
    except BadInput:
        return
    if samples:
        last = [line for line in lines if line.strip()][-1].split()
        assert final_pss_kb(samples) == int(last[5])
        assert max_pss_kb(samples) == int(last[6])
