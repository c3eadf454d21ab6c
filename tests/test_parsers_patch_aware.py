"""The parser of KPI 5 training output: tinyml/patch-aware-training/patch_aware_train.py logs."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from harness.errors import BadInput
from harness.parsers import patch_aware
from tests.golden import check_fixture_names, check_golden, golden_files, golden_id

FIXTURES = Path(__file__).parent / "fixtures"
DIRS = (FIXTURES / "tinyml",)
GOLDEN = golden_files(DIRS)


def _parse(parser: str, text: str, source: str) -> Any:
    if parser == "patch_aware":
        return asdict(patch_aware.parse_patch_aware_text(text, source=source))
    raise AssertionError(f"unknown parser {parser}")


def test_every_fixture_has_a_golden_file_and_says_where_it_came_from() -> None:
    check_fixture_names(DIRS)


@pytest.mark.parametrize("expected", GOLDEN, ids=golden_id)
def test_parser_matches_golden_file(expected: Path) -> None:
    check_golden(expected, _parse)


# ---- patch_aware_train.py -----------------------------------------------------------------------


def test_top1_is_the_last_evaluation_of_the_trained_model_not_the_ema_copy() -> None:
    log = patch_aware.parse_patch_aware_text(
        "Test:  Acc@1 10.000 Acc@5 20.000\nTest: EMA Acc@1 90.000 Acc@5 99.000\nTest:  Acc@1 30.000 Acc@5 40.000\n"
        "Test: EMA Acc@1 95.000 Acc@5 99.000\n"
    )
    assert (log.top1, log.top5) == (30.0, 40.0)


def test_patchwise_layers_count_only_the_construction_prints_not_the_model_print() -> None:
    text = (
        "MyConv_function_stride1(\n) 4\n"
        "EfficientNet(\n  (0): MyConv_function_stride1(\n  )\n)\nTest:  Acc@1 1.000 Acc@5 2.000\n"
    )
    assert patch_aware.parse_patch_aware_text(text).patchwise_layers == 1


def test_a_crash_after_an_evaluation_is_reported() -> None:
    log = patch_aware.parse_patch_aware_text(
        'Test:  Acc@1 1.000 Acc@5 2.000\nTraceback (most recent call last):\n  File "x", line 1\nRuntimeError: boom\n'
    )
    assert log.error == "RuntimeError: boom" and log.training_time_s is None


def test_patch_aware_measurements_refuse_a_crashed_run(tmp_path: Path) -> None:
    p = tmp_path / "train.log"
    p.write_text((FIXTURES / "tinyml" / "missing_presets.handwritten.txt").read_text())
    with pytest.raises(BadInput, match="crashed"):
        patch_aware.measurements(p)
    p.write_text((FIXTURES / "tinyml" / "patch_smoke_1_epoch.handwritten.txt").read_text())
    (m,) = patch_aware.measurements(p)
    assert (m["metric"], m["value"], m["unit"]) == ("top1", 50.0, "%")
