"""The package's layout holds: layers import only downwards, KPI folders stay apart, no import cycle.

The contracts live in pyproject.toml ([tool.importlinter]); import-linter checks them on the real
import graph (every import statement, including those inside functions).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

from harness.kpis import REGISTRY

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_of_pyproject_hold() -> None:
    # lint-imports is installed beside this interpreter (the test extra).
    exe = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(exe), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Contracts: 3 kept, 0 broken." in proc.stdout


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    graph = grimp.build_graph("harness", cache_dir=None)
    cycles = []
    for mod in sorted(graph.modules):
        for dep in graph.find_modules_directly_imported_by(mod):
            if graph.find_shortest_chain(importer=dep, imported=mod) is not None:
                cycles.append(f"{mod} -> {dep}")
    assert cycles == []


def test_every_kpi_of_the_manifest_has_one_registry_entry_with_its_session() -> None:
    from harness.core.manifest import load_manifest

    m = load_manifest(ROOT / "kpis.toml")
    assert [k.id for k in m.kpis] == list(REGISTRY)
    assert {k.id: k.session for k in m.kpis} == {e.id: e.session for e in REGISTRY.values()}


def test_payload_imports_nothing_of_the_harness() -> None:
    graph = grimp.build_graph("harness", cache_dir=None)
    for mod in graph.find_descendants("harness.payload"):
        assert {d for d in graph.find_modules_directly_imported_by(mod) if d != "harness.payload"} == set(), mod
