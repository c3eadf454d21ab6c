"""Bad input that used to escape as a traceback, a hang or a silent success (issue 14): each now ends
with one line on stderr and exit 2, before anything is run or written.

Every case runs `python -m harness` in a fresh directory on the fault campaign's fixture manifest
or the project's kpis.toml, with Docker pointed at an address that does not answer.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
import tarfile
import zlib
from pathlib import Path

import pytest

from harness.core.manifest import load_manifest
from harness.env.lab.inventory import MAX_TIMEOUT_S, load_boards
from harness.errors import ManifestError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_faults import write_manifest
from test_faults_security import harness, vminfo_log

ROOT = Path(__file__).resolve().parent.parent


def one_line_error(p: object, code: int = 2) -> str:
    """The single stderr line of a refused command (asserting there is exactly one, and no traceback)."""
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]  # type: ignore[attr-defined]
    assert p.returncode == code, p.stderr[-2000:]  # type: ignore[attr-defined]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]  # type: ignore[attr-defined]
    return lines[0]


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, list[str]]:
    """(tmp, the global options of a run on the fixture manifest with tmp/runs)."""
    return tmp_path, ["--manifest", str(write_manifest(tmp_path)), "--runs-dir", str(tmp_path / "runs")]


def _ingested(tmp: Path) -> Path:
    log = vminfo_log(tmp / "a.log", 900)
    p = harness(tmp, "--runs-dir", str(tmp / "runs"), "ingest", "1", str(log), "--variant", "iotjs", "--fidelity",
                "board", "--run-id", "r")  # fmt: skip
    assert p.returncode == 0, p.stderr
    return tmp / "runs" / "r"


# --------------------------------------------------------------------------------------------
# Paths: the runs directory, the bundle output, a corrupt bundle
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["a-file", "under-a-file", "unreachable"])
@pytest.mark.parametrize("command", ["run", "build", "ingest", "report"])
def test_a_runs_dir_that_is_a_file_or_cannot_be_made_is_one_line_and_exit_2(
    tmp_path: Path, where: str, command: str
) -> None:
    (tmp_path / "afile").write_text("x")
    runs = {"a-file": tmp_path / "afile", "under-a-file": tmp_path / "afile" / "runs", "unreachable": "/proc/1/no"}
    manifest = str(write_manifest(tmp_path))
    args = {
        "run": ["run", "js_memory", "--workload", "small"],
        "build": ["build", "iotjs", "--target", "x86_64"],
        "ingest": ["ingest", "1", str(vminfo_log(tmp_path / "a.log", 1)), "--variant", "iotjs", "--fidelity", "board"],
        "report": ["report"],
    }[command]
    if command == "ingest":
        manifest = str(ROOT / "kpis.toml")
    line = one_line_error(harness(tmp_path, "--manifest", manifest, "--runs-dir", str(runs[where]), *args))
    assert str(runs[where]) in line


@pytest.mark.parametrize("output", ["/proc/1/no/out.tar.gz", "DIR"])
def test_bundle_into_a_place_it_cannot_write_is_one_line_and_leaves_nothing(tmp_path: Path, output: str) -> None:
    _ingested(tmp_path)
    out = str(tmp_path) if output == "DIR" else output
    line = one_line_error(harness(tmp_path, "--runs-dir", str(tmp_path / "runs"), "bundle", "r", "-o", out))
    assert out in line
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp") or "evidence" in p.name]


def _flip_until_zlib_error(data: bytes) -> bytes:
    """The first one-byte change of a .tar.gz that makes reading it raise zlib.error (not a tar error)."""
    for i in range(len(data) // 3, len(data) - 8):
        bad = bytearray(data)
        bad[i] ^= 0x55
        try:
            with tarfile.open(fileobj=io.BytesIO(bytes(bad)), mode="r:gz") as tar:
                for m in tar:
                    f = tar.extractfile(m) if m.isfile() else None
                    if f is not None:
                        f.read()
        except zlib.error:
            return bytes(bad)
        except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile):
            continue
    raise AssertionError("no one-byte change gave a zlib.error")


def test_verify_of_a_corrupt_deflate_stream_is_one_line_and_exit_2(tmp_path: Path) -> None:
    _ingested(tmp_path)
    assert harness(tmp_path, "--runs-dir", str(tmp_path / "runs"), "bundle", "r").returncode == 0
    bad = tmp_path / "corrupt.evidence.tar.gz"
    bad.write_bytes(_flip_until_zlib_error((tmp_path / "runs" / "r.evidence.tar.gz").read_bytes()))
    assert "not a readable .tar.gz" in one_line_error(harness(tmp_path, "verify", str(bad)))


# --------------------------------------------------------------------------------------------
# Options that were accepted silently
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
def test_an_unknown_source_name_is_refused_with_a_suggestion_even_in_a_dry_run(
    world: tuple[Path, list[str]], dry: bool
) -> None:
    tmp, common = world
    (tmp / "src").mkdir()
    extra = ["--dry-run"] if dry else []
    line = one_line_error(harness(tmp, *common, "run", "js_memory", *extra, "--source", f"iotjs_pluss={tmp / 'src'}"))
    assert "no source 'iotjs_pluss' (did you mean 'iotjs_plus'?)" in line
    missing = one_line_error(harness(tmp, *common, "run", "js_memory", "--dry-run", "--source", "iotjs=/nonexistent"))
    assert "no such file or directory" in missing
    assert not (tmp / "runs").exists()


@pytest.mark.parametrize("repeats", ["0", "-1", "1001", "100000"])
def test_repeats_out_of_bounds_are_refused_before_planning(world: tuple[Path, list[str]], repeats: str) -> None:
    tmp, common = world
    line = one_line_error(harness(tmp, *common, "run", "js_memory", "--dry-run", f"--repeats={repeats}"))
    assert "give a count from 1 to 1000" in line


def test_repeats_in_the_manifest_are_bounded_too(tmp_path: Path) -> None:
    text = (ROOT / "kpis.toml").read_text().replace("repeats = 5", "repeats = 5000", 1)
    (tmp_path / "kpis.toml").write_text(text)
    with pytest.raises(ManifestError, match="must be ≤ 1000"):
        load_manifest(tmp_path / "kpis.toml")


def test_an_unknown_workload_is_refused_with_a_suggestion(world: tuple[Path, list[str]]) -> None:
    tmp, common = world
    line = one_line_error(harness(tmp, *common, "run", "js_memory", "--workload", "smal"))
    assert "--workload 'smal'" in line and "did you mean 'small'?" in line
    assert not (tmp / "runs").exists()


def test_images_build_names_an_unknown_image_before_asking_docker(tmp_path: Path) -> None:
    line = one_line_error(harness(tmp_path, "--manifest", str(ROOT / "kpis.toml"), "images", "build", "arm-cros"))
    assert "no image 'arm-cros'" in line and "did you mean 'arm-cross'?" in line and "Docker" not in line


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_validate_refuses_what_is_not_a_regular_file_at_once(tmp_path: Path, kind: str) -> None:
    path = {"fifo": tmp_path / "kpis.fifo", "device": Path("/dev/zero"), "directory": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    line = one_line_error(harness(tmp_path, "validate", str(path)))
    assert "not a regular file" in line or "Is a directory" in line


@pytest.mark.parametrize("key", ["connect_timeout_s", "command_timeout_s"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "1e9"])
def test_a_board_timeout_must_be_a_finite_number_of_seconds(tmp_path: Path, key: str, value: str) -> None:
    f = tmp_path / "boards.toml"
    f.write_text(
        '[boards.b1]\nmodel = "Raspberry Pi 4"\narch = "arm64"\ntarget = "arm64"\ntransport = "ssh"\n'
        f'host = "192.0.2.1"\n{key} = {value}\n'
    )
    with pytest.raises(ManifestError, match=f"{key}: must be a number of seconds above 0 and at most") as info:
        load_boards(f)
    assert f"{MAX_TIMEOUT_S:g}" in info.value.one_line()


@pytest.mark.parametrize("value", [float("inf"), float("-inf")])
def test_a_journal_row_with_an_infinite_value_is_not_taken_as_ok(tmp_path: Path, value: float) -> None:
    run = _ingested(tmp_path)
    journal = run / "results.jsonl"
    row = json.loads(journal.read_text().splitlines()[0])
    row.update(value=value, repeat=9)
    with journal.open("a") as f:
        f.write(json.dumps(row) + "\n")
    line = one_line_error(harness(tmp_path, "--runs-dir", str(tmp_path / "runs"), "report", "r", "--no-html"))
    assert "results.jsonl:3: " in line and f"value is {value} but status is ok" in line


# --------------------------------------------------------------------------------------------
# Planning is linear in the number of steps
# --------------------------------------------------------------------------------------------


class CountingList(list):  # type: ignore[type-arg]
    """A list that counts how often it is walked."""

    walks = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        CountingList.walks += 1
        return super().__iter__()


def test_adding_a_step_never_walks_the_steps_already_planned() -> None:
    from harness.core.plan import PlanContext

    m = load_manifest(ROOT / "kpis.toml")
    ctx = PlanContext(manifest=m, kpi=m.kpi("js_memory"), mode="smoke", targets=("x86_64",), project_root=ROOT,
                      image_key=lambda img: "k", steps=CountingList())  # fmt: skip
    prev = ctx.step(id="first", kind="fetch", where="host", description="d")
    for i in range(2000):  # each step depends on the one before: 2000 lookups of a dependency's key
        prev = ctx.step(id=f"s{i}", kind="fetch", where="host", description="d", depends=(prev.id,), after=("first",))
    assert CountingList.walks == 0
    assert len(ctx.steps) == 2001 and ctx.steps[-1].depends == ("s1998",)
