"""KPI 7: NPUs whose compiler testcase passes (VTA fsim, Ethos-U55, Gemmini)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.plan import PlanContext

TESTCASES = {"VTA": "test_vta.py", "Ethos-U55": "test_ethosu.py", "Gemmini": "test_gemmini.py"}


def plan(ctx: PlanContext) -> None:
    src = ctx.source("ant_model_db", paths=("compiler",))
    img = ctx.image("tvm-npu")
    build = ctx.step(
        id="build:tvm-fork",
        kind="build",
        where="image",
        image="tvm-npu",
        depends=(src.id, img.id),
        argv=("cmake", "..", "-DUSE_VTA_FSIM=ON", "-DUSE_ETHOSU=ON", "-DUSE_GEMMINI=ON", "-DUSE_LLVM=ON"),
        description="build the TVM fork with the three NPU back ends enabled, pip install -e",
        notes=("a long build: cached by its key, warm re-runs skip it",),
    )
    for npu, case in TESTCASES.items():
        ctx.step(
            id=f"measure:{npu}",
            kind="measure",
            where="image",
            image="tvm-npu",
            variant=npu,
            workload=case,
            repeat=0,
            fidelity="simulator",
            depends=(build.id,),
            argv=("python3", f"testcase/{case}"),
            description=f"run {case}; pass from evidence (exit status, what it prints, operators offloaded)",
            notes=(
                "downloads models at run time: cached and pinned by checksum, local path option",
                "Ethos-U55 needs the Corstone-300 FVP, whose licence the user must accept"
                if npu == "Ethos-U55"
                else "Gemmini needs Spike with the Gemmini extension and its RISC-V toolchain"
                if npu == "Gemmini"
                else "VTA runs on the fsim library built with the fork",
            ),
        )
    ctx.step(
        id="evaluate", kind="evaluate", where="host", description="count of NPUs that passed, each linked to its log"
    )
