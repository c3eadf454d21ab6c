"""Strict manifest loading: the real kpis.toml loads; every bad manifest is one located line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.core.manifest import load_manifest
from harness.errors import EXIT_BAD_INPUT, ManifestError

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "kpis.toml"
SHA_IOTJS = "02599f35810cfa6ea5495bbc42194ed576b969de"


def test_real_manifest_has_the_eight_kpis_in_seed_order() -> None:
    m = load_manifest(MANIFEST)
    assert [k.number for k in m.kpis] == list(range(1, 9))
    assert [k.id for k in m.kpis] == [
        "js_memory",
        "app_latency",
        "ml_latency",
        "ml_memory",
        "tinyml_memory",
        "boards",
        "npus",
        "vit_throughput",
    ]
    assert {k.session for k in m.kpis} >= {"kpi_js_memory", "kpi_npu", "kpi_vit_throughput"}


def test_real_manifest_pins_every_source_to_a_full_sha() -> None:
    m = load_manifest(MANIFEST)
    assert m.sources["iotjs"].commit == SHA_IOTJS
    assert m.sources["iotjs_plus_ant"].commit == "3bbccce4e1c8df6c7c5467e526081c41c7a726a2"
    for s in m.sources.values():
        assert re.fullmatch(r"[0-9a-f]{40}", s.commit), s.name


def test_real_manifest_targets_from_the_seed() -> None:
    m = load_manifest(MANIFEST)
    assert m.kpi("ml_latency").target.value == 3.0
    assert m.kpi("ml_latency").target.unit == "%p"
    assert len(m.kpi("boards").target.of) == 9
    assert m.kpi("npus").target.of == ("VTA", "Ethos-U55", "Gemmini")
    assert m.kpi("kpi_npu").number == 7
    assert m.kpi("1").id == "js_memory"


def test_build_argv_appends_the_fixes_after_the_seed_command() -> None:
    b = load_manifest(MANIFEST).builds["iotjs_plus"]
    argv = b.full_argv("rpi2")
    assert argv[:5] == ("python3", "tools/build.py", "--clean", "--target-board=rpi2", "--target-arch=arm")
    assert "--compile-flag=-Wno-error=enum-conversion" in argv


def _broken(tmp_path: Path, old: str, new: str, count: int = 1) -> Path:
    text = MANIFEST.read_text()
    assert old in text, old
    p = tmp_path / "kpis.toml"
    p.write_text(text.replace(old, new, count))
    return p


BAD_CASES = [
    # (old, new, expected key path, expected words)
    ("repeats = 5 ", "repeets = 5 ", "defaults.repeets", "did you mean 'repeats'"),
    (f'commit = "{SHA_IOTJS}"', 'commit = "02599f35"', "sources.iotjs.commit", "40 lowercase hex"),
    (f'commit = "{SHA_IOTJS}"', f'commit = "{SHA_IOTJS.upper()}"', "sources.iotjs.commit", "not a full commit"),
    ("submodules = true", 'submodules = "yes"', "sources.iotjs.submodules", "true or false"),
    ('id = "npus"', 'id = "boards"', "kpis[6].id", "duplicate id 'boards'"),
    ("number = 8", "number = 7", "kpis[7].number", "duplicate number"),
    ('image = "arm-cross"', 'image = "arm-crosss"', "builds.iotjs.image", "did you mean 'arm-cross'"),
    ('source = "vminfo"', 'source = "vminfos"', "builds.vminfo.source", "undefined source"),
    (
        'targets = ["rpi2", "arm64", "x86_64"]\ntools',
        'targets = ["rpi2", "arm65", "x86_64"]\ntools',
        "kpis[0].targets[1]",
        "undefined target 'arm65'",
    ),
    (
        'verdict_fidelity = ["static"]',
        'verdict_fidelity = ["statik"]',
        "kpis[3].verdict_fidelity[0]",
        "did you mean 'static'",
    ),
    (
        'direction = "lower", description = "peak PSS',
        'direction = "down", description = "peak PSS',
        "kpis[0].metrics[0].direction",
        "not one of",
    ),
    ('title_ko = "지원 NPU 수"\n', "", "kpis[6].title_ko", "required key is missing"),
    (
        'compare = { metric = "peak_pss"',
        'compare = { metric = "peak_rss"',
        "kpis[0].compare.metric",
        "undefined metric",
    ),
    (
        'baseline = "iotjs", candidate',
        'baseline = "iotjs_base", candidate',
        "kpis[0].compare.baseline",
        "undefined variant",
    ),
    (
        'target = { kind = "at_most", metric = "accuracy_loss", value = 3.0, unit = "%p" }',
        'target = { kind = "at_most", metric = "accuracy_loss", unit = "%p" }',
        "kpis[2].target.value",
        "required",
    ),
    ("repeats = 5 ", 'repeats = "five" ', "defaults.repeats", "must be an integer"),
    ("schema = 1", "schema = 2", "schema", "not supported"),
    (
        'workloads = ["v8-deltablue"',
        'workloads = ["v8-deltablu"',
        "kpis[0].workloads[0]",
        "did you mean 'v8-deltablue'",
    ),
    ('kind = "tflite"', 'kind = "onnx"', "workloads.mbv1_0.9_v4u.kind", "not one of"),
    ('[targets.rpi2]\narch = "armhf"', '[targets.rpi2]\narch = "armv7"', "targets.rpi2.arch", "not one of"),
    ('required_at = ["board"]', 'required_at = ["bord"]', "kpis[2].compare.required_at[0]", "did you mean 'board'"),
]


@pytest.mark.parametrize(("old", "new", "key", "words"), BAD_CASES, ids=[c[2] for c in BAD_CASES])
def test_bad_manifest_is_one_line_naming_file_key_and_problem(
    tmp_path: Path, old: str, new: str, key: str, words: str
) -> None:
    p = _broken(tmp_path, old, new)
    with pytest.raises(ManifestError) as exc:
        load_manifest(p)
    line = exc.value.one_line()
    assert "\n" not in line
    assert str(p) in line
    assert key in line
    assert words in line
    assert exc.value.exit_code == EXIT_BAD_INPUT


def test_toml_syntax_error_is_reported_with_its_position(tmp_path: Path) -> None:
    p = tmp_path / "kpis.toml"
    p.write_text("schema = 1\n[sources.x\n")
    with pytest.raises(ManifestError, match=r"TOML syntax error: .*line 2"):
        load_manifest(p)


def test_missing_file_and_non_utf8_are_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(tmp_path / "absent.toml")
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe\x00schema")
    with pytest.raises(ManifestError, match="not UTF-8"):
        load_manifest(p)


def test_a_table_where_a_list_belongs_is_a_type_error(tmp_path: Path) -> None:
    p = tmp_path / "kpis.toml"
    p.write_text(MANIFEST.read_text().replace("[[kpis]]", "[[kpiz]]").replace("schema = 1", "schema = 1\nkpis = 3"))
    with pytest.raises(ManifestError, match=r"kpis: must be a list of tables, not an integer"):
        load_manifest(p)


def test_unknown_kpi_lookup_suggests_the_close_one() -> None:
    m = load_manifest(MANIFEST)
    with pytest.raises(ManifestError, match="did you mean 'js_memory'"):
        m.kpi("js_memroy")
