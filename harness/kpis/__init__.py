"""The eight KPIs: one registry, read by the commands, noxfile.py and the tests; one folder per KPI.

Each KPI's folder holds its plan (`plan(ctx)`: the steps, for the dry run and the runner) and its
execution (`EXECUTORS`: what each step kind does). Code shared by several KPIs is in `common/`.
Importing this module is cheap: a KPI's modules are imported only when it is planned or run.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

from harness.errors import BadInput, ManifestError
from harness.options import EnvSettings

if TYPE_CHECKING:
    from harness.core.manifest import Kpi, Manifest
    from harness.core.plan import KpiPlan, PlanContext
    from harness.core.runner import Executor
    from harness.core.steps import Mode


class Procedure(Protocol):
    """Lays out a KPI's steps for a mode and targets (the dry run and the runner share it)."""

    def plan(self, ctx: PlanContext) -> None: ...


@dataclass(frozen=True, kw_only=True)
class KpiEntry:
    """Where a KPI's code lives and what its nox session needs."""

    id: str
    session: str
    plan: str  # module with plan(ctx)
    execute: str  # module with the executors
    executors: str = "EXECUTORS"  # attribute of `execute`
    needs: tuple[str, ...] = ()  # nox tags: docker, qemu, ml, npu
    ingest_parser: str = ""  # the parser `ant-kpi ingest` uses by default

    @property
    def folder(self) -> str:
        return self.plan.rsplit(".", 1)[0]


def _e(
    kpi: str,
    session: str,
    folder: str,
    *,
    plan: str = "plan",
    executors: str = "EXECUTORS",
    needs: tuple[str, ...],
    ingest_parser: str = "",
) -> KpiEntry:
    pkg = f"harness.kpis.{folder}"
    return KpiEntry(
        id=kpi,
        session=session,
        plan=f"{pkg}.{plan}",
        execute=f"{pkg}.execute",
        executors=executors,
        needs=needs,
        ingest_parser=ingest_parser,
    )


REGISTRY: Final[Mapping[str, KpiEntry]] = {
    e.id: e
    for e in (
        _e("js_memory", "kpi_js_memory", "js_memory", needs=("docker", "qemu"), ingest_parser="vminfo"),
        _e("app_latency", "kpi_app_latency", "app_latency", needs=("docker", "qemu"), ingest_parser="resourcebench"),
        _e(
            "ml_latency",
            "kpi_ml_latency",
            "ml",
            plan="plan_latency",
            executors="EXECUTORS_ML_LATENCY",
            needs=("docker", "ml"),
            ingest_parser="benchmark_model",
        ),
        _e("ml_memory", "kpi_ml_memory", "ml", plan="plan_memory", executors="EXECUTORS_ML_MEMORY", needs=("ml",)),
        _e("tinyml_memory", "kpi_tinyml_memory", "tinyml", needs=("docker", "ml")),
        _e("boards", "kpi_boards", "streaming_boards", needs=("docker", "qemu")),
        _e("npus", "kpi_npu", "npus", needs=("docker", "npu")),
        _e("vit_throughput", "kpi_vit_throughput", "vit", needs=("docker", "ml")),
    )
}


def entry(kpi_id: str) -> KpiEntry:
    try:
        return REGISTRY[kpi_id]
    except KeyError:
        raise BadInput(f"no KPI {kpi_id!r} in the registry; KPIs: {', '.join(REGISTRY)}") from None


def procedure_for(kpi: Kpi) -> Procedure:
    if kpi.procedure not in REGISTRY:
        raise ManifestError(
            "kpis.toml",
            f"kpis.{kpi.id}.procedure",
            f"unknown procedure {kpi.procedure!r}; known: {', '.join(REGISTRY)}",
        )
    module: Procedure = importlib.import_module(REGISTRY[kpi.procedure].plan)
    return module


def executors_for(kpi_id: str) -> dict[str, Executor]:
    """The shared executors (source, image, build, evaluate) overlaid with the KPI's own."""
    from harness.kpis.common.executors import COMMON_EXECUTORS

    e = entry(kpi_id)
    own: Mapping[str, Executor] = getattr(importlib.import_module(e.execute), e.executors)
    return {**COMMON_EXECUTORS, **own}


def plan_kpi(
    manifest: Manifest,
    kpi: Kpi,
    *,
    mode: Mode = "smoke",
    targets: Sequence[str] = (),
    project_root: Path | None = None,
    boards: Mapping[str, str] | None = None,
    env: EnvSettings | None = None,
) -> KpiPlan:
    """The ordered steps of one KPI for a mode and targets: the dry run, and the runner's input."""
    from harness.core.plan import KpiPlan, PlanContext
    from harness.env.image_context import context_digest

    chosen = tuple(targets) if targets else kpi.targets
    for t in chosen:
        if t not in kpi.targets:
            raise BadInput(f"KPI {kpi.id} has no target {t!r}; its targets are {', '.join(kpi.targets)}")
    root = project_root or manifest.path.resolve().parent
    settings = env or EnvSettings()
    ctx = PlanContext(
        manifest=manifest,
        kpi=kpi,
        mode=mode,
        targets=chosen,
        project_root=root,
        boards=boards or {},
        image_key=lambda img: context_digest(img, root, settings),
    )
    procedure_for(kpi).plan(ctx)
    return KpiPlan(
        kpi=kpi,
        mode=mode,
        targets=chosen,
        steps=tuple(ctx.steps),
        gaps=tuple(ctx.gaps),
        not_in_mode=tuple(ctx.not_in_mode),
    )


def plan_all(
    manifest: Manifest,
    keys: Sequence[str] = (),
    *,
    mode: Mode = "smoke",
    target: str | None = None,
    project_root: Path | None = None,
    env: EnvSettings | None = None,
) -> list[KpiPlan]:
    kpis = [manifest.kpi(k) for k in keys] if keys else list(manifest.kpis)
    plans = []
    for k in kpis:
        if target is not None and target not in k.targets:
            continue
        plans.append(
            plan_kpi(manifest, k, mode=mode, targets=(target,) if target else (), project_root=project_root, env=env)
        )
    if target is not None and not plans:
        raise BadInput(f"no selected KPI runs on target {target!r}")
    return plans
