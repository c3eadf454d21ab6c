"""Images and containers: the offline base, the arm-cross image, cross builds run under QEMU.

Tests marked `docker` build and run real images. They are skipped only when no Docker daemon
answers; the first run bootstraps the Debian base (a few minutes) and builds arm-cross once.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.core.manifest import Image, load_manifest
from harness.env import base_image, images
from harness.env.base_image import bootstrap_base
from harness.env.container import Container
from harness.env.image_context import context_hash
from harness.env.images import DEFAULT_BASE_TAG, TOOL_VERSIONS_PATH, ImageRef, docker_client, ensure_image
from harness.errors import Blocked, StepFailed
from harness.options import EnvSettings

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT / "tests" / "fixtures" / "hello.c"

# target -> (compiler, emulator, sysroot, what hello prints)
CROSS = {
    "armhf": (
        "arm-linux-gnueabihf-gcc",
        "qemu-arm-static",
        "/usr/arm-linux-gnueabihf",
        "hello from armhf, 32-bit pointers",
    ),
    "arm64": (
        "aarch64-linux-gnu-gcc",
        "qemu-aarch64-static",
        "/usr/aarch64-linux-gnu",
        "hello from aarch64, 64-bit pointers",
    ),
}


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Any:
    try:
        return docker_client(EnvSettings.from_environ())
    except Blocked as e:
        pytest.skip(f"Docker daemon unreachable, image tests cannot run: {e}")


@pytest.fixture(scope="module")
def base(client: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The offline base image, bootstrapped here if this engine does not have it yet."""
    work = tmp_path_factory.mktemp("bootstrap")
    ref = bootstrap_base(DEFAULT_BASE_TAG, work_dir=work, client=client, log_path=work / "bootstrap.log")
    return ref.tag


@pytest.fixture(scope="module")
def arm_cross(client: Any, base: str, tmp_path_factory: pytest.TempPathFactory) -> ImageRef:
    """The arm-cross image exactly as kpis.toml declares it, built once for this module."""
    image = load_manifest(ROOT / "kpis.toml").images["arm-cross"]
    assert image.base == base
    log = tmp_path_factory.mktemp("arm-cross") / "build.log"
    return ensure_image(image, root=ROOT, env=EnvSettings.from_environ(), client=client, log_path=log)


@pytest.fixture
def tiny_image(client: Any, base: str, tmp_path: Path) -> Iterator[Image]:
    """A one-line image on the base, with unique content so that its first build is cold."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY stamp /stamp\n")
    (ctx / "stamp").write_text(uuid.uuid4().hex)
    image = Image(name="test-tiny", context=str(ctx), base=base)
    yield image
    for img in client.images.list(name="ant-kpi/test-tiny"):
        client.images.remove(img.id, force=True)


# --------------------------------------------------------------------------------------------
# context_hash (no Docker needed)
# --------------------------------------------------------------------------------------------


def _copy_context(tmp_path: Path) -> Path:
    dst = tmp_path / "arm-cross"
    shutil.copytree(ROOT / "containers" / "arm-cross", dst)
    return dst


def test_context_hash_is_stable_and_independent_of_location(tmp_path: Path) -> None:
    args = {"BASE_IMAGE": DEFAULT_BASE_TAG}
    original = context_hash(ROOT / "containers" / "arm-cross", args)
    assert context_hash(_copy_context(tmp_path), args) == original
    assert context_hash(ROOT / "containers" / "arm-cross", args) == original


def test_context_hash_changes_when_a_file_changes(tmp_path: Path) -> None:
    ctx = _copy_context(tmp_path)
    args = {"BASE_IMAGE": DEFAULT_BASE_TAG}
    before = context_hash(ctx, args)
    with (ctx / "Dockerfile").open("a") as f:
        f.write("# a comment is a change too\n")
    assert context_hash(ctx, args) != before


def test_context_hash_changes_with_a_new_file_the_exec_bit_and_build_args(tmp_path: Path) -> None:
    ctx = _copy_context(tmp_path)
    args = {"BASE_IMAGE": DEFAULT_BASE_TAG}
    before = context_hash(ctx, args)
    assert context_hash(ctx, {"BASE_IMAGE": "other/base:1"}) != before
    script = ctx / "tool-versions.py"
    script.chmod(script.stat().st_mode | 0o111)
    after_chmod = context_hash(ctx, args)
    assert after_chmod != before
    (ctx / "extra.txt").write_text("")
    assert context_hash(ctx, args) != after_chmod


def test_docker_client_with_an_unreachable_host_is_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    with pytest.raises(Blocked) as err:
        docker_client(EnvSettings.from_environ())
    assert "unix:///nonexistent.sock" in err.value.what
    assert "DOCKER_HOST" in err.value.fix


def test_bootstrap_base_without_debootstrap_is_blocked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("harness.env.base_image.shutil.which", lambda _name: None)
    with pytest.raises(Blocked) as err:
        bootstrap_base(work_dir=tmp_path, client=object(), force=True)
    assert err.value.what == "debootstrap not installed"
    assert err.value.fix == "apt-get install debootstrap"


def test_bootstrap_base_as_a_normal_user_is_blocked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(base_image, "debootstrap_version", lambda: "1.0.128")
    monkeypatch.setattr("harness.env.base_image.os.geteuid", lambda: 1000)
    with pytest.raises(Blocked) as err:
        bootstrap_base(work_dir=tmp_path, client=object(), force=True)
    assert "root" in err.value.what


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


@pytest.mark.docker
def test_the_base_records_its_suite_mirror_and_debootstrap_version(client: Any, base: str, tmp_path: Path) -> None:
    ref = bootstrap_base(base, work_dir=tmp_path, client=client)
    assert ref.reused
    assert ref.id == client.images.get(base).id
    prov = ref.to_provenance()
    assert prov["suite"] == "bookworm"
    assert prov["mirror"].startswith("http")
    assert prov["debootstrap_version"]
    assert prov["created"]
    assert not list(tmp_path.iterdir()), "a reused base leaves no scratch files"


def _failed_build(client: Any, base: str, tmp_path: Path, name: str, runs: str) -> StepFailed:
    """Build a context whose Dockerfile ends in `runs` (RUN lines that fail); the StepFailed raised."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\n{runs}")
    image = Image(name=name, context=str(ctx), base=base)
    with pytest.raises(StepFailed) as err:
        ensure_image(image, root=ROOT, env=EnvSettings.from_environ(), client=client, log_path=tmp_path / f"{name}.log")
    return err.value


@pytest.mark.docker
def test_a_failing_build_raises_step_failed_and_keeps_its_log(client: Any, base: str, tmp_path: Path) -> None:
    err = _failed_build(client, base, tmp_path, "test-broken", "RUN echo about-to-fail && false\n")
    assert err.log == str(tmp_path / "test-broken.log")
    assert "about-to-fail" in (tmp_path / "test-broken.log").read_text()
    assert not client.images.list(name="ant-kpi/test-broken")


@pytest.mark.docker
def test_a_failed_build_names_its_step_and_the_commands_own_error(client: Any, base: str, tmp_path: Path) -> None:
    # What pip prints when the build cannot reach its index, then fails as pip does.
    err = _failed_build(
        client,
        base,
        tmp_path,
        "test-offline",
        "RUN true\n"
        'RUN echo "Could not fetch URL https://pypi.org/simple/numpy/: CERTIFICATE_VERIFY_FAILED"; '
        "echo 'ERROR: No matching distribution found for numpy==2.4.6' >&2; exit 1\n",
    )
    message = str(err)
    assert re.search(
        r"docker build failed at Step \d+/\d+: "
        r"ERROR: No matching distribution found for numpy==2\.4\.6",
        message,
    )
    assert "ANT_KPI_WHEELHOUSE" in message
    assert "/bin/sh -c" not in message  # not Docker's echo of the whole RUN line
    assert "\n" not in message


def test_build_trail_keeps_the_last_error_of_the_failing_step_only() -> None:
    trail = images.BuildTrail()
    trail.feed("Step 1/3 : FROM base\nStep 2/3 : RUN apt-get update\nE: an error that was retried\n")
    trail.feed("Step 3/3 : RUN make\nmake: *** [all] Error 2\nerror: ld returned 1 exit status\n")
    assert trail.summary("The command '/bin/sh -c make' returned a non-zero code: 2") == (
        " at Step 3/3: error: ld returned 1 exit status"
    )


def test_build_trail_without_an_error_line_falls_back_to_dockers_and_hints_when_offline() -> None:
    trail = images.BuildTrail()
    trail.feed(
        "Step 1/2 : FROM base\nStep 2/2 : RUN apt-get install -y x\n"
        "Err:1 http://deb.debian.org/debian bookworm InRelease\n"
        "  Temporary failure resolving 'deb.debian.org'\n"
    )
    text = trail.summary("first line\nThe command '/bin/sh -c apt-get install -y x' returned a non-zero code: 100")
    assert text.startswith(" at Step 2/2: The command '/bin/sh -c apt-get install -y x' returned a non-zero code: 100")
    assert "for apt, the engine needs the Debian mirror or a proxy" in text


@pytest.mark.docker
def test_ensure_image_builds_then_reuses_the_same_image(client: Any, tiny_image: Image, tmp_path: Path) -> None:
    log = tmp_path / "tiny.log"
    first = ensure_image(tiny_image, root=ROOT, env=EnvSettings.from_environ(), client=client, log_path=log)
    assert not first.reused
    assert first.tag == f"ant-kpi/test-tiny:{first.context_hash[:12]}"
    assert first.id.startswith("sha256:")
    assert first.base_id == client.images.get(tiny_image.base).id
    assert "COPY stamp /stamp" in log.read_text()

    second = ensure_image(
        tiny_image, root=ROOT, env=EnvSettings.from_environ(), client=client, log_path=tmp_path / "again.log"
    )
    assert second.reused
    assert (second.id, second.tag, second.base_id) == (first.id, first.tag, first.base_id)
    assert not (tmp_path / "again.log").exists()


@pytest.mark.docker
def test_ensure_image_reuses_arm_cross_when_its_context_is_unchanged(client: Any, arm_cross: ImageRef) -> None:
    image = load_manifest(ROOT / "kpis.toml").images["arm-cross"]
    again = ensure_image(image, root=ROOT, env=EnvSettings.from_environ(), client=client)
    assert again.reused
    assert again.id == arm_cross.id
    assert again.to_provenance()["tool_versions"] == dict(arm_cross.tool_versions)


@pytest.mark.docker
def test_ensure_image_with_a_missing_base_is_blocked_naming_bootstrap_base(client: Any, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n")
    missing = f"ant-kpi/absent:{uuid.uuid4().hex[:8]}"
    image = Image(name="test-orphan", context=str(ctx), base=missing)
    with pytest.raises(Blocked) as err:
        ensure_image(image, root=ROOT, env=EnvSettings.from_environ(), client=client, log_path=tmp_path / "log")
    assert image.base in err.value.what
    assert "bootstrap-base" in err.value.fix


@pytest.mark.docker
def test_tool_versions_name_gcc_12_and_cmake(client: Any, arm_cross: ImageRef, tmp_path: Path) -> None:
    versions = arm_cross.tool_versions
    for tool in ("gcc", "arm-linux-gnueabihf-gcc", "aarch64-linux-gnu-gcc"):
        assert versions[tool].startswith("12."), versions
    assert versions["cmake"].startswith("3.")
    for tool in ("make", "python3", "qemu-arm-static", "glibc"):
        assert versions[tool], tool
    # The file itself is in the image, where the build recorded it.
    log = tmp_path / "cat.log"
    with Container(client, arm_cross.tag) as c:
        assert c.run(["cat", TOOL_VERSIONS_PATH], log_path=log) == 0
    assert '"cmake"' in log.read_text()


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------


def _cross_build(client: Any, tag: str, out: Path, target: str) -> tuple[int, Path]:
    """Compile hello.c for target into out/ inside the image, then run it under QEMU there."""
    cc, qemu, sysroot, _ = CROSS[target]
    log = out / f"{target}.log"
    with Container(client, tag, mounts={HELLO.parent: "/src", out: "/out"}, workdir="/out") as c:
        rc = c.run([cc, "-O2", "-Wall", "-Werror", "-o", f"/out/hello-{target}", "/src/hello.c"], log_path=log)
        assert rc == 0, log.read_text()
        assert c.run(["file", f"/out/hello-{target}"], log_path=log) == 0
        # Two extra arguments: hello exits with 2, so the exit code is seen to cross the emulator.
        rc = c.run([qemu, "-L", sysroot, f"/out/hello-{target}", "a", "b"], log_path=log)
    return rc, log


@pytest.mark.docker
@pytest.mark.qemu
@pytest.mark.parametrize("target", sorted(CROSS))
def test_container_cross_compiles_hello_and_runs_it_under_qemu(
    client: Any, arm_cross: ImageRef, tmp_path: Path, target: str
) -> None:
    rc, log = _cross_build(client, arm_cross.tag, tmp_path, target)
    text = log.read_text()
    assert rc == 2, text
    assert CROSS[target][3] in text
    assert ("ELF 32-bit LSB" if target == "armhf" else "ELF 64-bit LSB") in text
    assert (tmp_path / f"hello-{target}").is_file()


def _binfmt_enabled(name: str) -> bool:
    entry = Path("/proc/sys/fs/binfmt_misc") / name
    return entry.is_file() and entry.read_text().startswith("enabled")


@pytest.mark.docker
@pytest.mark.qemu
def test_the_armhf_binary_also_runs_on_the_host_through_binfmt(
    client: Any, arm_cross: ImageRef, tmp_path: Path
) -> None:
    assert _binfmt_enabled("qemu-arm"), (
        "binfmt_misc has no enabled qemu-arm entry on this host: apt-get install "
        "qemu-user-static binfmt-support; update-binfmts --enable qemu-arm (or deselect -m qemu)"
    )
    rc, _ = _cross_build(client, arm_cross.tag, tmp_path, "armhf")
    assert rc == 2
    # The guest's C library comes from the image, so the host needs no cross packages.
    with Container(client, arm_cross.tag) as c:
        sysroot = c.copy_out("/usr/arm-linux-gnueabihf", tmp_path / "sysroot")
    env = {**os.environ, "QEMU_LD_PREFIX": str(sysroot)}
    proc = subprocess.run(
        [str(tmp_path / "hello-armhf")], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == CROSS["armhf"][3]


@pytest.mark.docker
def test_a_failing_command_returns_its_code_and_the_log_keeps_its_output(
    client: Any, base: str, tmp_path: Path
) -> None:
    log = tmp_path / "fail.log"
    with Container(client, base, env={"GREETING": "from-env"}) as c:
        assert c.run(["sh", "-c", 'echo "out $GREETING"; echo err-line >&2; exit 3'], log_path=log) == 3
        assert c.run(["sh", "-c", 'echo "$EXTRA"; pwd'], cwd="/tmp", env={"EXTRA": "per-run"}, log_path=log) == 0
        assert c.run(["/no/such/program"], log_path=log) != 0
    text = log.read_text()
    assert "out from-env" in text
    assert "err-line" in text
    assert "# exit code 3" in text
    assert "per-run\n/tmp\n" in text


@pytest.mark.docker
def test_container_is_removed_on_exit_even_after_an_error(client: Any, base: str) -> None:
    c = Container(client, base, keep_on_failure=False)
    with pytest.raises(RuntimeError), c:
        name = c.name
        assert client.containers.get(name).status == "running"
        raise RuntimeError("boom")
    assert not client.containers.list(all=True, filters={"name": name})


@pytest.mark.docker
def test_a_failed_container_is_kept_when_asked(
    client: Any, base: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANT_KPI_KEEP_CONTAINER", "1")
    c = Container(client, base, keep_on_failure=EnvSettings.from_environ().keep_container)
    try:
        with pytest.raises(RuntimeError), c:
            raise RuntimeError("boom")
        assert client.containers.get(c.name).status == "running"
        assert c.name in capsys.readouterr().err
    finally:
        client.containers.get(c.name).remove(force=True)


@pytest.mark.docker
def test_copy_in_then_copy_out_round_trips_a_file(client: Any, base: str, tmp_path: Path) -> None:
    src = tmp_path / "payload.txt"
    src.write_text("round trip\n")
    with Container(client, base) as c:
        c.copy_in(src, "/tmp")
        back = c.copy_out("/tmp/payload.txt", tmp_path / "back")
    assert back.read_text() == "round trip\n"
