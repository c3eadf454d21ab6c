"""The self-contained runtime bundle a board runs: NEEDED closure, loader, and a run over SSH.

A tiny armhf program links a tiny shared library through an absolute RUNPATH that exists only
where it was built, as ANT's iotjs links its native modules. The bundle must hold the library,
libc and the loader, and the program must run on the namespace test board through the bundled
loader, reached only over SSH.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.env.lab.inventory import load_boards
from harness.env.lab.session import transport_for
from harness.kpis.common import ant_build
from harness.payload import ant_bundle_collect
from tests import netns_board

ROOT = Path(__file__).resolve().parent.parent
COLLECTOR = ROOT / "harness" / "payload" / "ant_bundle_collect.py"
CC = "arm-linux-gnueabihf-gcc"
SYSROOT_LIB = Path("/usr/arm-linux-gnueabihf/lib")

LIB_C = """
int answer(void) { return 42; }
"""
MAIN_C = """
#include <stdio.h>
int answer(void);
int main(int argc, char **argv) {
    printf("answer %d from %s\\n", answer(), argc > 1 ? argv[1] : "-");
    return 0;
}
"""


def _cross_or_skip() -> None:
    if shutil.which(CC) is None or not SYSROOT_LIB.is_dir():
        pytest.skip(f"{CC} and its sysroot are not installed (apt-get install gcc-arm-linux-gnueabihf)")


@pytest.fixture()
def program(tmp_path: Path) -> tuple[Path, Path]:
    """(exe, its library dir): the library dir is found only through an absolute RUNPATH."""
    _cross_or_skip()
    libdir = tmp_path / "build" / "out" / "mod"
    libdir.mkdir(parents=True)
    (tmp_path / "lib.c").write_text(LIB_C)
    (tmp_path / "main.c").write_text(MAIN_C)
    subprocess.run(
        [CC, "-shared", "-fPIC", "-o", str(libdir / "libmod_native.so"), str(tmp_path / "lib.c")], check=True
    )
    exe = tmp_path / "build" / "bin" / "tool"
    exe.parent.mkdir(parents=True)
    subprocess.run(
        [
            CC,
            "-o",
            str(exe),
            str(tmp_path / "main.c"),
            f"-L{libdir}",
            "-lmod_native",
            "-Wl,--enable-new-dtags",
            f"-Wl,-rpath,{libdir}",
        ],
        check=True,
    )
    return exe, libdir


def _collect(out: Path, exe: Path, libdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable,
        str(COLLECTOR),
        "--out",
        str(out),
        "--triplet",
        "arm-linux-gnueabihf",
        "--exe",
        str(exe),
        "--so-dir",
        str(libdir),
        "--lib-dir",
        str(SYSROOT_LIB),
        *extra,
    ]
    return subprocess.run(argv, capture_output=True, text=True)


def test_dynamic_info_reads_needed_runpath_and_interpreter(program: tuple[Path, Path]) -> None:
    exe, libdir = program
    info = ant_bundle_collect.dynamic_info(exe)
    assert "libmod_native.so" in info.needed
    assert "libc.so.6" in info.needed
    assert info.runpath == [str(libdir)]
    assert info.interp == "/lib/ld-linux-armhf.so.3"


def test_dynamic_info_refuses_a_file_that_is_not_elf(tmp_path: Path) -> None:
    p = tmp_path / "x"
    p.write_text("#!/bin/sh\n")
    with pytest.raises(ant_bundle_collect.ElfError, match="not an ELF file"):
        ant_bundle_collect.dynamic_info(p)


def test_bundle_holds_the_closure_the_loader_and_checksums(program: tuple[Path, Path], tmp_path: Path) -> None:
    exe, libdir = program
    out = tmp_path / "bundle"
    res = _collect(out, exe, libdir)
    assert res.returncode == 0, res.stderr
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["loader"] == "lib/ld-linux-armhf.so.3"
    assert meta["exe"] == "bin/tool"
    for name in ("libmod_native.so", "libc.so.6", "ld-linux-armhf.so.3"):
        assert (out / "lib" / name).is_file(), name
    assert set(meta["files"]) == {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {"bundle.json"}
    assert meta["missing"] == {}


def test_a_library_missing_from_the_image_is_exit_3_naming_it(program: tuple[Path, Path], tmp_path: Path) -> None:
    exe, libdir = program
    # Without --so-dir and with the RUNPATH directory gone, libmod_native.so cannot be found.
    shutil.rmtree(libdir)
    res = subprocess.run(
        [
            sys.executable,
            str(COLLECTOR),
            "--out",
            str(tmp_path / "b"),
            "--triplet",
            "arm-linux-gnueabihf",
            "--exe",
            str(exe),
            "--lib-dir",
            str(SYSROOT_LIB),
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == ant_build.EXIT_MISSING
    assert "libmod_native.so" in res.stderr


def test_an_unknown_stream_plugin_is_reported_missing(program: tuple[Path, Path], tmp_path: Path) -> None:
    exe, libdir = program
    res = _collect(tmp_path / "b", exe, libdir, "--gst-plugin", "no-such-plugin")
    assert res.returncode == ant_build.EXIT_MISSING
    assert "libgstno-such-plugin.so" in res.stderr


@pytest.mark.ssh
@pytest.mark.qemu
def test_the_bundle_runs_on_the_namespace_board_through_its_own_loader(
    program: tuple[Path, Path], tmp_path: Path
) -> None:
    from harness.env.lab import session as boardrun

    missing = netns_board.missing_tools()
    if missing:
        pytest.skip(f"no namespace test board on this machine: {', '.join(missing)} missing")
    exe, libdir = program
    out = tmp_path / "bundle"
    assert _collect(out, exe, libdir).returncode == 0
    meta = json.loads((out / "bundle.json").read_text())
    # The build directory is gone, as it is on a board: only the bundle can satisfy the RUNPATH.
    shutil.rmtree(libdir)
    with netns_board.running(tmp_path / "nsboard") as nb:
        (tmp_path / "boards.toml").write_text(nb.toml("nsboard"))
        board = load_boards(tmp_path / "boards.toml")["nsboard"]
        t = transport_for(board)
        remote = boardrun.put_tree(t, out, "ant/bundle", tmp_path)
        deploy = {"remote_bundle": remote, "loader": meta["loader"], "exe": meta["exe"]}
        res = t.run([*ant_build.runtime_argv(deploy), "over-ssh"], timeout=120, env=ant_build.runtime_env(deploy))
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == "answer 42 from over-ssh"


def test_on_a_board_gstreamer_searches_the_bundle_then_the_board_os_plugin_folders() -> None:
    deploy = {"remote_bundle": "/w/ant/bundle", "board_gst_dirs": ant_build.board_gst_dirs("arm-linux-gnueabihf")}
    env = ant_build.runtime_env(deploy)
    assert env["GST_PLUGIN_PATH_1_0"].split(":") == [
        "/w/ant/bundle/gst",
        "/usr/lib/arm-linux-gnueabihf/gstreamer-1.0",  # Raspberry Pi OS: rpicamsrc, v4l2src
        "/usr/lib/gstreamer-1.0",
        "/usr/local/lib/gstreamer-1.0",
    ]
    # A container run (no board) keeps to the bundled plugins only.
    assert ant_build.runtime_env({"remote_bundle": "/b"})["GST_PLUGIN_PATH_1_0"] == "/b/gst"
