"""QEMU user mode (harness/qemu.py): real armhf/arm64 runs, ELF detection, and the failure modes.

Tests marked `qemu` cross-compile tests/fixtures/alloc.c and run it under the emulators; they skip
only when a cross compiler or an emulator is not installed, and say which.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.env import qemu
from harness.errors import BadInput, Blocked
from harness.payload import pss

FIXTURE = Path(__file__).parent / "fixtures" / "alloc.c"
MIB_KB = 1024
TOLERANCE_KB = 3 * MIB_KB  # allowed deviation of a guest PSS difference from the allocation
LINKS = ("static", "dynamic")
# 32-bit guests live in qemu's 4 GiB reservation; 64-bit guests have none (see harness/pss.py).
EXPECTED_RULE = {"armhf": "reservation", "arm64": "window"}

Builder = Callable[[str, str], Path]


def _need_emulator(arch: str) -> Path:
    emu = qemu.emulator_info(arch)
    found = shutil.which(emu.binary)
    if found is None:
        pytest.skip(f"{emu.binary} is not installed ({emu.install_fix})")
    return Path(found)


@pytest.fixture(scope="module")
def cross_build(tmp_path_factory: pytest.TempPathFactory) -> Builder:
    """build(arch, link) -> alloc.c cross-compiled for arch, static or dynamic (built once each)."""
    root = tmp_path_factory.mktemp("cross")
    built: dict[tuple[str, str], Path] = {}

    def build(arch: str, link: str) -> Path:
        if (arch, link) not in built:
            emu = qemu.emulator_info(arch)
            gcc = shutil.which(emu.cross_gcc)
            if gcc is None:
                pytest.skip(f"{emu.cross_gcc} is not installed ({emu.cross_fix})")
            out = root / f"alloc-{arch}-{link}"
            flags = ["-static"] if link == "static" else []
            subprocess.run(
                [gcc, "-O2", "-Wall", "-Wextra", "-Werror", *flags, "-o", str(out), str(FIXTURE)], check=True
            )
            built[arch, link] = out
        return built[arch, link]

    return build


# -- real runs under QEMU -------------------------------------------------------------------------


@pytest.mark.qemu
@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("arch", qemu.ARCHES)
def test_elf_info_reads_class_machine_and_linking_of_cross_builds(cross_build: Builder, arch: str, link: str) -> None:
    info = qemu.elf_info(cross_build(arch, link))
    emu = qemu.emulator_info(arch)
    assert (info.elf_class, info.machine) == (emu.elf_class, emu.elf_machine)
    assert info.arch == arch
    assert info.little_endian
    assert info.dynamic is (link == "dynamic")
    if link == "dynamic":
        loader = {"armhf": "/lib/ld-linux-armhf.so.3", "arm64": "/lib/ld-linux-aarch64.so.1"}
        assert info.interpreter == loader[arch]
    if arch == "armhf":
        assert info.flags & 0x400  # EF_ARM_ABI_FLOAT_HARD: really armhf, not armel


@pytest.mark.qemu
@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("arch", qemu.ARCHES)
def test_guest_pss_grows_by_the_allocated_size_under_qemu(
    cross_build: Builder, tmp_path: Path, arch: str, link: str
) -> None:
    system_emulator = _need_emulator(arch)
    binary = cross_build(arch, link)
    private = qemu.private_emulator(arch, tmp_path / "emu", binary.name, emulator=system_emulator)
    runs = {}
    for mib in (16, 32):
        argv = qemu.qemu_command(binary, [str(mib), "0.3"], arch=arch, emulator=private)
        runs[mib] = pss.sample_process(argv, guest_exe=binary)
    for r in runs.values():
        assert r.exit_status == 0
        assert r.guest_rule == EXPECTED_RULE[arch]
    small, large = runs[16].peak("guest_pss_kb"), runs[32].peak("guest_pss_kb")
    assert small is not None and large is not None
    assert abs((large - small) - 16 * MIB_KB) <= TOLERANCE_KB
    assert small >= 16 * MIB_KB
    # The guest's block is anonymous memory; the emulator's side stays out of the guest figure.
    anon = runs[32].peak("guest_anon_kb")
    assert anon is not None and anon >= 32 * MIB_KB
    emulator_side = runs[32].final("qemu_pss_kb")
    assert emulator_side is not None and emulator_side > MIB_KB


@pytest.mark.qemu
@pytest.mark.parametrize("arch", qemu.ARCHES)
def test_emulator_overhead_is_several_megabytes_of_qemu_around_a_tiny_guest(tmp_path: Path, arch: str) -> None:
    _need_emulator(arch)
    if shutil.which(qemu.emulator_info(arch).cross_gcc) is None:
        pytest.skip(f"{qemu.emulator_info(arch).cross_gcc} is not installed")
    r = qemu.emulator_overhead(arch, tmp_path)
    total, guest, emulator_side = r.peak(), r.peak("guest_pss_kb"), r.peak("qemu_pss_kb")
    assert r.exit_status == 0 and not r.timed_out
    assert total is not None and guest is not None and emulator_side is not None
    assert total > MIB_KB
    assert emulator_side > MIB_KB
    assert 0 < guest < 2 * MIB_KB < emulator_side
    assert (tmp_path / f"probe-static-{arch}.out").read_text() == "probe ready\n"


@pytest.mark.qemu
def test_emulator_overhead_accepts_a_prebuilt_static_probe(cross_build: Builder, tmp_path: Path) -> None:
    _need_emulator("armhf")
    r = qemu.emulator_overhead("armhf", tmp_path, probe=cross_build("armhf", "static"))
    assert r.exit_status == 0
    assert r.guest_exe is not None and r.guest_exe.endswith("alloc-armhf-static")


@pytest.mark.qemu
def test_emulator_overhead_refuses_a_dynamic_probe(cross_build: Builder, tmp_path: Path) -> None:
    _need_emulator("armhf")
    with pytest.raises(BadInput, match="must be static"):
        qemu.emulator_overhead("armhf", tmp_path, probe=cross_build("armhf", "dynamic"))


@pytest.mark.qemu
def test_private_emulator_has_its_own_inode_and_the_guests_name_as_comm(cross_build: Builder, tmp_path: Path) -> None:
    system_emulator = _need_emulator("armhf")
    binary = cross_build("armhf", "static")
    private = qemu.private_emulator("armhf", tmp_path, "iotjs", emulator=system_emulator)
    assert private == tmp_path / "iotjs"
    assert not private.samefile(system_emulator)
    assert private.stat().st_mode & 0o111
    assert private.read_bytes() == system_emulator.read_bytes()
    # An identical copy is reused rather than rewritten.
    inode = private.stat().st_ino
    assert qemu.private_emulator("armhf", tmp_path, "iotjs", emulator=system_emulator) == private
    assert private.stat().st_ino == inode

    argv = qemu.qemu_command(binary, ["0", "5"], arch="armhf", emulator=private)
    proc = subprocess.Popen(argv)
    try:
        comm = ""
        for _ in range(200):  # exec sets comm a moment after Popen has returned
            comm = Path(f"/proc/{proc.pid}/comm").read_text().strip()
            if comm == "iotjs":
                break
            time.sleep(0.01)
        assert comm == "iotjs"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.qemu
def test_dynamic_guest_runs_with_a_private_sysroot(cross_build: Builder, tmp_path: Path) -> None:
    system_emulator = _need_emulator("armhf")
    binary = cross_build("armhf", "dynamic")
    root = qemu.private_sysroot("armhf", tmp_path / "sysroot")
    assert (root / "lib" / "ld-linux-armhf.so.3").exists()
    assert not list((root / "lib").glob("*.a"))
    argv = qemu.qemu_command(binary, ["1", "0.2"], arch="armhf", sysroot=root, emulator=system_emulator)
    assert argv[1:3] == ["-L", str(root)]
    r = pss.sample_process(argv, guest_exe=binary)
    assert r.exit_status == 0
    guest = r.peak("guest_pss_kb")
    assert guest is not None and guest >= MIB_KB


@pytest.mark.qemu
@pytest.mark.parametrize("arch", qemu.ARCHES)
def test_qemu_command_passes_a_sysroot_only_for_dynamic_binaries(cross_build: Builder, arch: str) -> None:
    emu = qemu.emulator_info(arch)
    static = qemu.qemu_command(cross_build(arch, "static"), ["a", "b"], arch=arch, emulator="/opt/qemu")
    assert static == ["/opt/qemu", str(cross_build(arch, "static")), "a", "b"]
    if not (emu.sysroot / "lib").is_dir():
        pytest.skip(f"{emu.sysroot} is not installed (apt-get install {emu.sysroot_package})")
    dynamic = qemu.qemu_command(cross_build(arch, "dynamic"), ["a"], arch=arch, emulator="/opt/qemu")
    assert dynamic == ["/opt/qemu", "-L", str(emu.sysroot), str(cross_build(arch, "dynamic")), "a"]


@pytest.mark.qemu
def test_wrong_arch_binary_is_bad_input(cross_build: Builder) -> None:
    with pytest.raises(BadInput, match=r"ELF64 aarch64 .* not an armhf binary"):
        qemu.qemu_command(cross_build("arm64", "static"), [], arch="armhf", emulator="/x")
    with pytest.raises(BadInput, match=r"ELF32 arm .* not an arm64 binary"):
        qemu.qemu_command(cross_build("armhf", "dynamic"), [], arch="arm64", emulator="/x")


@pytest.mark.qemu
def test_missing_sysroot_of_a_dynamic_binary_is_blocked_with_the_fix(cross_build: Builder, tmp_path: Path) -> None:
    with pytest.raises(Blocked) as err:
        qemu.qemu_command(cross_build("armhf", "dynamic"), [], arch="armhf", sysroot=tmp_path / "none", emulator="/x")
    assert "apt-get install libc6-armhf-cross" in err.value.fix
    (tmp_path / "empty").mkdir()
    with pytest.raises(Blocked, match=r"ld-linux-armhf\.so\.3"):
        qemu.qemu_command(cross_build("armhf", "dynamic"), [], arch="armhf", sysroot=tmp_path / "empty", emulator="/x")


# -- no emulator or cross compiler needed ----------------------------------------------------------


def _elf(path: Path, *, cls: int, machine: int, interp: bytes | None) -> Path:
    """A minimal little-endian ELF file: header, one program header, optional PT_INTERP string."""
    if cls == 32:
        ehsize, phentsize = 52, 32
        head = struct.pack("<HHIIIIIHHHHHH", 2, machine, 1, 0, ehsize, 0, 0x5000400, ehsize, phentsize, 1, 40, 0, 0)
    else:
        ehsize, phentsize = 64, 56
        head = struct.pack("<HHIQQQIHHHHHH", 2, machine, 1, 0, ehsize, 0, 0, ehsize, phentsize, 1, 64, 0, 0)
    ident = b"\x7fELF" + bytes([1 if cls == 32 else 2, 1, 1]) + bytes(9)
    data_off = ehsize + phentsize
    payload = interp + b"\0" if interp is not None else b""
    p_type = 3 if interp is not None else 1  # PT_INTERP or PT_LOAD
    if cls == 32:
        ph = struct.pack("<IIIIIIII", p_type, data_off, 0, 0, len(payload), len(payload), 4, 1)
    else:
        ph = struct.pack("<IIQQQQQQ", p_type, 4, data_off, 0, 0, len(payload), len(payload), 1)
    path.write_bytes(ident + head + ph + payload)
    return path


def test_elf_info_reads_a_handmade_dynamic_armhf_header(tmp_path: Path) -> None:
    info = qemu.elf_info(_elf(tmp_path / "a", cls=32, machine=40, interp=b"/lib/ld-linux-armhf.so.3"))
    assert (info.elf_class, info.machine, info.arch) == (32, 40, "armhf")
    assert info.interpreter == "/lib/ld-linux-armhf.so.3" and info.dynamic
    assert info.describe() == "ELF32 arm exec (dynamic)"


def test_elf_info_reads_a_handmade_static_x86_64_header(tmp_path: Path) -> None:
    info = qemu.elf_info(_elf(tmp_path / "b", cls=64, machine=62, interp=None))
    assert (info.elf_class, info.machine_name, info.arch) == (64, "x86_64", None)
    assert not info.dynamic


def test_host_binary_is_bad_input_for_an_arm_arch(tmp_path: Path) -> None:
    host = _elf(tmp_path / "host", cls=64, machine=62, interp=b"/lib64/ld-linux-x86-64.so.2")
    with pytest.raises(BadInput, match="not an armhf binary"):
        qemu.qemu_command(host, [], arch="armhf", emulator="/x")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"#!/bin/sh\necho hi\n", "not an ELF binary"),
        (b"\x7fELF\x01\x01\x01" + bytes(20), "truncated or corrupt"),
        (b"\x7fELF\x03\x01\x01" + bytes(60), "unknown ELF class"),
    ],
)
def test_elf_info_rejects_what_is_not_a_usable_elf(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "x"
    path.write_bytes(content)
    with pytest.raises(BadInput, match=problem):
        qemu.elf_info(path)


def test_elf_info_of_a_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no such file"):
        qemu.elf_info(tmp_path / "missing")


def test_find_emulator_is_blocked_with_the_apt_fix_when_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Blocked) as err:
        qemu.find_emulator("armhf")
    assert "qemu-arm-static" in err.value.what
    assert err.value.fix == "apt-get install qemu-user-static"


def test_emulator_overhead_is_blocked_without_the_cross_compiler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(Blocked) as err:
        qemu.emulator_overhead("arm64", tmp_path, emulator="/usr/bin/qemu-aarch64-static")
    assert "aarch64-linux-gnu-gcc" in err.value.what
    assert err.value.fix == "apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross"


def test_unknown_arch_is_bad_input_with_a_suggestion() -> None:
    with pytest.raises(BadInput, match="did you mean 'armhf'"):
        qemu.find_emulator("armfh")


@pytest.mark.parametrize(
    ("content", "enabled"),
    [("enabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\n", True), ("disabled\n", False)],
)
def test_binfmt_enabled_reads_the_first_line_of_the_entry(tmp_path: Path, content: str, enabled: bool) -> None:
    (tmp_path / "qemu-arm").write_text(content)
    assert qemu.binfmt_enabled("armhf", root=tmp_path) is enabled
    assert qemu.binfmt_enabled("arm64", root=tmp_path) is False  # no entry at all


def test_emulator_table_names_the_binaries_and_packages() -> None:
    table = qemu.load_emulators()
    assert set(table) == set(qemu.ARCHES)
    assert table["armhf"].binary == "qemu-arm-static"
    assert table["arm64"].binary == "qemu-aarch64-static"
    assert {e.package for e in table.values()} == {"qemu-user-static"}
    assert table["armhf"].sysroot == Path("/usr/arm-linux-gnueabihf")
    assert qemu.FIDELITY == "emulated"


def test_emulator_table_rejects_an_unknown_key(tmp_path: Path) -> None:
    text = qemu.EMULATORS_TOML.read_text().replace('binfmt = "qemu-arm"', 'binfmtt = "x"')
    path = tmp_path / "emulators.toml"
    path.write_text(text)
    with pytest.raises(BadInput, match=r"armhf\.binfmtt is not a known key \(did you mean"):
        qemu.load_emulators(path)


@pytest.mark.parametrize("name", ["", "a/b", ".."])
def test_private_emulator_needs_a_plain_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(BadInput, match="plain file name"):
        qemu.private_emulator("armhf", tmp_path, name, emulator="/bin/true")
