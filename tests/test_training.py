"""Training runs: upstream tree preparation, the cuda-train build context, GPU requests, run_training.

The cuda-train image itself is never built here (PyTorch's CUDA build is ~5.5 GB): its Dockerfile and
requirements are checked as files, and run_training runs shell commands in the Debian base image.
Tests marked `docker` need a reachable Docker daemon.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.core.manifest import Image, load_manifest
from harness.core.runner import Run
from harness.core.steps import Step
from harness.env import base_image, image_context, images
from harness.env.container import GpuChoice, decide_gpus
from harness.errors import BadInput, Blocked, StepFailed
from harness.kpis.common.training import (
    DATA_MOUNT,
    ENGINE_DATA_ENV,
    ENGINE_FILES_ENV,
    Patch,
    engine_is_local,
    prepare_tree,
    run_training,
    transfer_mode,
)
from harness.options import EnvSettings

ROOT = Path(__file__).resolve().parent.parent
CONTEXT = ROOT / "containers" / "cuda-train"
MANIFEST = load_manifest(ROOT / "kpis.toml")


# --------------------------------------------------------------------------------------------
# prepare_tree
# --------------------------------------------------------------------------------------------


@pytest.fixture
def upstream(tmp_path: Path) -> Path:
    src = tmp_path / "upstream"
    (src / "models").mkdir(parents=True)
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (src / "main.py").write_text("def main():\n    args = parser.parse_args()\n    run(args)\n")
    (src / "models" / "net.py").write_text("x = torch.zeros(1).cuda()\n")
    return src


FIX = Patch(
    file="main.py",
    old="    args = parser.parse_args()\n",
    new="    args = parser.parse_args()\n    best = 0\n",
    why="best is read before it is assigned",
)


def test_prepare_tree_copies_without_git_applies_the_patch_and_leaves_the_checkout_alone(
    upstream: Path, tmp_path: Path
) -> None:
    tree, stubs = prepare_tree(upstream, tmp_path / "work", patches=[FIX], stubs={"gluoncv.py": "X = 1\n"})
    assert tree == tmp_path / "work" / "src" and stubs == tmp_path / "work" / "stubs"
    assert (tree / "main.py").read_text().splitlines()[1:3] == ["    args = parser.parse_args()", "    best = 0"]
    assert (upstream / "main.py").read_text().count("best") == 0
    assert not (tree / ".git").exists() and (tree / "models" / "net.py").is_file()
    assert (stubs / "gluoncv.py").read_text() == "X = 1\n"
    record = (tmp_path / "work" / "patches.json").read_text()
    assert "best is read before it is assigned" in record and "gluoncv.py" in record


def test_a_missing_anchor_fails_naming_the_file_and_the_reason(upstream: Path, tmp_path: Path) -> None:
    moved = Patch(file="models/net.py", old="torch.ones(1).cuda()", new="torch.ones(1)", why="no GPU in smoke runs")
    with pytest.raises(StepFailed) as err:
        prepare_tree(upstream, tmp_path / "work", patches=[moved])
    assert "models/net.py" in err.value.what
    assert "no GPU in smoke runs" in err.value.what
    assert "torch.ones(1).cuda()" in err.value.what


def test_a_patch_of_a_missing_file_or_an_ambiguous_anchor_fails(upstream: Path, tmp_path: Path) -> None:
    with pytest.raises(StepFailed, match=r"absent\.py: no such file"):
        prepare_tree(upstream, tmp_path / "w1", patches=[Patch(file="absent.py", old="a", new="b", why="w")])
    (upstream / "twice.py").write_text("a = 1\na = 1\n")
    with pytest.raises(StepFailed, match=r"twice\.py: the text to patch occurs 2 times"):
        prepare_tree(upstream, tmp_path / "w2", patches=[Patch(file="twice.py", old="a = 1\n", new="", why="w")])


def test_a_patch_needs_a_reason_and_some_text_to_replace() -> None:
    with pytest.raises(BadInput, match="why"):
        Patch(file="main.py", old="a", new="b", why=" ")
    with pytest.raises(BadInput, match="empty"):
        Patch(file="main.py", old="", new="b", why="w")


def test_crlf_files_and_bytes_that_are_not_utf8_survive_a_patch(upstream: Path, tmp_path: Path) -> None:
    # Like tinyml/patch-aware-training/zero_borderkernel.py: CRLF line ends, an EUC-KR comment.
    (upstream / "legacy.py").write_bytes(b"# \xc7\xd1\xb1\xdb\r\nimport os\r\nos.environ['X'] = '4'\r\nrun()\r\n")
    patch = Patch(file="legacy.py", old="os.environ['X'] = '4'\n", new="", why="hides devices")
    tree, _ = prepare_tree(upstream, tmp_path / "work", patches=[patch])
    assert (tree / "legacy.py").read_bytes() == b"# \xc7\xd1\xb1\xdb\r\nimport os\r\nrun()\r\n"


def test_preparing_again_starts_from_a_fresh_copy(upstream: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    prepare_tree(upstream, work, patches=[FIX], stubs={"a.py": ""})
    (work / "src" / "stray.txt").write_text("left by an earlier run")
    tree, stubs = prepare_tree(upstream, work, patches=[FIX])
    assert not (tree / "stray.txt").exists() and not (stubs / "a.py").exists()
    assert (tree / "main.py").read_text().count("best = 0") == 1


def test_stub_names_must_be_module_files(upstream: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="module file name"):
        prepare_tree(upstream, tmp_path / "work", stubs={"../evil.py": ""})


def test_the_admm_tree_is_prepared_through_prepare_tree(upstream: Path, tmp_path: Path) -> None:
    from harness.kpis.ml import train as ml_train

    tree, stubs = ml_train.prepare_admm_tree(upstream, tmp_path / "work")
    assert "best_acc1 = 0" in (tree / "main.py").read_text()
    assert sorted(p.name for p in stubs.iterdir()) == ["auto_augment.py", "gluoncv.py"]
    assert "UnboundLocalError" in (tmp_path / "work" / "patches.json").read_text()


# --------------------------------------------------------------------------------------------
# The cuda-train build context
# --------------------------------------------------------------------------------------------


def _requirement_lines() -> dict[str, list[str]]:
    out = {}
    for req in sorted(CONTEXT.glob("requirements*.txt")):
        lines = [ln.split("#", 1)[0].strip() for ln in req.read_text().splitlines()]
        out[req.name] = [ln for ln in lines if ln]
    return out


def test_every_requirement_is_pinned_with_double_equals() -> None:
    reqs = _requirement_lines()
    assert set(reqs) == {
        "requirements.txt",
        "requirements-torch-cuda.txt",
        "requirements-torch-cpu.txt",
        "requirements-no-deps.txt",
    }
    for name, lines in reqs.items():
        assert lines, name
        for line in lines:
            assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][A-Za-z0-9.+!]*", line), f"{name}: {line}"


def test_no_package_is_pinned_twice_and_each_torch_build_pins_torch_and_torchvision() -> None:
    reqs = _requirement_lines()
    common = [image_context.normalize_name(ln.split("==")[0]) for ln in reqs["requirements.txt"]]
    assert len(common) == len(set(common))
    for build in ("cuda", "cpu"):
        pins = dict(ln.split("==") for ln in reqs[f"requirements-torch-{build}.txt"])
        assert {"torch", "torchvision"} <= set(pins)
        assert not {image_context.normalize_name(n) for n in pins} & set(common)
    assert reqs["requirements-no-deps.txt"] == ["timm==0.4.5"]


def test_the_dockerfile_takes_the_base_as_an_argument_and_defaults_to_the_cuda_build() -> None:
    text = (CONTEXT / "Dockerfile").read_text()
    instructions = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert instructions[0] == "ARG BASE_IMAGE=ant-kpi/debian:bookworm"
    assert instructions[1].startswith("FROM ${BASE_IMAGE}")
    assert "ARG TORCH_BUILD=cuda" in instructions
    assert {"BASE_IMAGE", "TORCH_BUILD", "WHEELHOUSE_ONLY"} <= image_context.declared_args(CONTEXT / "Dockerfile")
    # Every requirements file is copied into the build, and the wheelhouse is used.
    for name in _requirement_lines():
        assert name in text
    assert "COPY wheelhouse/ /wheelhouse/" in text and "--find-links /wheelhouse" in text
    assert "requirements-torch-${TORCH_BUILD}.txt" in text
    assert (CONTEXT / "wheelhouse").is_dir() and (CONTEXT / "tool-versions.py").is_file()


def test_the_manifest_image_points_at_this_context() -> None:
    img = MANIFEST.images["cuda-train"]
    assert (ROOT / img.context).resolve() == CONTEXT and img.base == "ant-kpi/debian:bookworm"


# --------------------------------------------------------------------------------------------
# Wheelhouse and build arguments
# --------------------------------------------------------------------------------------------


def _context(tmp_path: Path, *, wheelhouse: bool = True) -> Image:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nARG TORCH_BUILD=cuda\n")
    (ctx / "requirements.txt").write_text("numpy==2.4.6\nPyYAML==6.0.4  # a comment\n# torch==0.1\n")
    (ctx / "requirements-torch-cpu.txt").write_text("torch==2.13.0+cpu\n")
    if wheelhouse:
        (ctx / "wheelhouse").mkdir()
        (ctx / "wheelhouse" / "README.md").write_text("placeholder\n")
    return Image(name="test-wheels", context=str(ctx), base="ant-kpi/debian:bookworm")


def _wheels(tmp_path: Path, *names: str) -> Path:
    d = tmp_path / "wheels"
    d.mkdir(exist_ok=True)
    for n in names:
        (d / n).write_bytes(n.encode())
    return d


NUMPY = "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.whl"
YAML = "pyyaml-6.0.4-cp311-cp311-manylinux2014_x86_64.whl"
TORCH_CPU = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"


def test_wheel_names_and_pins_compare_as_pip_does(tmp_path: Path) -> None:
    assert image_context.wheel_pin(TORCH_CPU) == ("torch", "2.13.0+cpu")
    assert image_context.wheel_pin("PyYAML-6.0.4-1-cp311-cp311-linux_x86_64.whl") == ("pyyaml", "6.0.4")
    assert image_context.wheel_pin("numpy-2.4.6.tar.gz") is None
    assert image_context.source_pin("ethos-u-vela-3.8.0.tar.gz") == ("ethos-u-vela", "3.8.0")
    assert image_context.source_pin(NUMPY) is None
    ctx = Path(_context(tmp_path).context)
    assert image_context.pinned_requirements(ctx) == {("numpy", "2.4.6"), ("pyyaml", "6.0.4"), ("torch", "2.13.0+cpu")}


def test_only_the_pinned_wheels_are_added_and_the_first_directory_wins(tmp_path: Path) -> None:
    image = _context(tmp_path)
    wheels = _wheels(
        tmp_path,
        NUMPY,
        YAML,
        TORCH_CPU,
        "numpy-2.4.1-cp311-cp311-manylinux_2_27_x86_64.whl",
        "scipy-1.10.1-cp311-cp311-manylinux_2_17_x86_64.whl",
    )
    other = tmp_path / "other"
    other.mkdir()
    (other / NUMPY).write_bytes(b"another copy")
    env = {images.WHEELHOUSE_ENV: f"{wheels}:{other}"}
    inputs = image_context.build_inputs(image, ROOT, EnvSettings.from_environ(env))
    assert inputs.added == {f"wheelhouse/{n}": wheels / n for n in (NUMPY, YAML, TORCH_CPU)}


def test_source_archives_are_added_only_for_what_the_image_builds_from_source(tmp_path: Path) -> None:
    image = _context(tmp_path)
    ctx = Path(image.context)
    (ctx / image_context.SOURCE_REQUIREMENTS).write_text("ethos-u-vela==3.8.0\n")
    wheels = _wheels(tmp_path, NUMPY, "numpy-2.4.6.tar.gz", "ethos-u-vela-3.8.0.tar.gz", "ethos-u-vela-3.9.0.tar.gz")
    env = EnvSettings.from_environ({images.WHEELHOUSE_ENV: str(wheels)})
    added = image_context.build_inputs(image, ROOT, env).added
    # numpy comes as its wheel; only the pinned Vela release comes as source.
    assert set(added) == {f"wheelhouse/{NUMPY}", "wheelhouse/ethos-u-vela-3.8.0.tar.gz"}


def test_the_wheelhouse_changes_the_hash_and_a_changed_wheel_changes_it_again(tmp_path: Path) -> None:
    image = _context(tmp_path)
    wheels = _wheels(tmp_path, NUMPY)
    plain = image_context.image_digest(image, ROOT, EnvSettings.from_environ({}))
    with_wheels = image_context.image_digest(
        image, ROOT, EnvSettings.from_environ({images.WHEELHOUSE_ENV: str(wheels)})
    )
    assert plain != with_wheels
    assert plain == image_context.context_hash(Path(image.context), {"BASE_IMAGE": image.base})
    (wheels / NUMPY).write_bytes(b"rebuilt wheel, same name")
    assert (
        image_context.image_digest(image, ROOT, EnvSettings.from_environ({images.WHEELHOUSE_ENV: str(wheels)}))
        != with_wheels
    )


def test_a_context_without_a_wheelhouse_folder_is_not_affected(tmp_path: Path) -> None:
    image = _context(tmp_path, wheelhouse=False)
    wheels = _wheels(tmp_path, NUMPY)
    assert (
        image_context.build_inputs(image, ROOT, EnvSettings.from_environ({images.WHEELHOUSE_ENV: str(wheels)})).added
        == {}
    )
    arm = MANIFEST.images["arm-cross"]
    assert image_context.image_digest(
        arm, ROOT, EnvSettings.from_environ({images.WHEELHOUSE_ENV: str(wheels)})
    ) == image_context.context_hash(ROOT / arm.context, {"BASE_IMAGE": arm.base})


def test_a_missing_wheelhouse_directory_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="ANT_KPI_WHEELHOUSE"):
        image_context.build_inputs(
            _context(tmp_path), ROOT, EnvSettings.from_environ({images.WHEELHOUSE_ENV: str(tmp_path / "nowhere")})
        )


def test_the_assembled_context_holds_the_folder_and_the_wheels_and_is_removed_after(tmp_path: Path) -> None:
    image = _context(tmp_path)
    wheels = _wheels(tmp_path, NUMPY, YAML)
    inputs = image_context.build_inputs(image, ROOT, EnvSettings.from_environ({images.WHEELHOUSE_ENV: str(wheels)}))
    with image_context.assembled_context(inputs, tmp_path / "scratch") as ctx:
        assert ctx != inputs.context_dir
        assert sorted(p.name for p in (ctx / "wheelhouse").iterdir()) == sorted(["README.md", NUMPY, YAML])
        assert (ctx / "wheelhouse" / NUMPY).read_bytes() == NUMPY.encode()
        # The copy hashes like the original plus its additions.
        assert image_context.context_hash(ctx, inputs.build_args) == inputs.digest()
    assert not ctx.exists()
    assert sorted(p.name for p in (inputs.context_dir / "wheelhouse").iterdir()) == ["README.md"]
    without = image_context.build_inputs(image, ROOT, EnvSettings.from_environ({}))
    with image_context.assembled_context(without, tmp_path / "scratch") as ctx:
        assert ctx == without.context_dir


def test_build_arguments_from_the_environment_reach_only_images_that_declare_them(tmp_path: Path) -> None:
    image = _context(tmp_path)
    env = {"ANT_KPI_BUILD_ARG_TORCH_BUILD": "cpu", "ANT_KPI_BUILD_ARG_UNDECLARED": "x", "TORCH_BUILD": "no"}
    inputs = image_context.build_inputs(image, ROOT, EnvSettings.from_environ(env))
    assert dict(inputs.build_args) == {"BASE_IMAGE": image.base, "TORCH_BUILD": "cpu"}
    assert inputs.digest() != image_context.image_digest(image, ROOT, EnvSettings.from_environ({}))
    arm = MANIFEST.images["arm-cross"]
    assert dict(image_context.build_inputs(arm, ROOT, EnvSettings.from_environ(env)).build_args) == {
        "BASE_IMAGE": arm.base
    }


# --------------------------------------------------------------------------------------------
# GPUs and remote engines
# --------------------------------------------------------------------------------------------


def test_gpus_are_requested_when_the_engine_has_the_nvidia_runtime() -> None:
    choice = decide_gpus("", {"runc", "nvidia"})
    assert choice.requested and choice.device_ids == () and "nvidia runtime" in choice.reason
    assert not decide_gpus("auto", {"runc", "io.containerd.runc.v2"}).requested


def test_gpus_can_be_forced_on_off_or_to_chosen_devices() -> None:
    assert decide_gpus("all", {"runc"}).requested
    assert not decide_gpus("none", {"nvidia"}).requested
    assert decide_gpus("device=0, 2", set()) == GpuChoice(
        requested=True, device_ids=("0", "2"), reason="ANT_KPI_GPUS=device=0, 2"
    )
    with pytest.raises(BadInput, match="ANT_KPI_GPUS"):
        decide_gpus("some", set())


def test_the_device_request_asks_for_the_gpu_capability() -> None:
    (req,) = decide_gpus("all", set()).device_requests()
    assert req["Count"] == -1 and req["Capabilities"] == [["gpu"]]
    (req,) = decide_gpus("device=1", set()).device_requests()
    assert req["DeviceIDs"] == ["1"] and req["Capabilities"] == [["gpu"]]
    assert decide_gpus("none", set()).device_requests() == []


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("unix:///var/run/docker.sock", True),
        ("tcp://127.0.0.1:2375", True),
        ("ssh://lab@gpu-server", False),
        ("tcp://gpu-server:2376", False),
    ],
)
def test_a_remote_engine_gets_files_copied_instead_of_mounted(host: str, local: bool) -> None:
    assert engine_is_local(host) is local
    assert transfer_mode(host, "") == ("mount" if local else "copy")
    assert transfer_mode(host, "copy") == "copy"
    with pytest.raises(BadInput):
        transfer_mode(host, "rsync")


# --------------------------------------------------------------------------------------------
# run_training against a real engine (shell commands in the Debian base)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Any:
    try:
        return images.docker_client(EnvSettings.from_environ())
    except Blocked as e:
        pytest.skip(f"Docker daemon unreachable: {e}")


@pytest.fixture(scope="module")
def base(client: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("bootstrap")
    return base_image.bootstrap_base(
        images.DEFAULT_BASE_TAG, work_dir=work, client=client, log_path=work / "bootstrap.log"
    ).tag


@pytest.fixture
def run(tmp_path: Path, client: Any, base: str) -> Iterator[Run]:
    r = Run(
        run_id="t",
        run_dir=tmp_path / "run",
        manifest=MANIFEST,
        project_root=ROOT,
        cache_dir=tmp_path / "cache",
        mode="smoke",
    )
    # The base stands in for cuda-train: these commands need only a shell.
    r.outputs["image:cuda-train"] = {"tag": base}
    r.docker = client
    yield r


STEP = Step(id="train:test", kpi="ml_latency", kind="train", where="image", description="test")
SCRIPT = (
    'mkdir -p /work/output && cat /data/train/label > /work/output/seen && echo "stub=$PYTHONPATH" '
    '&& echo "wandb=$WANDB_MODE" && (touch /data/x 2>/dev/null || echo "read-only: $?") && exit 3'
)


def _work_and_data(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "work"
    (work / "stubs").mkdir(parents=True)
    data = tmp_path / "data"
    (data / "train").mkdir(parents=True)
    (data / "train" / "label").write_text("c0\n")
    return work, data


@pytest.mark.docker
@pytest.mark.parametrize("mode", ["mount", "copy"])
def test_run_training_mounts_or_copies_work_and_data_read_only(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv(ENGINE_FILES_ENV, mode)
    monkeypatch.setenv("ANT_KPI_GPUS", "none")
    run.env = EnvSettings.from_environ()
    work, data = _work_and_data(tmp_path)
    rc, log = run_training(run, STEP, ["sh", "-c", SCRIPT], work=work, data=data, env={"WANDB_API_KEY": "s3cret"})
    text = log.read_text()
    assert rc == 3, text
    assert "WANDB_API_KEY=***" in text and "s3cret" not in text
    assert (work / "output" / "seen").read_text() == "c0\n"
    assert "stub=/work/stubs" in text and "wandb=disabled" in text
    assert f"# /data (read-only): {data}" in text and "# gpus: not requested" in text
    if mode == "mount":
        assert "read-only: 1" in text and not (data / "x").exists()
    assert log == run.log_path(STEP.id)


@pytest.mark.docker
def test_run_training_without_the_image_step_is_blocked(run: Run, tmp_path: Path) -> None:
    del run.outputs["image:cuda-train"]
    work, data = _work_and_data(tmp_path)
    with pytest.raises(Blocked, match="cuda-train"):
        run_training(run, STEP, ["true"], work=work, data=data)


@pytest.mark.docker
def test_engine_data_is_mounted_by_its_path_on_the_engine(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work, data = _work_and_data(tmp_path)
    monkeypatch.setenv(ENGINE_DATA_ENV, str(data))  # the local engine's machine is this one
    monkeypatch.setenv(ENGINE_FILES_ENV, "copy")
    run.env = EnvSettings.from_environ()
    rc, log = run_training(run, STEP, ["sh", "-c", f"cat {DATA_MOUNT}/train/label"], work=work, data=None)
    assert rc == 0 and "c0" in log.read_text()


@pytest.mark.docker
def test_asking_for_gpus_an_engine_lacks_is_blocked(
    run: Run, client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if "nvidia" in (client.info().get("Runtimes") or {}):
        pytest.skip("this engine has GPUs")
    monkeypatch.setenv("ANT_KPI_GPUS", "all")
    run.env = EnvSettings.from_environ()
    work, data = _work_and_data(tmp_path)
    with pytest.raises(Blocked) as err:
        run_training(run, STEP, ["true"], work=work, data=data)
    assert "GPUs were requested" in err.value.what and "ANT_KPI_GPUS=none" in err.value.fix
