"""KPI 7's step names and fixed paths, light enough for planning (no results or data libraries)."""

from __future__ import annotations

from typing import Final

# Gemmini on Spike (kpis/npus/gemmini.py).
SIM_IMAGE: Final = "gemmini-sim"
SPIKE_STEP: Final = "build:spike-gemmini"
SPIKE_BIN: Final = "/spike/install/bin/spike"
PAYLOAD_DIR: Final = "/ant-kpi"  # where payload scripts are mounted in KPI 7's containers
# The fork's Gemmini tutorials that need no download (gallery/tutorial/micro_gemmini_<name>.py); the
# MobileNet one, the same program as testcase/test_gemmini.py, downloads its model and image.
GEMMINI_TUTORIALS: Final = ("add", "conv2d", "dense", "dwconv2d", "maxpool2d")
TUTORIAL_METRIC: Final = "tutorial_passed"  # one tutorial's row; Gemmini's `passed` row needs the non-experimental ones
# What the fork's Gemmini.cmake and template Makefile read of gemmini-rocc-tests.
ROCC_TESTS_PATHS: Final = ("include", "build.sh", "configure.ac", "Makefile.in", "Makefrag")

# Ethos-U55 up to the FVP (kpis/npus/ethosu.py).
ETHOSU_COMPILE_STEP: Final = "compile:Ethos-U55"
ETHOSU_FVP_STEP: Final = "measure:Ethos-U55:fvp"
ETHOSU_MODEL: Final = "tiny_mobilenet_like_int8_fc_per_tensor.tflite"
CMSIS_PATHS: Final = ("CMSIS/Core/Include", "Device/ARM/ARMCM55")
CMSIS_NN_PATHS: Final = ("Include",)
ETHOSU_DRIVER_PATHS: Final = ("include",)
