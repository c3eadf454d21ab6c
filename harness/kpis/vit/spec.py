"""What KPI 8 runs, as plain data: shared by its plan (which must stay cheap to import) and its executors."""

from __future__ import annotations

from typing import Final

from harness import payload
from harness.env.patching import Patch

KPI: Final = "vit_throughput"
TRAIN_DIR: Final = "PackViT"
ARCH: Final = "deit_small"
BENCH_TOOL: Final = payload.path("vit_throughput_bench.py")
# Inside the container (harness.kpis.common.training mounts the work directory at /work).
TOOL_PATH: Final = f"/work/tools/{BENCH_TOOL.name}"
RANDOM_WEIGHTS: Final = "/work/weights/deit_small_random.pth"
DEIT_WEIGHTS: Final = "/work/weights/deit_small_patch16_224-cd65a155.pth"
DEIT_URL: Final = "https://dl.fbaipublicfiles.com/deit/deit_small_patch16_224-cd65a155.pth"
DEIT_ENV: Final = "ANT_KPI_DEIT_SMALL"
OUTPUT_DIR: Final = "/work/out"
RUN_DIR: Final = "/work/run"  # the training's working directory: score_placeholder.json lands here
BENCH_DIR: Final = "bench"
WORKLOAD: Final = f"{ARCH}-224-b1"
PATCHES: Final = (
    Patch(
        file="engine_l2.py",
        old="        torch.cuda.synchronize()\n",
        new="        if torch.cuda.is_available():  # ANT KPI harness: CPU runs have no CUDA\n"
        "            torch.cuda.synchronize()\n",
        why="train_one_epoch calls torch.cuda.synchronize() unconditionally, which raises on a machine without "
        "an NVIDIA driver",
    ),
    Patch(
        file="vit_l2_3keep_senet.py",
        old="sparse = torch.FloatTensor(sparse).cuda()",
        new="sparse = torch.FloatTensor(sparse).to(x.device)  # ANT KPI harness: was .cuda()",
        why="the evaluation forward moves its sparsity statistics to CUDA unconditionally; .to(x.device) keeps "
        "them where the model runs",
    ),
)
