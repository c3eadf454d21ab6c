"""What KPI 5 runs, as plain data: shared by its plan (which must stay cheap to import) and its executors."""

from __future__ import annotations

from typing import Final

from harness import payload
from harness.env.patching import Patch

KPI: Final = "tinyml_memory"
TRAIN_DIR: Final = "tinyml/patch-aware-training"
SCRIPT: Final = "patch_aware_train.py"
MODEL: Final = "efficientnet_b0"
INPUT_SIZE: Final = 224
MEMORY_WORKLOAD: Final = f"{MODEL}-{INPUT_SIZE}"
MEMORY_TOOL: Final = payload.path("patch_memory.py")
SHIMS_DIR: Final = payload.path("shims/patch_aware")
SHIM_MODULES: Final = ("presets.py", "utils.py", "sampler.py", "transforms.py")
# Inside the container (harness.kpis.common.training mounts the work directory at /work).
CHECKPOINT: Final = "/work/out/checkpoint.pth"
MEMORY_JSON: Final = "peak-memory.json"
PATCHES: Final = (
    Patch(
        file=SCRIPT,
        old='os.environ["CUDA_VISIBLE_DEVICES"]="4,5,6,7"\n',
        new='# os.environ["CUDA_VISIBLE_DEVICES"]="4,5,6,7"  (removed by the ANT KPI harness)\n',
        why="the script pins GPUs 4-7 at import: on a machine with fewer than five GPUs that hides every GPU, "
        "and the harness chooses the devices itself",
    ),
)
