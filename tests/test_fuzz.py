"""Property-based fuzzing: a mutated kpis.toml only ever raises ManifestError, and every log parser
only ever raises BadInput, whatever text it is given.
"""

from __future__ import annotations

import contextlib
import os
import re
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


# --------------------------------------------------------------------------------------------
# boards.toml: a mutated inventory loads into sane boards or raises ManifestError only
# --------------------------------------------------------------------------------------------

BOARDS_LINES = (ROOT / "boards.example.toml").read_text(encoding="utf-8").splitlines()


@st.composite
def mutated_boards(draw: st.DrawFn) -> str:
    """boards.example.toml with values swapped for odd ones (paths, timeouts, names), lines dropped or doubled."""
    lines = list(BOARDS_LINES)
    odd = st.one_of(
        VALUES,
        st.sampled_from(['"/tmp/../.."', '"/"', '"//"', '"/tmp/../etc"', '"/a/./b//"', "1e400", "-0.0", "1e9"]),
    )
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["value", "value", "delete", "duplicate"]))
        if op == "value" and "=" in lines[i] and not lines[i].lstrip().startswith("#"):
            lines[i] = f"{lines[i].split('=', 1)[0]}= {draw(odd)}"
        elif op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
    return "\n".join(lines) + "\n"


@FUZZ
@given(mutated_boards())
def test_a_mutated_board_inventory_loads_sane_boards_or_raises_only_manifest_error(text: str) -> None:
    import math
    import posixpath

    from harness.env.lab.inventory import MAX_TIMEOUT_S, load_boards

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "boards.toml"
        p.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            boards = load_boards(p)
        except ManifestError as e:
            assert "\n" not in e.one_line()
            return
    for b in boards.values():
        for t in (b.command_timeout_s, b.connect_timeout_s):
            assert math.isfinite(t) and 0 < t <= MAX_TIMEOUT_S
        assert b.work_dir == "" or (b.work_dir == posixpath.normpath(b.work_dir) and b.work_dir.count("/") >= 1)
        assert b.work_dir not in ("/", "//") and ".." not in b.work_dir.split("/")


# --------------------------------------------------------------------------------------------
# The command line: any argument list ends with an exit code and at most one line of error
# --------------------------------------------------------------------------------------------

ODD_TEXT = st.one_of(
    st.sampled_from(["", ".", "..", "../x", "/abs", "a/b", "-x", "a\nb", "x" * 300, "kpi_js_memory", "1", "small"]),
    st.text(max_size=12),
)
RUN_OPTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("--run-id"), ODD_TEXT),
        st.tuples(st.just("--repeats"), st.integers(-5, 5000).map(str)),
        st.tuples(st.just("--workload"), st.one_of(ODD_TEXT, st.sampled_from(["small", "large"]))),
        st.tuples(st.just("--source"), st.one_of(ODD_TEXT, st.sampled_from(["iotjs=/", "nosuch=/", "ant=/none"]))),
        st.tuples(st.just("--target"), st.one_of(ODD_TEXT, st.sampled_from(["x86_64", "rpi2"]))),
        st.tuples(st.just("--mode"), st.sampled_from(["smoke", "measure"])),
    ),
    max_size=4,
).map(lambda pairs: [f"{k}={v}" for k, v in pairs])


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """An argument list of one command with odd values (runs never execute: only --dry-run)."""
    kind = draw(st.sampled_from(["run", "run", "plan", "ingest", "ingest", "report", "bundle", "verify", "validate"]))
    if kind == "run":
        return ["run", draw(st.sampled_from(["js_memory", "1", "nosuch"])), "--dry-run", *draw(RUN_OPTIONS)]
    if kind == "plan":
        return ["plan", draw(ODD_TEXT), *draw(st.sampled_from([[], ["--json"], ["--mode", "measure"]]))]
    if kind == "ingest":
        fid = draw(st.sampled_from([[], ["--fidelity", "board"], ["--fidelity", "host"]]))
        variant = draw(st.sampled_from(["iotjs", "iotjs", "nodejs"]))
        return ["ingest", "1", "LOG", "--variant", variant, *fid, f"--run-id={draw(ODD_TEXT)}"]
    if kind in ("report", "bundle"):
        out = draw(st.sampled_from([[], ["-o", "/proc/1/x.tgz"]])) if kind == "bundle" else []
        return [kind, draw(ODD_TEXT), *out]
    return [kind, "BYTES"]


MANIFEST = load_manifest(ROOT / "kpis.toml")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def must_refuse(argv: list[str]) -> bool:
    """Whether an option value is bad by the README's rules (an oracle written apart from the harness)."""
    for a in argv:
        key, _, value = a.partition("=")
        if key == "--run-id" and not (_PLAIN_NAME.fullmatch(value) and len(value) <= 100):
            return True
        if key == "--repeats" and not 1 <= int(value) <= 1000:
            return True
        if key == "--source" and value.partition("=")[0].strip() not in MANIFEST.sources:
            return True
        if key == "--workload" and argv[1] in ("js_memory", "1") and value not in MANIFEST.kpi("js_memory").workloads:
            return True
    return False


def test_any_command_line_ends_with_an_exit_code_and_at_most_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib
    import io

    from harness.cli import main

    monkeypatch.chdir(tmp_path)  # relative paths (".", "a/b") land here, where the test can see them

    runs = tmp_path / "runs"
    log = tmp_path / "a.log"
    log.write_text("\n".join(f"{1000 * i} 900 200 132 1200 {900 + i} {900 + i}" for i in range(11)) + "\n")

    @settings(FUZZ, max_examples=max(20, EXAMPLES // 3))
    @given(command_lines(), st.binary(max_size=200))
    def check(argv: list[str], data: bytes) -> None:
        blob = tmp_path / "blob"
        blob.write_bytes(data)
        argv = [str(log) if a == "LOG" else str(blob) if a == "BYTES" else a for a in argv]
        before = set(tmp_path.iterdir())
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(["--manifest", str(ROOT / "kpis.toml"), "--runs-dir", str(runs), *argv])
            except SystemExit as e:  # argparse: a usage error, exit 2
                assert e.code in (0, 2), (argv, err.getvalue())
                return
        assert code in (0, 1, 2, 3), (argv, err.getvalue())
        lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
        if code == 2:
            assert len(lines) == 1 and lines[0].startswith("error:"), (argv, lines)
        if must_refuse(argv):
            assert code == 2, (argv, lines)
        # Nothing written beside the runs directory (and so, in the working directory).
        assert set(tmp_path.iterdir()) - before <= {runs}, argv
        assert all(p.parent == runs for p in runs.glob("*")), argv

    check()
