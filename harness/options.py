"""Every option the harness takes from its environment, resolved once into typed, frozen values.

The command line (cli.py) and the environment variables below are read here and nowhere else:
lower layers receive these values as arguments, so a module never depends on the process's
environment and a test states what it sets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

# The folder holding the harness package: a source checkout's root (kpis.toml, qemu/, containers/).
SOURCE_ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_RUNS_DIR: Final = "runs"
DEFAULT_CACHE_DIR: Final = ".ant-kpi/cache"
BUILD_ARG_PREFIX: Final = "ANT_KPI_BUILD_ARG_"
# The most repeats of one measurement (kpis.toml or --repeats): a year's evaluation uses tens; a
# typo of 100000 would plan millions of steps.
MAX_REPEATS: Final = 1000

# Every variable the harness reads, with what it means: `ant-kpi doctor` and README.md list these.
VARIABLES: Final[Mapping[str, str]] = {
    "ANT_KPI_MANIFEST": "the kpis.toml to use (default: ./kpis.toml, else the one beside the package)",
    "ANT_KPI_RUNS": "where runs are stored (default: <project>/runs)",
    "ANT_KPI_CACHE": "checkouts, images' work files and artefacts (default: <project>/.ant-kpi/cache)",
    "ANT_KPI_BOARDS": "the lab inventory (default: ./boards.toml)",
    "ANT_KPI_WHEELHOUSE": "directories of wheel files for images that install Python packages (dir[:dir...])",
    "ANT_KPI_HOST_WHEELHOUSE": "yes (default): the host's pip fills an image's pinned wheels, the image installs "
    "offline; no: the image's own pip uses the index",
    "ANT_KPI_BUILD_ARG_<NAME>": "build argument NAME for every image whose Dockerfile declares `ARG NAME`",
    "ANT_KPI_KEEP_CONTAINER": "1 keeps a container whose commands failed, for inspection",
    "ANT_KPI_GPUS": "GPUs for training containers: auto (default), all, none or device=0,1",
    "ANT_KPI_ENGINE_DATA": "the data set's path on a remote Docker engine's machine (ImageNet for KPIs 3, 5, 8)",
    "ANT_KPI_ENGINE_FILES": "mount or copy: how training inputs reach the engine (default: by engine)",
    "ANT_KPI_IMAGENET": "a local ImageNet folder (train/ and val/) for KPIs 3, 5 and 8",
    "ANT_KPI_BASELINE_TFLITE": "a local mobilenet_v2_1.0_224.tflite (or its .tgz) for KPIs 3 and 4",
    "ANT_KPI_DENSE_TOP1": "KPI 3's dense Top-1 (%) instead of measuring it (the report marks it as an override)",
    "ANT_KPI_DEIT_SMALL": "a local DeiT-S checkpoint for KPI 8",
    "ANT_KPI_TVM_NPU_IMAGE": "an existing image to use as tvm-npu for KPI 7",
    "ANT_KPI_BUILD_TVM_NPU_IMAGE": "1 builds the tvm-npu image during a KPI 7 run",
    "ANT_KPI_NPU_MODELS": "a local folder of KPI 7's model files (MXNet's resnet18_v1-a0666292.params, synset.txt, "
    "cat.png; Gemmini's mobilenet_v2_1.0_224.tgz): without them VTA is checked on seeded random weights",
    "DOCKER_HOST": "the Docker engine (default: the local socket); a remote engine trains on its GPUs",
}


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


@dataclass(frozen=True, kw_only=True)
class EnvSettings:
    """The harness's environment variables, read once (see VARIABLES)."""

    manifest: Path | None = None
    runs_dir: Path | None = None
    cache_dir: Path | None = None
    boards: Path | None = None
    wheelhouse: str = ""
    host_wheelhouse: bool = True
    build_args: Mapping[str, str] = field(default_factory=dict)
    keep_container: bool = False
    gpus: str = ""
    engine_data: str = ""
    engine_files: str = ""
    imagenet: str = ""
    baseline_tflite: str = ""
    dense_top1: str = ""
    deit_small: str = ""
    tvm_npu_image: str = ""
    build_tvm_npu_image: bool = False
    npu_models: str = ""
    docker_host: str = ""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> EnvSettings:
        env = os.environ if environ is None else environ
        return cls(
            manifest=_path(env.get("ANT_KPI_MANIFEST")),
            runs_dir=_path(env.get("ANT_KPI_RUNS")),
            cache_dir=_path(env.get("ANT_KPI_CACHE")),
            boards=_path(env.get("ANT_KPI_BOARDS")),
            wheelhouse=env.get("ANT_KPI_WHEELHOUSE", ""),
            host_wheelhouse=env.get("ANT_KPI_HOST_WHEELHOUSE", "yes").strip().lower() not in ("no", "0", "false"),
            build_args={k[len(BUILD_ARG_PREFIX) :]: v for k, v in env.items() if k.startswith(BUILD_ARG_PREFIX)},
            keep_container=env.get("ANT_KPI_KEEP_CONTAINER") == "1",
            gpus=env.get("ANT_KPI_GPUS", ""),
            engine_data=env.get("ANT_KPI_ENGINE_DATA", ""),
            engine_files=env.get("ANT_KPI_ENGINE_FILES", ""),
            imagenet=env.get("ANT_KPI_IMAGENET", ""),
            baseline_tflite=env.get("ANT_KPI_BASELINE_TFLITE", ""),
            dense_top1=env.get("ANT_KPI_DENSE_TOP1", ""),
            deit_small=env.get("ANT_KPI_DEIT_SMALL", ""),
            tvm_npu_image=env.get("ANT_KPI_TVM_NPU_IMAGE", ""),
            build_tvm_npu_image=env.get("ANT_KPI_BUILD_TVM_NPU_IMAGE") == "1",
            npu_models=env.get("ANT_KPI_NPU_MODELS", ""),
            docker_host=env.get("DOCKER_HOST", ""),
        )


@dataclass(frozen=True, kw_only=True)
class GlobalOptions:
    """What every command knows: the manifest, the project, where runs and caches live, the environment."""

    manifest: Path
    project_root: Path
    runs_dir: Path
    cache_dir: Path
    env: EnvSettings = field(default_factory=EnvSettings)

    @classmethod
    def resolve(
        cls,
        *,
        manifest: Path | None,
        runs_dir: Path | None,
        env: EnvSettings,
        package_root: Path,
        cwd: Path | None = None,
    ) -> GlobalOptions:
        """Command line first, then the environment, then the defaults beside the manifest."""
        chosen = manifest or env.manifest or _default_manifest(cwd or Path.cwd(), package_root)
        root = chosen.resolve().parent
        return cls(
            manifest=chosen,
            project_root=root,
            runs_dir=runs_dir or env.runs_dir or root / DEFAULT_RUNS_DIR,
            cache_dir=env.cache_dir or root / DEFAULT_CACHE_DIR,
            env=env,
        )


def _default_manifest(cwd: Path, package_root: Path) -> Path:
    here = cwd / "kpis.toml"
    return here if here.exists() else package_root / "kpis.toml"
