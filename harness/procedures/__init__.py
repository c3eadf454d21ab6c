"""One module per KPI procedure, each satisfying `Procedure`, registered in one dict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from harness.errors import ManifestError

if TYPE_CHECKING:
    from harness.manifest import Kpi
    from harness.plan import PlanContext


class Procedure(Protocol):
    """Lays out a KPI's steps for a mode and targets (the dry run and the runner share it)."""

    def plan(self, ctx: PlanContext) -> None: ...


def _registry() -> dict[str, Procedure]:
    from harness.procedures import (
        app_latency,
        boards,
        js_memory,
        ml_latency,
        ml_memory,
        npus,
        tinyml_memory,
        vit_throughput,
    )

    return {
        "js_memory": js_memory,
        "app_latency": app_latency,
        "ml_latency": ml_latency,
        "ml_memory": ml_memory,
        "tinyml_memory": tinyml_memory,
        "boards": boards,
        "npus": npus,
        "vit_throughput": vit_throughput,
    }


PROCEDURE_NAMES: Final = (
    "js_memory",
    "app_latency",
    "ml_latency",
    "ml_memory",
    "tinyml_memory",
    "boards",
    "npus",
    "vit_throughput",
)


def procedure_for(kpi: Kpi) -> Procedure:
    reg = _registry()
    if kpi.procedure not in reg:
        raise ManifestError(
            "kpis.toml", f"kpis.{kpi.id}.procedure", f"unknown procedure {kpi.procedure!r}; known: {', '.join(reg)}"
        )
    return reg[kpi.procedure]
