"""The TVM fork's build, as data: the CMake settings, the edits to its tree, and the sources that
fill the folders the fork records no commit for. Shared by the plan (the build step's key) and the
build itself, so a change here rebuilds the fork."""

from __future__ import annotations

from typing import Final

# Appended to build/config.cmake: a later set() wins, while -D on the cmake line would be shadowed
# by the set(... OFF) lines config.cmake already holds.
CONFIG_LINES: Final = (
    "set(USE_LLVM llvm-config-14)",
    "set(USE_VTA_FSIM ON)",
    "set(USE_ETHOSU ON)",
    # The CMSIS-NN code generator: test_ethosu.py's targets are ethos-u,cmsis-nn,c.
    "set(USE_CMSISNN ON)",
    # microTVM: Gemmini's template project and the Ethos-U C runtime are built on it.
    "set(USE_MICRO ON)",
    "set(USE_GEMMINI ON)",
)
BUILD_OUTPUTS: Final = ("build/libtvm.so", "build/libvta_fsim.so")
GEMMINI_DIR: Final = "3rdparty/gemmini"
ROCC_TESTS_DIR: Final = "3rdparty/gemmini/software/gemmini-rocc-tests"
# The sources that fill 3rdparty/gemmini, in order (the fork records no commit for any of them).
GEMMINI_SOURCES: Final = {
    GEMMINI_DIR: "gemmini",
    ROCC_TESTS_DIR: "gemmini_rocc_tests",
    f"{ROCC_TESTS_DIR}/riscv-tests": "riscv_tests",
    f"{ROCC_TESTS_DIR}/rocc-software": "rocc_software",
}
# What TVM's CMake build reads from its submodules (headers of dmlc-core, dlpack and rang; the VTA
# hardware sources for the functional simulator; libbacktrace for the runtime's stack traces).
FORK_SUBMODULES: Final = (
    "3rdparty/dmlc-core",
    "3rdparty/dlpack",
    "3rdparty/rang",
    "3rdparty/vta-hw",
    "3rdparty/libbacktrace",
)
# The kpis.toml source that fills each of them (the fork records no submodule commits).
SUBMODULE_SOURCES: Final = {
    "3rdparty/dmlc-core": "tvm_dmlc_core",
    "3rdparty/dlpack": "tvm_dlpack",
    "3rdparty/rang": "tvm_rang",
    "3rdparty/vta-hw": "tvm_vta_hw",
    "3rdparty/libbacktrace": "tvm_libbacktrace",
}


_CRT_ONLY: Final = (
    "microTVM's template projects for crt only: the fork's .gitignore (*.json) left out "
    "apps/microtvm/{zephyr,arduino}/template_project/boards.json, so their copy jobs stop CMake; "
    "the Gemmini and Ethos-U flows use crt"
)
# Edits the build makes to its copy of the fork, each with its reason (reported with the rows).
TREE_FIXES: Final = (
    ("cmake/modules/Micro.cmake", "set(PLATFORMS crt;zephyr;arduino)", "set(PLATFORMS crt)", _CRT_ONLY),
    ("CMakeLists.txt", "  add_dependencies(tvm_runtime arduino)\n", "", _CRT_ONLY),
    ("CMakeLists.txt", "  add_dependencies(tvm_runtime zephyr)\n", "", _CRT_ONLY),
)

# Folders the fork's .gitignore dropped (`parts/`, `*.json`), filled into the build's copy from a
# pinned source where the copy lacks them: {path in the fork: source}. Apache TVM v0.13.0 holds the
# same files as every Apache commit whose Ethos-U sources equal the fork's (kpis.toml).
TREE_FILLS: Final = {
    "src/contrib/ethosu/cascader/parts": "tvm_v0_13",
    "configs": "tvm_v0_13",
}


def fill_paths(source: str) -> tuple[str, ...]:
    """The paths TREE_FILLS takes from `source` (its checkout is limited to them)."""
    return tuple(rel for rel, name in TREE_FILLS.items() if name == source)


# What the fork's tree lacks for an NPU's compile path, found by looking after TREE_FILLS (path, NPU,
# what it breaks). Both come from its .gitignore, which drops `parts/` and `*.json` anywhere in the
# tree. Tried here on the fork as it is:
# TVM's Ethos-U codegen on a small int8 model stops with "Cannot find type
# contrib.ethosu.cascader.InlinePart", and `python3 -m tvm.driver.tvmc compile` with
# ConfigsJsonNotFoundError.
FORK_GAPS: Final = (
    (
        "src/contrib/ethosu/cascader/parts",
        "Ethos-U55",
        "src/contrib/ethosu/cascader/parts/ (ethosu.cc, inline.cc; the fork's .gitignore drops parts/): "
        "TVM's Ethos-U back end stops every compile with 'Cannot find type contrib.ethosu.cascader.InlinePart'",
    ),
    (
        "configs",
        "Ethos-U55",
        "configs/*.json (the fork's .gitignore drops *.json): `tvmc compile` stops with ConfigsJsonNotFoundError",
    ),
)
