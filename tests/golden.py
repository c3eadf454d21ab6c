"""Golden-file checks shared by the parser tests: `<name>.txt` beside `<name>.expected.json`.

The JSON names the parser (`"parser"`) and holds either its `"result"` or `"bad_input": true`.
A fixture's name says where it came from: `.captured.` (from the real tool) or `.handwritten.`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from harness.errors import BadInput

Parse = Callable[[str, str, str], Any]  # (parser name, text, source name) -> JSON-ready result


def golden_files(dirs: Iterable[Path]) -> list[Path]:
    return sorted(p for d in dirs for p in d.glob("*.expected.json"))


def golden_id(p: Path) -> str:
    return f"{p.parent.name}/{p.name.removesuffix('.expected.json')}"


def check_fixture_names(dirs: Iterable[Path]) -> None:
    """Every fixture has its golden file and says whether it was captured or written by hand."""
    texts = sorted(p for d in dirs for p in d.glob("*.txt"))
    assert texts
    for t in texts:
        assert t.with_name(t.name.removesuffix(".txt") + ".expected.json").is_file(), t.name
        assert ".captured." in t.name or ".handwritten." in t.name, t.name


def check_golden(expected: Path, parse: Parse) -> None:
    """The parser gives what the golden file holds, or BadInput where it says so."""
    golden = json.loads(expected.read_text(encoding="utf-8"))
    txt = expected.with_name(expected.name.removesuffix(".expected.json") + ".txt")
    text = txt.read_text(encoding="utf-8")
    if golden.get("bad_input"):
        with pytest.raises(BadInput):
            parse(golden["parser"], text, txt.name)
        return
    assert json.loads(json.dumps(parse(golden["parser"], text, txt.name))) == golden["result"]
