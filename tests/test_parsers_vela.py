"""The Vela parser against output captured from the real ethos-u-vela 5.2.0, and its edge cases."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from harness.errors import BadInput
from harness.parsers import vela
from harness.parsers.vela import (
    parse_vela_csv,
    parse_vela_csv_text,
    parse_vela_file,
    parse_vela_text,
    with_csv_estimates,
)

FIXTURES = Path(__file__).parent / "fixtures" / "vela"
GOLDEN = sorted(FIXTURES.glob("*.expected.json"))
INT8 = FIXTURES / "vela_5.2.0_u55_128_tiny_int8.captured.txt"
INT8_CSV = FIXTURES / "vela_5.2.0_u55_128_tiny_int8.captured.csv"
FLOAT = FIXTURES / "vela_5.2.0_u55_128_tiny_float_all_cpu.captured.txt"


def _source(expected: Path) -> Path:
    stem = expected.name.removesuffix(".expected.json")
    return expected.with_name(stem if stem.endswith(".csv") else stem + ".txt")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def test_every_vela_fixture_is_captured_and_has_a_golden_file() -> None:
    sources = sorted([*FIXTURES.glob("*.txt"), *FIXTURES.glob("*.csv")])
    assert len(sources) >= 7
    for s in sources:
        assert ".captured." in s.name, s.name
        golden = s.with_name(s.name.removesuffix(".txt") + ".expected.json")
        assert golden.is_file(), s.name


@pytest.mark.parametrize("expected", GOLDEN, ids=lambda p: p.name.removesuffix(".expected.json"))
def test_parser_matches_golden_file(expected: Path) -> None:
    golden = json.loads(expected.read_text(encoding="utf-8"))
    src = _source(expected)
    parsed = parse_vela_csv(src) if golden["parser"] == "vela_csv" else parse_vela_file(src)
    assert _jsonable(asdict(parsed)) == golden["result"]


def test_int8_summary_puts_every_operator_on_the_npu_with_cycle_estimates() -> None:
    s = parse_vela_file(INT8)
    assert s.compiled and s.accelerator == "Ethos_U55_128" and s.network == "tiny_mobilenet_like_int8"
    assert (s.npu_ops, s.cpu_ops) == (45, 0) and len(s.npu_operations) == 45 and not s.cpu_operations
    assert s.npu_operations[0].startswith("Conv2D = conv0/out")
    assert (s.npu_cycles, s.total_cycles) == (22972, 23817)
    assert s.memory_used_kib == {"SRAM": 8.73, "Off-chip Flash": 7.61}
    assert s.inference_ms == 0.05 and s.macs == 302740


def test_float_model_falls_back_to_the_cpu_and_each_reason_is_kept() -> None:
    s = parse_vela_file(FLOAT)
    assert s.compiled and (s.npu_ops, s.cpu_ops) == (0, 11)
    assert len(s.unsupported) == 11
    assert s.unsupported[0].op == "SOFTMAX" and "Float32" in s.unsupported[0].reason
    assert s.cpu_operations[0].startswith("Passthrough = conv0/out")
    assert s.inferences_per_s is None  # Vela prints nan inferences/s for an empty NPU graph


def test_default_flags_give_counts_without_cycle_estimates() -> None:
    s = parse_vela_file(FIXTURES / "vela_5.2.0_u55_128_tiny_int8_default_flags.captured.txt")
    assert (s.npu_ops, s.cpu_ops) == (37, 0)
    assert s.cycles == {} and s.npu_cycles is None and s.inference_ms is None
    assert s.npu_operations == ()  # no --show-cpu-operations: counts only


def test_failed_compilation_is_an_error_not_a_summary() -> None:
    s = parse_vela_file(FIXTURES / "vela_5.2.0_not_a_tflite.captured.txt")
    assert not s.compiled
    assert s.error == "RuntimeError: Compilation failed: No networks defined via GraphAPI"
    with pytest.raises(BadInput, match="Vela failed"):
        vela.measurements(FIXTURES / "vela_5.2.0_not_a_tflite.captured.txt")


def test_csv_gives_unrounded_estimates_and_merges_into_the_printed_summary() -> None:
    table = parse_vela_csv(INT8_CSV)
    assert table.cycles == {"NPU": 22972, "Total": 23817}
    assert table.inference_ms == pytest.approx(0.047634)
    assert table.npu_ops is None  # the CSV holds no operator counts
    merged = with_csv_estimates(parse_vela_file(INT8), table)
    assert merged.npu_ops == 45 and merged.inference_ms == pytest.approx(0.047634)
    assert merged.memory_used_kib["SRAM"] == pytest.approx(8.734375)
    assert merged.cycles["SRAM Access"] == 8433


def test_registry_measurements_from_log_and_from_csv() -> None:
    from_log = {m["metric"]: m for m in vela.measurements(INT8)}
    assert set(from_log) == {
        "npu_ops",
        "cpu_ops",
        "npu_cycles",
        "total_cycles",
        "inference_time",
        "sram_kb",
        "flash_kb",
    }
    assert from_log["npu_cycles"]["value"] == 22972.0 and from_log["sram_kb"]["unit"] == "KiB"
    from_csv = {m["metric"] for m in vela.measurements(INT8_CSV)}
    assert "npu_ops" not in from_csv and {"npu_cycles", "sram_kb"} <= from_csv


def test_all_cpu_model_reports_no_estimated_time() -> None:
    metrics = {m["metric"]: m["value"] for m in vela.measurements(FLOAT)}
    assert metrics["npu_ops"] == 0.0 and metrics["cpu_ops"] == 11.0
    assert "inference_time" not in metrics


@pytest.mark.parametrize("text", ["", "hello\n", "Neural network macs  12 MACs/batch\n"])
def test_text_without_summary_or_error_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match="no Vela network summary"):
        parse_vela_text(text, source="x.log")


def test_csv_without_the_vela_columns_is_bad_input() -> None:
    with pytest.raises(BadInput, match="not a Vela summary CSV"):
        parse_vela_csv_text("a,b\n1,2\n")
    with pytest.raises(BadInput, match="bad Vela summary CSV"):
        parse_vela_csv_text("cycles_total,network\n1,x\n")


def test_vela_error_line_without_traceback_is_kept() -> None:
    s = parse_vela_text("Error: Invalid tflite file.\n")
    assert s.error == "Error: Invalid tflite file." and not s.compiled
