"""The evidence bundle: what it holds, REPRODUCE.md, and verify catching every kind of tampering."""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import tarfile
from pathlib import Path

import pytest
from test_report import RUN_ID, make_run_dir, small_results

from harness.cli import main
from harness.core.manifest import load_manifest
from harness.report.bundle import (
    MANIFEST_NAME,
    REPRODUCE_NAME,
    BundleError,
    bundle_members,
    make_bundle,
    render_reproduce,
    verify_bundle,
)
from harness.results.store import Results

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "kpis.toml"


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run directory of the report's small results, and its bundle."""
    tmp = tmp_path_factory.mktemp("bundle")
    run_dir = make_run_dir(tmp)
    small_results().save(run_dir)
    (run_dir / "raw").mkdir()
    (run_dir / "raw" / "trace.json").write_text("{}\n")
    (run_dir / "steps" / "js_memory").mkdir(parents=True)
    (run_dir / "steps" / "js_memory" / "measure_x.json").write_text('{"id": "measure:x"}\n')
    (run_dir / "work" / "build").mkdir(parents=True)
    (run_dir / "work" / "build" / "big.o").write_bytes(b"\0" * 1000)
    out = tmp / "evidence.tar.gz"
    make_bundle(run_dir, out, load_manifest(MANIFEST))
    return run_dir, out


def _rewrite(
    src: Path, dst: Path, *, change: dict[str, bytes | None] | None = None, add: dict[str, bytes] | None = None
) -> Path:
    """Copy a bundle, replacing (bytes) or dropping (None) members and adding new ones."""
    change = change or {}
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin:
            f = tin.extractfile(m) if m.isfile() else None
            data = f.read() if f else b""
            rel = m.name.split("/", 1)[1] if "/" in m.name else m.name
            if rel in change:
                if change[rel] is None:
                    continue
                data = change[rel] or b""
            m.size = len(data)
            tout.addfile(m, io.BytesIO(data))
        for name, data in (add or {}).items():
            info = tarfile.TarInfo(f"{RUN_ID}/{name}")
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
    return dst


def test_bundle_holds_reports_results_logs_steps_and_a_manifest_but_no_work_tree(bundled: tuple[Path, Path]) -> None:
    _, out = bundled
    names = {n.split("/", 1)[1] for n in bundle_members(out)}
    for want in (
        "report.md",
        "report.html",
        "report.ko.md",
        "report.ko.html",
        "results.parquet",
        "results.csv",
        "results.meta.json",
        "raw/trace.json",
        "steps/js_memory/measure_x.json",
        REPRODUCE_NAME,
        MANIFEST_NAME,
        "logs/train.log",
        "plots/js_memory-compare.png",
    ):
        assert want in names, want
    assert not any(n.startswith("work/") for n in names)
    assert all(n.split("/", 1)[0] == RUN_ID for n in bundle_members(out))


def test_every_file_is_listed_in_the_manifest_with_its_sha256(bundled: tuple[Path, Path]) -> None:
    _, out = bundled
    with tarfile.open(out, "r:gz") as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    listed = {}
    for line in files.pop(MANIFEST_NAME).decode().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    assert set(listed) == set(files)
    assert all(hashlib.sha256(files[n]).hexdigest() == listed[n] for n in files)


def test_verify_accepts_the_bundle_and_the_cli_exits_0(
    bundled: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = bundled
    v = verify_bundle(out)
    assert v.root == RUN_ID and v.files > 10
    assert main(["verify", str(out)]) == 0
    assert "ok" in capsys.readouterr().out


def test_a_tampered_file_exits_2_with_one_line_naming_it(
    bundled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = bundled
    bad = _rewrite(out, tmp_path / "bad.tar.gz", change={"results.csv": b"value\n1e9\n"})
    assert main(["verify", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "results.csv" in err[0] and "sha256 mismatch" in err[0]


@pytest.mark.parametrize(
    ("change", "add", "message"),
    [
        ({"logs/train.log": None}, None, "logs/train.log: listed in MANIFEST.sha256 but missing"),
        (None, {"logs/extra.log": b"x"}, "logs/extra.log: not listed"),
        ({MANIFEST_NAME: b"not a manifest\n"}, None, "not a '<sha256>  <path>' line"),
        ({MANIFEST_NAME: None}, None, "MANIFEST.sha256 is missing"),
    ],
)
def test_verify_names_missing_extra_and_broken_manifest_entries(
    bundled: tuple[Path, Path],
    tmp_path: Path,
    change: dict[str, bytes | None] | None,
    add: dict[str, bytes] | None,
    message: str,
) -> None:
    _, out = bundled
    bad = _rewrite(out, tmp_path / "bad.tar.gz", change=change, add=add)
    with pytest.raises(BundleError, match=message.replace(".", r"\.").replace("'", ".")):
        verify_bundle(bad)


def test_a_repacked_archive_fails_against_its_sidecar_sum(bundled: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = bundled
    copy = _rewrite(out, tmp_path / out.name)  # same members, new archive bytes
    (tmp_path / (out.name + ".sha256")).write_text((out.parent / (out.name + ".sha256")).read_text())
    with pytest.raises(BundleError, match="repacked"):
        verify_bundle(copy)


def test_a_file_that_is_not_a_bundle_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "x.tar.gz"
    p.write_bytes(b"hello")
    assert main(["verify", str(p)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_reproduce_lists_the_run_command_and_exact_argv_of_each_row_group() -> None:
    text = render_reproduce(small_results(), run_id=RUN_ID)
    assert "ant-kpi run js_memory --mode measure --target rpi2 --workload v8-deltablue --repeats 6" in text
    argv = ["python3", "pss.py", "--", "iotjs_plus/iotjs", "test/appbench/sp-crypto-sha1.js"]
    assert shlex.join(argv) in text
    assert shlex.join(["python3", "train.py", "--data", "/data/imagenet subset", "--prune=0.9;echo"]) in text
    assert "git checkout 1234567890ab" in text
    assert "uncommitted changes" in text  # the ml rows were measured from a dirty tree
    # A workload that is the variant (one script per API) is not passed as --workload.
    assert "--workload legacy" not in text


def test_reproduce_of_a_run_resumed_under_a_newer_harness_names_each_groups_version() -> None:
    df = small_results().df.copy()
    one = df["kpi"] == "js_memory"
    df.loc[one, "harness_version"] = "0.1.0+abcdefabcdef"
    text = render_reproduce(Results(df), run_id=RUN_ID)
    assert "measured with 2 harness versions" in text
    assert "git checkout abcdefabcdef" in text and "git checkout 1234567890ab" in text
    js = text[text.index("## js_memory") :]
    js = js[: js.index("\n## ", 1)]
    assert "- harness: `0.1.0+abcdefabcdef`" in js and "1234567890ab" not in js
    single = render_reproduce(small_results(), run_id=RUN_ID)
    assert "- harness:" not in single and "harness versions" not in single


def test_bundle_cli_writes_beside_the_run_by_default(
    bundled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, _ = bundled
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / RUN_ID).symlink_to(run_dir, target_is_directory=True)
    rc = main(["--manifest", str(MANIFEST), "--runs-dir", str(runs), "bundle", RUN_ID])
    assert rc == 0, capsys.readouterr().err
    out = runs / f"{RUN_ID}.evidence.tar.gz"
    assert out.is_file() and (runs / f"{RUN_ID}.evidence.tar.gz.sha256").is_file()
    assert main(["verify", str(out)]) == 0
    meta = json.loads((run_dir / "results.meta.json").read_text())
    assert meta["rows"] == len(small_results())


def test_the_same_run_bundles_to_the_same_bytes(bundled: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, out = bundled
    again = make_bundle(run_dir, tmp_path / "again.tar.gz", load_manifest(MANIFEST))
    assert again.read_bytes() == out.read_bytes()
