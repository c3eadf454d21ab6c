"""The parser of KPI 8 training output: PackViT's console log and output_dir/log.txt."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from harness.errors import BadInput
from harness.parsers import packvit
from tests.golden import check_fixture_names, check_golden, golden_files, golden_id

FIXTURES = Path(__file__).parent / "fixtures"
DIRS = (FIXTURES / "vit",)
GOLDEN = golden_files(DIRS)


def _parse(parser: str, text: str, source: str) -> Any:
    if parser == "packvit":
        return asdict(packvit.parse_packvit_text(text, source=source))
    if parser == "packvit_log_txt":
        return {"epochs": [asdict(e) for e in packvit.parse_log_txt(text, source=source)]}
    raise AssertionError(f"unknown parser {parser}")


def test_every_fixture_has_a_golden_file_and_says_where_it_came_from() -> None:
    check_fixture_names(DIRS)


@pytest.mark.parametrize("expected", GOLDEN, ids=golden_id)
def test_parser_matches_golden_file(expected: Path) -> None:
    check_golden(expected, _parse)


# ---- PackViT ----------------------------------------------------------------------------------


def test_packvit_top1_is_max_accuracy_else_the_last_acc_line() -> None:
    with_max = packvit.parse_packvit_text("* Acc@1 10.000 Acc@5 20.000 loss 1.0\nMax accuracy: 12.50%\n")
    assert with_max.top1 == 12.5
    without = packvit.parse_packvit_text("* Acc@1 10.000 Acc@5 20.000 loss 1.0\n* Acc@1 7.000 Acc@5 9.000 loss 1\n")
    assert without.top1 == 7.0


def test_packvit_sparsity_belongs_to_the_next_accuracy_line_only() -> None:
    log = packvit.parse_packvit_text(
        "Sparsity0:0.5,Sparsity1:0.75,Sparsity2:nan,\n* Acc@1 1.000 Acc@5 2.000 loss 3.0\n"
        "* Acc@1 4.000 Acc@5 5.000 loss 6.0\n"
    )
    assert log.evaluations[0].sparsity[:2] == (0.5, 0.75)
    assert log.evaluations[1].sparsity == ()


def test_packvit_rejects_a_file_that_is_no_training_log() -> None:
    with pytest.raises(BadInput, match="not a PackViT"):
        packvit.parse_packvit_text("hello\n")


def test_log_txt_lines_that_are_not_epoch_records_are_bad_input() -> None:
    with pytest.raises(BadInput, match=r"log\.txt:2"):
        packvit.parse_log_txt('{"epoch": 0, "test_acc1": 1, "test_acc5": 2}\n{"epoch": 1}\n')
    with pytest.raises(BadInput, match="no epoch"):
        packvit.parse_log_txt("\n")


def test_packvit_measurements_read_log_txt_by_name(tmp_path: Path) -> None:
    p = tmp_path / "log.txt"
    p.write_text('{"epoch": 0, "test_acc1": 1.5, "test_acc5": 2}\n{"epoch": 1, "test_acc1": 0.5, "test_acc5": 2}\n')
    (m,) = packvit.measurements(p)
    assert m["value"] == 1.5 and "2 epoch" in m["note"]
