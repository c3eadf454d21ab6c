"""The report says where the pinned builds need extra flags on today's toolchains."""

from __future__ import annotations

from pathlib import Path

from harness.core.manifest import load_manifest
from harness.report.buildnotes import build_notes_markdown, builds_of

M = load_manifest(Path(__file__).resolve().parent.parent / "kpis.toml")


def test_kpi1_notes_name_every_fix_with_its_reason() -> None:
    kpi = M.kpi("js_memory")
    assert builds_of(M, [kpi]) == ["iotjs", "iotjs_plus", "vminfo"]
    md = build_notes_markdown(M, [kpi])
    assert "CMAKE_POLICY_DEFAULT_CMP0054=NEW" in md
    assert "-Wno-error=enum-conversion" in md and "GCC >= 10" in md
    assert "jerry-board-config.h" in md
    assert "arm64: not built" in md


def test_no_builds_no_section() -> None:
    assert build_notes_markdown(M, [M.kpi("npus")]) == ""
