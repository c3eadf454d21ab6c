"""The result file format: lossless parquet and CSV round trips, checks on load, the journal."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import BadInput
from harness.results.journal import append_row_journal
from harness.results.rows import COLUMNS, CSV_NAME, JOURNAL_NAME, META_NAME, PARQUET_NAME, RESULTS_SCHEMA_VERSION, Row
from harness.results.store import Results

TIME = "2024-05-01T12:00:00+00:00"


def row(**kw: Any) -> Row:
    base: dict[str, Any] = {
        "run_id": "20240501-120000",
        "kpi": "js_memory",
        "metric": "peak_pss",
        "variant": "iotjs",
        "workload": "v8-deltablue",
        "target": "rpi2",
        "fidelity": "board",
        "mode": "measure",
        "value": 12556.0,
        "unit": "KB",
        "time": TIME,
    }
    base.update(kw)
    return Row(**base)


def tricky_rows() -> list[Row]:
    return [
        row(
            repeat=3,
            value=12556.125,
            argv=[
                "python3",
                "pss.py",
                "--",
                "a b",
                "$(rm -rf /)",
                "x;y|z&",
                "'q'",
                '"dq"',
                "*",
                "back\\slash",
                "tab\there",
            ],
            target_identity={"board": "Raspberry Pi 3", "kernel": "6.1.0", "cpus": [0, 1], "temp_c": 48.5},
            source_commit="02599f35810cfa6ea5495bbc42194ed576b969de",
            image_digest="sha256:" + "ab" * 32,
            artefact_sha256="cd" * 32,
            harness_version="0.1.0+abcdef123456",
            harness_dirty=True,
            log="logs/measure_iotjs_v8-deltablue_rpi2_3.log",
            note='경량 자바스크립트 런타임 | comma, "quote"\nsecond line',
        ),
        row(
            variant="iotjs_plus",
            value=math.nan,
            status="blocked",
            fidelity="emulated",
            mode="smoke",
            note="Docker is not reachable — fix: start dockerd",
            harness_dirty=False,
        ),
        row(
            variant="007",
            workload="",
            target="",
            value=-0.0,
            unit="",
            note="",
            metric="final_pss",
            time="2024-05-01T12:00:01Z",
        ),
        row(value=1e-300, repeat=0, note="  leading and trailing spaces  "),
    ]


def line_end_rows() -> list[Row]:
    # A bare "\r" is what a CSV writer with "\n" line ends leaves unquoted by default.
    return [row(workload="\r", repeat=5), row(value=math.inf, status="failed", note="a\r\nb\rc\n", argv=["\r", ""])]


def same_rows(a: list[Row], b: list[Row]) -> bool:
    return [r.to_record() for r in a] == [r.to_record() for r in b]


def test_row_normalises_argv_to_a_tuple_and_keeps_identity() -> None:
    r = row(argv=["a", "b"], target_identity={"x": 1})
    assert r.argv == ("a", "b")
    assert r.target_identity == {"x": 1}
    assert r == row(argv=("a", "b"), target_identity={"x": 1})


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"value": math.nan}, "value is nan but status is ok"),
        ({"value": math.inf}, "value is inf but status is ok"),
        ({"value": -math.inf}, "value is -inf but status is ok"),
        ({"fidelity": "qemu"}, "fidelity 'qemu'"),
        ({"mode": "fast"}, "mode 'fast'"),
        ({"status": "skipped"}, "status 'skipped'"),
        ({"time": "2024-05-01T12:00:00+09:00"}, "must be UTC"),
        ({"time": "yesterday"}, "not ISO-8601"),
        ({"argv": "python3 x.py"}, "argv"),
        ({"target_identity": {"x": object()}}, "not JSON"),
        ({"repeat": 1.5}, "repeat"),
        ({"harness_dirty": "yes"}, "harness_dirty"),
    ],
)
def test_row_rejects_bad_fields_with_one_line(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(BadInput) as e:
        row(**kw)
    assert message in str(e.value)
    assert "\n" not in e.value.one_line()


def test_results_frame_has_exactly_the_schema_columns_and_dtypes() -> None:
    res = Results.from_rows(tricky_rows())
    assert list(res.df.columns) == list(COLUMNS)
    assert {c: str(t) for c, t in res.df.dtypes.items()} == COLUMNS
    empty = Results()
    assert list(empty.df.columns) == list(COLUMNS) and len(empty) == 0
    assert {c: str(t) for c, t in empty.df.dtypes.items()} == COLUMNS


def test_rows_come_back_from_the_frame_unchanged() -> None:
    rows = tricky_rows()
    assert same_rows(Results.from_rows(rows).rows(), rows)


def test_parquet_round_trip_is_lossless(tmp_path: Path) -> None:
    res = Results.from_rows(tricky_rows())
    res.save(tmp_path)
    for name in (PARQUET_NAME, CSV_NAME, META_NAME):
        assert (tmp_path / name).is_file()
    back = Results.load(tmp_path)
    pd.testing.assert_frame_equal(back.df, res.df)
    assert same_rows(back.rows(), tricky_rows())
    got = back.rows()
    assert math.isnan(got[1].value) and got[0].harness_dirty is True
    assert got[0].argv[4] == "$(rm -rf /)"
    assert math.copysign(1.0, got[2].value) == -1.0  # -0.0 survives


def test_csv_fallback_round_trip_is_lossless(tmp_path: Path) -> None:
    rows = tricky_rows() + line_end_rows()
    res = Results.from_rows(rows)
    res.save(tmp_path)
    (tmp_path / PARQUET_NAME).unlink()
    back = Results.load(tmp_path)
    pd.testing.assert_frame_equal(back.df, res.df)
    assert same_rows(back.rows(), rows)


def test_meta_records_schema_run_and_columns(tmp_path: Path) -> None:
    Results.from_rows(tricky_rows()).save(tmp_path)
    meta = json.loads((tmp_path / META_NAME).read_text())
    assert meta["schema"] == RESULTS_SCHEMA_VERSION
    assert meta["run_id"] == "20240501-120000"
    assert meta["columns"] == COLUMNS
    assert meta["rows"] == 4
    assert meta["harness_version"] and meta["created"].endswith("+00:00")


def test_corrupt_parquet_is_bad_input_in_one_line(tmp_path: Path) -> None:
    Results.from_rows(tricky_rows()).save(tmp_path)
    (tmp_path / PARQUET_NAME).write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(BadInput) as e:
        Results.load(tmp_path)
    assert PARQUET_NAME in str(e.value)
    assert "\n" not in e.value.one_line()


def test_newer_schema_in_meta_is_refused(tmp_path: Path) -> None:
    Results.from_rows(tricky_rows()).save(tmp_path)
    meta = json.loads((tmp_path / META_NAME).read_text())
    meta["schema"] = RESULTS_SCHEMA_VERSION + 1
    (tmp_path / META_NAME).write_text(json.dumps(meta))
    with pytest.raises(BadInput, match=f"schema {RESULTS_SCHEMA_VERSION + 1} is not supported"):
        Results.load(tmp_path)


def test_newer_schema_inside_parquet_is_refused(tmp_path: Path) -> None:
    table = pa.Table.from_pandas(Results.from_rows(tricky_rows()).df, preserve_index=False)
    table = table.replace_schema_metadata({b"ant_kpi.results_schema": b"99"})
    pq.write_table(table, tmp_path / PARQUET_NAME)
    with pytest.raises(BadInput, match="not supported"):
        Results.load(tmp_path)


def test_csv_with_a_missing_column_is_refused(tmp_path: Path) -> None:
    Results.from_rows(tricky_rows()).save(tmp_path)
    (tmp_path / PARQUET_NAME).unlink()
    df = pd.read_csv(tmp_path / CSV_NAME, dtype=str, keep_default_na=False)
    df.drop(columns=["argv"]).to_csv(tmp_path / CSV_NAME, index=False, quoting=csv.QUOTE_ALL)
    with pytest.raises(BadInput, match="missing column"):
        Results.load(tmp_path)


def test_corrupt_meta_is_bad_input(tmp_path: Path) -> None:
    Results.from_rows(tricky_rows()).save(tmp_path)
    (tmp_path / META_NAME).write_text("{not json")
    with pytest.raises(BadInput, match="not readable JSON"):
        Results.load(tmp_path)


def test_loading_an_empty_directory_points_at_the_journal(tmp_path: Path) -> None:
    append_row_journal(tmp_path, row())
    with pytest.raises(BadInput, match=r"results\.jsonl is there"):
        Results.load(tmp_path)


def test_empty_results_round_trip(tmp_path: Path) -> None:
    Results().save(tmp_path, run_id="empty")
    assert len(Results.load(tmp_path)) == 0


# ---- journal -----------------------------------------------------------------------------------


def test_journal_keeps_every_row_and_ignores_a_torn_last_line(tmp_path: Path) -> None:
    rows = tricky_rows()
    for r in rows:
        append_row_journal(tmp_path, r)
    path = tmp_path / JOURNAL_NAME
    with path.open("ab") as f:
        f.write(b'{"schema": 1, "run_id": "20240501-1200')  # the crash came mid-write
    assert same_rows(Results.from_journal(tmp_path).rows(), rows)
    # The next append cuts the torn fragment, so the journal stays valid line by line.
    extra = row(repeat=9)
    append_row_journal(tmp_path, extra)
    assert same_rows(Results.from_journal(tmp_path).rows(), [*rows, extra])
    for line in path.read_text(encoding="utf-8").splitlines():
        json.loads(line)


def test_journal_keeps_a_whole_last_line_missing_only_its_newline(tmp_path: Path) -> None:
    append_row_journal(tmp_path, row(repeat=1))
    path = tmp_path / JOURNAL_NAME
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    assert len(Results.from_journal(tmp_path)) == 1
    append_row_journal(tmp_path, row(repeat=2))
    assert [r.repeat for r in Results.from_journal(tmp_path).rows()] == [1, 2]


def test_journal_with_a_corrupt_middle_line_names_the_line(tmp_path: Path) -> None:
    append_row_journal(tmp_path, row(repeat=1))
    with (tmp_path / JOURNAL_NAME).open("ab") as f:
        f.write(b"garbage\n")
    append_row_journal(tmp_path, row(repeat=2))
    with pytest.raises(BadInput, match=r"results\.jsonl:2: not a JSON line"):
        Results.from_journal(tmp_path)


def test_journal_stores_nan_as_null_and_identity_as_an_object(tmp_path: Path) -> None:
    append_row_journal(tmp_path, row(value=math.nan, status="failed", target_identity={"a": 1}))
    data = json.loads((tmp_path / JOURNAL_NAME).read_text())
    assert data["value"] is None and data["target_identity"] == {"a": 1}
    assert data["schema"] == RESULTS_SCHEMA_VERSION


def test_missing_journal_is_empty(tmp_path: Path) -> None:
    assert len(Results.from_journal(tmp_path)) == 0


# ---- the result object -------------------------------------------------------------------------


def test_filter_matches_values_and_collections() -> None:
    res = Results.from_rows(tricky_rows())
    assert len(res.filter(variant="iotjs")) == 2
    assert len(res.filter(variant=["iotjs", "007"])) == 3
    assert len(res.filter(status="ok", metric="peak_pss")) == 2
    assert len(res.filter(harness_dirty=True)) == 1
    with pytest.raises(BadInput, match="cannot filter on 'board'"):
        res.filter(board="x")


def test_append_adds_in_place_and_chains() -> None:
    res = Results.from_rows(tricky_rows()[:1])
    same = res.append(tricky_rows()[1:]).append(Results.from_rows([row(repeat=7)]))
    assert same is res and len(res) == 5
    assert {c: str(t) for c, t in res.df.dtypes.items()} == COLUMNS


def test_summaries_group_by_metric_variant_and_fidelity() -> None:
    groups = Results.from_rows(tricky_rows()).summaries(kpi="js_memory")
    keys = [(g.metric, g.variant, g.fidelity, g.summary.n if g.summary else 0, g.not_ok) for g in groups]
    assert keys == [
        ("final_pss", "007", "board", 1, 0),
        ("peak_pss", "iotjs", "board", 2, 0),
        ("peak_pss", "iotjs_plus", "emulated", 0, 1),
    ]


text_st = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    note=text_st,
    argv=st.lists(text_st, max_size=4),
    value=st.floats(allow_nan=False, allow_infinity=False),
    dirty=st.booleans(),
    workload=text_st,
)
def test_any_text_survives_both_file_formats(
    note: str, argv: list[str], value: float, dirty: bool, workload: str
) -> None:
    rows = [row(note=note, argv=argv, value=value, harness_dirty=dirty, workload=workload)]
    with tempfile.TemporaryDirectory() as d:
        Results.from_rows(rows).save(d)
        assert same_rows(Results.load(d).rows(), rows)
        (Path(d) / PARQUET_NAME).unlink()
        assert same_rows(Results.load(d).rows(), rows)


def _as_schema_1(tmp_path: Path) -> Path:
    """A run directory written by schema 1: no `sample` column, version 1 in meta and parquet."""
    res = Results.from_rows(tricky_rows())
    res.save(tmp_path)
    df = res.df.drop(columns=["sample"])
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"ant_kpi.results_schema"] = b"1"
    pq.write_table(table.replace_schema_metadata(meta), tmp_path / "results.parquet")
    df.to_csv(tmp_path / "results.csv", index=False, na_rep="NaN", quoting=csv.QUOTE_ALL)
    meta_json = json.loads((tmp_path / META_NAME).read_text())
    meta_json["schema"] = 1
    (tmp_path / META_NAME).write_text(json.dumps(meta_json))
    return tmp_path


def test_schema_1_parquet_loads_with_sample_zero(tmp_path: Path) -> None:
    res = Results.load(_as_schema_1(tmp_path))
    assert len(res) == len(tricky_rows())
    assert list(res.df["sample"]) == [0] * len(res)
    assert [r.note for r in res.rows()] == [r.note for r in tricky_rows()]


def test_schema_1_csv_loads_with_sample_zero(tmp_path: Path) -> None:
    d = _as_schema_1(tmp_path)
    (d / "results.parquet").unlink()
    res = Results.load(d)
    assert list(res.df["sample"]) == [0] * len(tricky_rows())
    assert list(res.df["repeat"]) == [r.repeat for r in tricky_rows()]


def test_schema_1_journal_lines_load_with_sample_zero(tmp_path: Path) -> None:
    row = tricky_rows()[0]
    record = {"schema": 1, **{k: v for k, v in row.to_record().items() if k != "sample"}}
    (tmp_path / "results.jsonl").write_text(json.dumps(record) + "\n")
    res = Results.from_journal(tmp_path)
    assert res.rows()[0].sample == 0
    assert res.rows()[0].metric == row.metric


def test_rows_differing_only_in_sample_are_distinct_rows(tmp_path: Path) -> None:
    from harness.results.runs import collect

    base = tricky_rows()[0]
    for n in (1, 2, 3):
        append_row_journal(tmp_path, dataclasses.replace(base, sample=n, status="ok", value=float(n)))
    df = collect(tmp_path).df
    assert sorted(df["sample"]) == [1, 2, 3]
