"""Property-based fuzzing: a mutated kpis.toml only ever raises ManifestError, and every log parser
only ever raises BadInput, whatever text it is given.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.core.manifest import Manifest, load_manifest
from harness.errors import BadInput, ManifestError
from harness.parsers import PARSERS

ROOT = Path(__file__).resolve().parent.parent
MANIFEST_TEXT = (ROOT / "kpis.toml").read_text(encoding="utf-8")
MANIFEST_LINES = MANIFEST_TEXT.splitlines()
EXAMPLES = int(os.environ.get("ANT_KPI_FUZZ_EXAMPLES", "150"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Values a careless edit puts where another value was: wrong types, empty, huge, odd unicode.
VALUES = st.sampled_from(
    [
        '""',
        "0",
        "-1",
        "1e309",
        "nan",
        "inf",
        "true",
        "[]",
        "{}",
        "[1, 2]",
        '["a", 1]',
        "{ a = 1 }",
        '"x"',
        '"../../etc/passwd"',
        '"; rm -rf x"',
        '"$(touch pwned)"',
        '"`id`"',
        '"\\u0000"',
        "'''",
        '"',
        "99999999999999999999999",
        '"경량"',
        "1979-05-27T07:32:00Z",
        "[[]]",
        '{ kind = "nope" }',
    ]
)


@st.composite
def mutated_manifest(draw: st.DrawFn) -> str:
    """kpis.toml with lines deleted, duplicated or replaced, and values swapped for odd ones."""
    lines = list(MANIFEST_LINES)
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "value", "duplicate", "replace", "truncate", "key"]))
        line = lines[i]
        if op == "delete":
            del lines[i]
        elif op == "value" and "=" in line:
            key = line.split("=", 1)[0]
            lines[i] = f"{key}= {draw(VALUES)}"
        elif op == "duplicate":
            lines.insert(i, line)
        elif op == "replace":
            lines[i] = draw(st.text(max_size=40))
        elif op == "truncate":
            lines[i] = line[: draw(st.integers(0, max(0, len(line))))]
        elif op == "key" and "=" in line:
            value = line.split("=", 1)[1]
            lines[i] = f"{draw(st.from_regex(r'[a-z_]{1,12}', fullmatch=True))} ={value}"
    return "\n".join(lines) + "\n"


def _load(text: str | bytes) -> Manifest:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "kpis.toml"
        p.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        return load_manifest(p)


def test_the_unmutated_manifest_loads() -> None:
    assert _load(MANIFEST_TEXT).kpis


@FUZZ
@given(mutated_manifest())
def test_a_mutated_manifest_loads_or_raises_only_manifest_error(text: str) -> None:
    try:
        _load(text)
    except ManifestError as e:
        assert "\n" not in e.one_line()


@FUZZ
@given(st.binary(max_size=400))
def test_manifest_bytes_load_or_raise_only_manifest_error(data: bytes) -> None:
    with contextlib.suppress(ManifestError):
        _load(data)


# Text shaped like tool output: numbers, whitespace, field names, so parsers get past line one.
LOGLIKE = st.lists(
    st.one_of(
        st.text(alphabet="0123456789 .-+eE\t", max_size=60),
        st.lists(st.integers(-(2**70), 2**70).map(str), max_size=9).map(" ".join),
        st.text(max_size=60),
        st.sampled_from(
            [
                "",
                "\r",
                "nan nan nan",
                "Inference timings in us: Init: 1, First inference: 2",
                "count=50 first=1 curr=2 min=1 max=3 avg=2.5 std=0",
                "Top-1 accuracy: 70.1%",
                "Epoch 1/10 acc 0.5",
                "1 2 3 4 5 6 7",
                "1 2 3 4 5 6 7 8",
                "١٢٣ 1 2 3 4 5 6",
            ]
        ),
    ),
    max_size=30,
).map("\n".join)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_parser_accepts_or_rejects_arbitrary_text_with_bad_input_only(name: str, tmp_path: Path) -> None:
    parser = PARSERS[name]

    @FUZZ
    @given(st.one_of(LOGLIKE, st.binary(max_size=300)))
    def check(data: str | bytes) -> None:
        p = tmp_path / f"{name}.log"
        p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
        try:
            out = parser(p)
        except BadInput as e:
            assert "\n" not in e.one_line()
            return
        assert isinstance(out, list)
        for m in out:
            assert {"metric", "value", "unit"} <= set(m)
            assert isinstance(m["value"], float)

    check()
