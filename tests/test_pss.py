"""The PSS sampler (harness/pss.py) against real processes on this host, plus its parsers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import pss

FIXTURE = Path(__file__).parent / "fixtures" / "alloc.c"
PSS_PY = Path(pss.__file__)
MIB_KB = 1024
# Allowed deviation of a measured PSS difference from the allocated size: the allocation is exact
# to the page, the rest is libc's bookkeeping and pages the loader happens to touch.
TOLERANCE_KB = 3 * MIB_KB


@pytest.fixture(scope="module")
def alloc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/fixtures/alloc.c built for this host."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no host C compiler (gcc or cc) on PATH to build tests/fixtures/alloc.c")
    out = tmp_path_factory.mktemp("native") / "alloc"
    subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(FIXTURE)],
                   check=True)
    return out


def _procs_running(marker: str) -> list[int]:
    """PIDs whose command line mentions `marker` (a unique temporary path)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(name))
    return found


# -- real runs ----------------------------------------------------------------------------------


def test_peak_pss_grows_by_the_allocated_size(alloc: Path) -> None:
    small = pss.sample_process([str(alloc), "16", "0.3"])
    large = pss.sample_process([str(alloc), "32", "0.3"])
    assert small.exit_status == 0 and large.exit_status == 0
    small_peak, large_peak = small.peak(), large.peak()
    assert small_peak is not None and large_peak is not None
    assert abs((large_peak - small_peak) - 16 * MIB_KB) <= TOLERANCE_KB
    # The allocation is private anonymous memory, so Pss_Anon moves by the same amount.
    anon_small, anon_large = small.peak("pss_anon_kb"), large.peak("pss_anon_kb")
    assert anon_small is not None and anon_large is not None
    assert abs((anon_large - anon_small) - 16 * MIB_KB) <= TOLERANCE_KB
    assert large_peak >= 32 * MIB_KB


def test_final_sample_is_taken_while_the_process_is_alive(alloc: Path) -> None:
    r = pss.sample_process([str(alloc), "8", "0.3"])
    final, peak = r.final(), r.peak()
    assert final is not None and peak is not None
    assert final >= 8 * MIB_KB
    # The fixture never frees its block before exiting, so the last sample is (close to) the peak;
    # shared libc pages move a few KB as other processes on the host come and go.
    assert peak - final <= 256
    assert r.guest_exe is None and r.peak("guest_pss_kb") is None


def test_sampler_achieves_at_least_80_hz_at_the_default_interval(alloc: Path) -> None:
    r = pss.sample_process([str(alloc), "1", "1.0"])
    assert r.interval_s == pss.DEFAULT_INTERVAL == 0.01
    assert r.rate_hz >= 80
    assert r.samples >= 2


def test_vminfo_log_has_one_line_per_sample_and_last_line_reads_final_and_max(
    alloc: Path, tmp_path: Path
) -> None:
    log = tmp_path / "vminfo.log"
    r = pss.sample_process([str(alloc), "8", "0.3"], vminfo_log=log)
    lines = [line.split() for line in log.read_text().splitlines() if line.strip()]
    assert len(lines) == r.samples
    assert all(len(f) == 7 and all(x.isdigit() for x in f) for f in lines)
    stamps = [int(f[0]) for f in lines]
    assert stamps == sorted(stamps)
    assert abs(stamps[0] / 1e6 - r.started_at) < 5  # microseconds since the epoch, like vminfo
    assert [int(f[5]) for f in lines] == r.values("pss_kb")
    assert int(lines[-1][1]) > 0  # VmExe of the root process
    assert pss.read_vminfo_log(log) == (r.final(), r.peak())
    # vminfo leaves empty lines behind; "the last value" is read from the last non-empty line.
    with log.open("a") as f:
        f.write("\n\n")
    assert pss.read_vminfo_log(log) == (r.final(), r.peak())


def test_children_of_a_shell_are_summed(alloc: Path) -> None:
    script = '"$0" 12 0.5 & "$0" 12 0.5; wait'
    r = pss.sample_process(["sh", "-c", script, str(alloc)])
    assert r.exit_status == 0
    peak = r.peak()
    assert peak is not None and peak >= 24 * MIB_KB - TOLERANCE_KB
    assert max(s.procs for s in r.trace) == 3


def test_grandchildren_are_summed(alloc: Path) -> None:
    child = f"import subprocess; subprocess.run([{str(alloc)!r}, '20', '0.5'], check=True)"
    parent = ("import subprocess, sys; "
              f"subprocess.run([sys.executable, '-c', {child!r}], check=True)")
    r = pss.sample_process([sys.executable, "-c", parent])
    assert r.exit_status == 0
    assert max(s.procs for s in r.trace) == 3
    peak = r.peak()
    assert peak is not None and peak >= 20 * MIB_KB


def test_timeout_kills_the_whole_tree_and_reports_it(alloc: Path) -> None:
    r = pss.sample_process(["sh", "-c", '"$0" 1 60 & "$0" 1 60; wait', str(alloc)], timeout=0.5)
    assert r.timed_out
    assert r.exit_status == -9
    assert r.samples > 0
    assert _procs_running(str(alloc)) == []


def test_smaps_fallback_agrees_with_smaps_rollup(alloc: Path) -> None:
    # Kernels before 4.14 have no smaps_rollup; the sampler then sums the Pss: lines of smaps.
    proc = subprocess.Popen([str(alloc), "8", "5"])
    try:
        rollup = smaps = None
        for _ in range(500):  # until the block is allocated and touched
            rollup = pss.read_rollup(proc.pid)
            if rollup is not None and rollup[1] >= 8 * MIB_KB:
                break
            time.sleep(0.01)
        smaps = pss.read_rollup(proc.pid, rollup=False)
    finally:
        proc.kill()
        proc.wait()
    assert rollup is not None and smaps is not None
    # smaps rounds each mapping down to whole KB; smaps_rollup rounds once.
    assert abs(rollup[0] - smaps[0]) <= 64
    assert smaps[1] >= 8 * MIB_KB


def test_parent_scan_finds_the_same_tree_as_the_children_files(alloc: Path) -> None:
    # Kernels without CONFIG_PROC_CHILDREN have no /proc/PID/task/TID/children.
    proc = subprocess.Popen(["sh", "-c", '"$0" 1 5 & "$0" 1 5 & wait', str(alloc)])
    try:
        walked: list[int] = []
        for _ in range(500):  # until the shell has started both children
            walked = pss._Tree(proc.pid).pids()
            if len(walked) == 3:
                break
            time.sleep(0.01)
        scanning = pss._Tree(proc.pid)
        scanning.children_files = False
        scanned = scanning.pids()
    finally:
        for pid in walked[1:]:  # the shell's two children, started by this test
            os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
    assert len(walked) == 3
    assert sorted(scanned) == sorted(walked)


def test_missing_command_raises_a_launch_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-command"
    with pytest.raises(pss.LaunchError, match=r"no-such-command.*no such file"):
        pss.sample_process([str(missing)])


def test_missing_working_directory_is_named(alloc: Path, tmp_path: Path) -> None:
    with pytest.raises(pss.LaunchError, match="working directory"):
        pss.sample_process([str(alloc), "0"], cwd=tmp_path / "gone")


def test_child_output_goes_to_the_named_files(tmp_path: Path) -> None:
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    r = pss.sample_process(["sh", "-c", "echo to-out; echo to-err >&2; exit 3"],
                           stdout=out, stderr=err)
    assert r.exit_status == 3
    assert out.read_text() == "to-out\n"
    assert err.read_text() == "to-err\n"


def test_one_path_for_both_streams_keeps_both(tmp_path: Path) -> None:
    both = tmp_path / "both.txt"
    pss.sample_process(["sh", "-c", "echo first; echo second >&2; echo third"],
                       stdout=both, stderr=both)
    assert both.read_text() == "first\nsecond\nthird\n"


def test_json_round_trip_keeps_summary_and_trace(alloc: Path, tmp_path: Path) -> None:
    r = pss.sample_process([str(alloc), "4", "0.1"])
    path = tmp_path / "r.json"
    pss.write_json(r, path)
    back = pss.load_json(path)
    assert back == r
    doc = json.loads(path.read_text())
    assert doc["samples"] == r.samples and len(doc["trace"]) == r.samples
    assert doc["peak_pss_kb"] == r.peak() and doc["final_pss_kb"] == r.final()
    assert doc["rate_hz"] == round(r.rate_hz, 2)


# -- the command line, run as a stand-alone file the way boards run it ---------------------------


def test_standalone_script_needs_nothing_but_the_standard_library(
    alloc: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "pss.py"
    shutil.copy(PSS_PY, copy)
    out = tmp_path / "r.json"
    log = tmp_path / "v.log"
    # -I: isolated mode, so neither the repository nor site-packages can be imported.
    proc = subprocess.run([sys.executable, "-I", str(copy), "--json", str(out), "--vminfo-log",
                           str(log), "--", str(alloc), "8", "0.2"],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["exit_status"] == 0 and doc["peak_pss_kb"] >= 8 * MIB_KB
    assert "samples at" in proc.stderr
    last = [line for line in log.read_text().splitlines() if line.strip()][-1].split()
    assert (int(last[5]), int(last[6])) == (doc["final_pss_kb"], doc["peak_pss_kb"])


@pytest.mark.parametrize(
    ("command", "extra", "code"),
    [
        (["sh", "-c", "exit 5"], [], 5),
        (["sh", "-c", "kill -TERM $$"], [], 128 + 15),
        (["sleep", "30"], ["--timeout", "0.3"], pss.EXIT_TIMEOUT),
        (["/nonexistent/command"], [], pss.EXIT_NOT_FOUND),
    ],
)
def test_cli_exit_code_follows_the_command(command: list[str], extra: list[str], code: int) -> None:
    proc = subprocess.run([sys.executable, str(PSS_PY), "-q", *extra, "--", *command],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == code, proc.stderr


def test_cli_without_a_command_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, str(PSS_PY), "--interval", "0.01"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == pss.EXIT_USAGE
    assert "no command" in proc.stderr


def test_cli_reports_a_missing_command_in_one_line() -> None:
    proc = subprocess.run([sys.executable, str(PSS_PY), "--", "/nonexistent/command"],
                          capture_output=True, text=True, check=False)
    assert proc.stderr.strip() == (
        "pss.py: error: cannot start '/nonexistent/command': no such file or command")


# -- parsers and the guest split, on smaps text shaped like qemu 7.2's ---------------------------

_EXE = "/work/bin/iotjs"
_QEMU = "/work/qemu-private/iotjs"


def _vma(lo: int, hi: int, path: str = "", pss_kb: int = 0, anon_kb: int = 0,
         inode: int = 0) -> str:
    return (f"{lo:08x}-{hi:08x} rw-p 00000000 fe:00 {inode}                 {path}\n"
            f"Size:               {(hi - lo) // 1024} kB\n"
            f"Rss:                {pss_kb} kB\n"
            f"Pss:                {pss_kb} kB\n"
            f"Pss_Dirty:          {pss_kb} kB\n"
            f"Anonymous:          {anon_kb} kB\n"
            f"VmFlags: rd wr mr mw me ac\n")


def _smaps_32bit_guest(base: int) -> bytes:
    """A 4 GiB guest reservation at `base`, then the host's heap, JIT buffer and qemu itself."""
    g = base
    text = "".join([
        _vma(g + 0x1000, g + 0x10000),
        _vma(g + 0x10000, g + 0x20000, _EXE, 300, 0, inode=42),
        _vma(g + 0x20000, g + 0x40000, "", 200, 200),
        _vma(g + 0x40000, g + 0x3F000000),
        _vma(g + 0x3F000000, g + 0x40000000, "", 1000, 1000),  # guest heap
        _vma(g + 0x40000000, g + 0x100000000),
        _vma(0x555500000000, 0x555500100000, "[heap]", 900, 900),
        _vma(0x7F0000000000, 0x7F0008000000, "", 2048, 2048),  # TCG buffer (THP)
        _vma(0x7F0010000000, 0x7F0010500000, _QEMU, 7000, 0, inode=7),
        _vma(0x7FFF00000000, 0x7FFF00021000, "[stack]", 20, 20),
    ])
    return text.encode()


def test_parse_smaps_reads_pss_lines_only_not_pss_dirty() -> None:
    vmas = pss.parse_smaps(_smaps_32bit_guest(0))
    assert len(vmas) == 10
    assert sum(v.pss_kb for v in vmas) == 300 + 200 + 1000 + 900 + 2048 + 7000 + 20
    assert vmas[1].path == _EXE and vmas[1].inode == 42 and vmas[1].dev == (0xFE, 0)
    assert vmas[-1].path == "[stack]"


@pytest.mark.parametrize("base", [0, 0x10000])
def test_guest_split_uses_the_reservation_of_a_32_bit_guest(base: int) -> None:
    # guest_base 0 where page 1 may be mapped; just above vm.mmap_min_addr (65536) elsewhere.
    split = pss.guest_split(pss.parse_smaps(_smaps_32bit_guest(base)), pss.ExeId(path=_EXE),
                            _QEMU)
    assert split.rule == "reservation"
    assert split.pss_kb == 300 + 200 + 1000
    assert split.anon_kb == 200 + 1000


def test_guest_split_uses_the_landmark_window_of_a_64_bit_guest() -> None:
    text = "".join([
        _vma(0x400000, 0x480000, _EXE, 500, 0, inode=42),
        _vma(0x480000, 0x4A0000, "", 16, 16),
        _vma(0x5500000000, 0x5500800000, "", 8, 8),  # guest stack
        _vma(0x5502000000, 0x5503000000, "", 16384, 16384),  # guest mmap, after a gap
        _vma(0x555500000000, 0x555500100000, "[heap]", 900, 900),
        _vma(0x7F0000000000, 0x7F0008000000, "", 2048, 2048),
        _vma(0x7F0010000000, 0x7F0010500000, _QEMU, 7000, 0, inode=7),
        _vma(0x7FFF00000000, 0x7FFF00021000, "[stack]", 20, 20),
    ]).encode()
    split = pss.guest_split(pss.parse_smaps(text), pss.ExeId(path="/elsewhere", dev=(0xFE, 0),
                                                             inode=42), _QEMU)
    assert split.rule == "window"
    assert split.pss_kb == 500 + 16 + 8 + 16384
    assert split.anon_kb == 16 + 8 + 16384


def test_guest_split_is_empty_when_the_guest_is_not_mapped() -> None:
    split = pss.guest_split(pss.parse_smaps(_smaps_32bit_guest(0)), pss.ExeId(path="/other"))
    assert split == pss.GuestSplit(pss_kb=0, anon_kb=0, rule=None)


def test_read_vminfo_log_rejects_a_log_without_samples(tmp_path: Path) -> None:
    log = tmp_path / "empty.log"
    log.write_text("\n\n")
    with pytest.raises(ValueError, match="no vminfo line"):
        pss.read_vminfo_log(log)


def test_result_from_another_format_is_refused() -> None:
    with pytest.raises(ValueError, match="not a ant-kpi-pss v1 document"):
        pss.PssResult.from_dict({"format": "other", "version": 1})
