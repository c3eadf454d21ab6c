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

from harness.payload import pss

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
    subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(FIXTURE)], check=True)
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


def test_vminfo_log_has_one_line_per_sample_and_last_line_reads_final_and_max(alloc: Path, tmp_path: Path) -> None:
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
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}], check=True)"
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


# -- measured and carried samples ---------------------------------------------------------------

# A Python process that grows in 4 MiB steps (bytes repetition writes, so touches, every page),
# holds each step, then frees everything: the steps are faults, the drop an unmap.
_STEPS = 4
_STEP_MIB = 4
_GROW_IN_STEPS = f"""
import time
blocks = []
for _ in range({_STEPS}):
    blocks.append(b"\\x01" * ({_STEP_MIB} << 20))
    time.sleep(0.15)
del blocks
time.sleep(0.3)
"""

# A parent touches 16 MiB and forks; the child then writes to every page. Copy-on-write gives each
# process its own copy, so the tree's PSS grows by 16 MiB while neither process's RSS moves.
_COW_MIB = 16
_COPY_ON_WRITE = f"""
import os, time
block = bytearray(b"\\x01" * ({_COW_MIB} << 20))
pid = os.fork()
if pid == 0:
    time.sleep(0.3)
    for i in range(0, len(block), 4096):
        block[i] = 2
    time.sleep(0.4)
    os._exit(0)
os.waitpid(pid, 0)
"""

# Longer than any test run: only the first sample, moved counters, a changed set of processes or
# the timeout make such a run measure.
NEVER = 60.0


def _assert_carried_samples_repeat_the_last_measurement(r: pss.PssResult) -> None:
    assert r.trace[0].measured
    last = r.trace[0]
    for s in r.trace[1:]:
        if s.measured:
            last = s
        else:
            assert (s.pss_kb, s.pss_anon_kb, s.procs) == (last.pss_kb, last.pss_anon_kb, last.procs)
            assert s.t > last.t


def test_peak_of_a_process_growing_in_steps_matches_a_full_rate_sampler() -> None:
    argv = [sys.executable, "-c", _GROW_IN_STEPS]
    full = pss.sample_process(argv, remeasure_s=0)
    gated = pss.sample_process(argv, remeasure_s=NEVER)
    assert full.exit_status == 0 and gated.exit_status == 0
    assert full.measured_samples == full.samples
    assert gated.measured_samples < gated.samples
    full_peak, gated_peak = full.peak(), gated.peak()
    assert full_peak is not None and gated_peak is not None
    # Two runs of the same interpreter differ by a few pages, not by a step.
    assert abs(gated_peak - full_peak) <= MIB_KB
    # Every step below the peak is seen as a level of its own, and so is the drop after the free.
    levels = gated.values("pss_kb")
    for k in range(1, _STEPS):
        below = gated_peak - k * _STEP_MIB * MIB_KB
        assert any(abs(v - below) <= MIB_KB for v in levels), (k, below)
    final = gated.final()
    assert final is not None and final <= gated_peak - (_STEPS - 1) * _STEP_MIB * MIB_KB


def test_copy_on_write_after_fork_is_measured_though_no_rss_moves() -> None:
    argv = [sys.executable, "-c", _COPY_ON_WRITE]
    full = pss.sample_process(argv, remeasure_s=0)
    gated = pss.sample_process(argv, remeasure_s=NEVER)
    assert full.exit_status == 0 and gated.exit_status == 0
    full_peak, gated_peak = full.peak(), gated.peak()
    assert full_peak is not None and gated_peak is not None
    assert abs(gated_peak - full_peak) <= MIB_KB
    # Shared right after the fork, one copy each after the writes.
    two = [s.pss_kb for s in gated.trace if s.procs == 2]
    assert two and max(two) - min(two) >= _COW_MIB * MIB_KB - TOLERANCE_KB


def test_carried_samples_are_marked_and_repeat_the_last_measurement(alloc: Path) -> None:
    r = pss.sample_process([str(alloc), "8", "0.5"], remeasure_s=NEVER)
    assert r.exit_status == 0
    assert 0 < r.measured_samples < r.samples
    assert r.measured_samples == sum(1 for s in r.trace if s.measured)
    assert r.measured_rate_hz < r.rate_hz
    _assert_carried_samples_repeat_the_last_measurement(r)
    peak = r.peak()
    assert peak is not None and peak >= 8 * MIB_KB


def test_remeasure_interval_bounds_how_long_a_value_is_carried(alloc: Path) -> None:
    # The fixture is idle after its first few ms: its counters stand still, only the interval
    # makes the sampler read PSS again.
    remeasure = 0.1
    r = pss.sample_process([str(alloc), "4", "1.0"], remeasure_s=remeasure)
    assert r.remeasure_s == remeasure
    _assert_carried_samples_repeat_the_last_measurement(r)
    measured_at = r.trace[0].t
    for s in r.trace[1:]:
        if s.measured:
            measured_at = s.t
        else:
            assert s.t - measured_at < remeasure + 1e-6
    assert any(s.measured for s in r.trace if s.t >= 0.5)
    idle = pss.sample_process([str(alloc), "4", "1.0"], remeasure_s=NEVER)
    assert idle.measured_samples < idle.samples // 2


def test_timeout_measures_the_tree_before_killing_it(alloc: Path) -> None:
    r = pss.sample_process([str(alloc), "4", "30"], timeout=0.5, remeasure_s=NEVER)
    assert r.timed_out
    assert r.samples >= 2 and r.trace[-1].measured
    final = r.final()
    assert final is not None and final >= 4 * MIB_KB


def test_a_root_that_execs_is_followed_into_the_new_program(alloc: Path) -> None:
    # The shell is measured first; after its exec the same PID holds a new memory map.
    r = pss.sample_process(["sh", "-c", 'sleep 0.2; exec "$0" 16 0.3', str(alloc)], remeasure_s=NEVER)
    assert r.exit_status == 0
    peak = r.peak()
    assert peak is not None and peak >= 16 * MIB_KB
    assert r.trace[-1].t >= 0.4  # sampled until the new program ended, not until the exec


def test_memory_counters_are_read_after_a_command_name_with_spaces_and_parentheses() -> None:
    stat = (
        b"42 (a) b (c) S 1 42 42 0 -1 4194560 1234 0 5 0 7 3 0 0 20 0 1 0 99 "
        b"1000448 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
    )
    assert pss._memory_counters(stat) == (b"1234", b"5", b"1000448", b"200")
    faulted = stat.replace(b" 1234 ", b" 1235 ")
    busier = stat.replace(b" 7 3 ", b" 8 3 ")  # user CPU time only
    unmapped = stat.replace(b" 1000448 200 ", b" 995328 200 ")
    assert pss._counters_moved([faulted], [stat])
    assert pss._counters_moved([unmapped], [stat])
    assert not pss._counters_moved([busier], [stat])
    assert not pss._counters_moved([stat, busier], [stat, stat])
    assert pss._counters_moved([stat], [stat, stat])


def test_missing_command_raises_a_launch_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-command"
    with pytest.raises(pss.LaunchError, match=r"no-such-command.*no such file"):
        pss.sample_process([str(missing)])


def test_missing_working_directory_is_named(alloc: Path, tmp_path: Path) -> None:
    with pytest.raises(pss.LaunchError, match="working directory"):
        pss.sample_process([str(alloc), "0"], cwd=tmp_path / "gone")


def test_child_output_goes_to_the_named_files(tmp_path: Path) -> None:
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    r = pss.sample_process(["sh", "-c", "echo to-out; echo to-err >&2; exit 3"], stdout=out, stderr=err)
    assert r.exit_status == 3
    assert out.read_text() == "to-out\n"
    assert err.read_text() == "to-err\n"


def test_one_path_for_both_streams_keeps_both(tmp_path: Path) -> None:
    both = tmp_path / "both.txt"
    pss.sample_process(["sh", "-c", "echo first; echo second >&2; echo third"], stdout=both, stderr=both)
    assert both.read_text() == "first\nsecond\nthird\n"


def test_json_round_trip_keeps_summary_and_trace(alloc: Path, tmp_path: Path) -> None:
    r = pss.sample_process([str(alloc), "4", "0.3"])
    path = tmp_path / "r.json"
    pss.write_json(r, path)
    back = pss.load_json(path)
    assert back == r
    doc = json.loads(path.read_text())
    assert doc["version"] == pss.FORMAT_VERSION
    assert doc["samples"] == r.samples and len(doc["trace"]) == r.samples
    assert doc["peak_pss_kb"] == r.peak() and doc["final_pss_kb"] == r.final()
    assert doc["rate_hz"] == round(r.rate_hz, 2)
    assert doc["measured_samples"] == r.measured_samples < r.samples
    assert doc["measured_rate_hz"] == round(r.measured_rate_hz, 2)
    assert doc["remeasure_s"] == pss.DEFAULT_REMEASURE
    # Only carried samples say so; a sample without the key was measured.
    carried = [s for s in doc["trace"] if "measured" in s]
    assert carried and all(s["measured"] is False for s in carried)
    assert len(carried) == r.samples - r.measured_samples


# A version 1 document, as written before carried samples existed: every sample was measured.
_V1_DOC = {
    "format": "ant-kpi-pss",
    "version": 1,
    "argv": ["iotjs", "app.js"],
    "exit_status": 0,
    "timed_out": False,
    "wall_s": 0.03,
    "interval_s": 0.01,
    "started_at": 1700000000.0,
    "samples": 3,
    "rate_hz": 100.0,
    "sampler_cpu_s": 0.002,
    "guest_exe": None,
    "guest_rule": None,
    "peak_pss_kb": 2100,
    "final_pss_kb": 2050,
    "trace": [
        {"t": 0.0, "pss_kb": 1900, "pss_anon_kb": 300, "procs": 1},
        {"t": 0.01, "pss_kb": 2100, "pss_anon_kb": 500, "procs": 1},
        {"t": 0.02, "pss_kb": 2050, "pss_anon_kb": 450, "procs": 1},
    ],
}


def test_version_1_document_loads_with_every_sample_measured(tmp_path: Path) -> None:
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(_V1_DOC))
    r = pss.load_json(path)
    assert r.samples == r.measured_samples == 3
    assert all(s.measured for s in r.trace)
    assert r.remeasure_s is None
    assert r.rate_hz == pytest.approx(100.0) and r.measured_rate_hz == pytest.approx(r.rate_hz)
    assert (r.peak(), r.final()) == (2100, 2050)
    # Written again it is a current document with the same content.
    again = tmp_path / "again.json"
    pss.write_json(r, again)
    assert json.loads(again.read_text())["version"] == pss.FORMAT_VERSION
    assert pss.load_json(again) == r


# -- the command line, run as a stand-alone file the way boards run it ---------------------------


def test_standalone_script_needs_nothing_but_the_standard_library(alloc: Path, tmp_path: Path) -> None:
    copy = tmp_path / "pss.py"
    shutil.copy(PSS_PY, copy)
    out = tmp_path / "r.json"
    log = tmp_path / "v.log"
    # -I: isolated mode, so neither the repository nor site-packages can be imported.
    proc = subprocess.run(
        [sys.executable, "-I", str(copy), "--json", str(out), "--vminfo-log", str(log), "--", str(alloc), "8", "0.2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
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
    proc = subprocess.run(
        [sys.executable, str(PSS_PY), "-q", *extra, "--", *command], capture_output=True, text=True, check=False
    )
    assert proc.returncode == code, proc.stderr


def test_cli_refuses_a_negative_remeasure_interval() -> None:
    proc = subprocess.run(
        [sys.executable, str(PSS_PY), "--remeasure", "-1", "--", "true"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == pss.EXIT_USAGE
    assert "--remeasure" in proc.stderr


def test_cli_without_a_command_is_a_usage_error() -> None:
    proc = subprocess.run(
        [sys.executable, str(PSS_PY), "--interval", "0.01"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == pss.EXIT_USAGE
    assert "no command" in proc.stderr


def test_cli_reports_a_missing_command_in_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, str(PSS_PY), "--", "/nonexistent/command"], capture_output=True, text=True, check=False
    )
    assert proc.stderr.strip() == ("pss.py: error: cannot start '/nonexistent/command': no such file or command")


# -- parsers and the guest split, on smaps text shaped like qemu 7.2's ---------------------------

_EXE = "/work/bin/iotjs"
_QEMU = "/work/qemu-private/iotjs"


def _vma(lo: int, hi: int, path: str = "", pss_kb: int = 0, anon_kb: int = 0, inode: int = 0) -> str:
    return (
        f"{lo:08x}-{hi:08x} rw-p 00000000 fe:00 {inode}                 {path}\n"
        f"Size:               {(hi - lo) // 1024} kB\n"
        f"Rss:                {pss_kb} kB\n"
        f"Pss:                {pss_kb} kB\n"
        f"Pss_Dirty:          {pss_kb} kB\n"
        f"Anonymous:          {anon_kb} kB\n"
        f"VmFlags: rd wr mr mw me ac\n"
    )


def _smaps_32bit_guest(base: int) -> bytes:
    """A 4 GiB guest reservation at `base`, then the host's heap, JIT buffer and qemu itself."""
    g = base
    text = "".join(
        [
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
        ]
    )
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
    split = pss.guest_split(pss.parse_smaps(_smaps_32bit_guest(base)), pss.ExeId(path=_EXE), _QEMU)
    assert split.rule == "reservation"
    assert split.pss_kb == 300 + 200 + 1000
    assert split.anon_kb == 200 + 1000


def test_guest_split_uses_the_landmark_window_of_a_64_bit_guest() -> None:
    text = "".join(
        [
            _vma(0x400000, 0x480000, _EXE, 500, 0, inode=42),
            _vma(0x480000, 0x4A0000, "", 16, 16),
            _vma(0x5500000000, 0x5500800000, "", 8, 8),  # guest stack
            _vma(0x5502000000, 0x5503000000, "", 16384, 16384),  # guest mmap, after a gap
            _vma(0x555500000000, 0x555500100000, "[heap]", 900, 900),
            _vma(0x7F0000000000, 0x7F0008000000, "", 2048, 2048),
            _vma(0x7F0010000000, 0x7F0010500000, _QEMU, 7000, 0, inode=7),
            _vma(0x7FFF00000000, 0x7FFF00021000, "[stack]", 20, 20),
        ]
    ).encode()
    split = pss.guest_split(pss.parse_smaps(text), pss.ExeId(path="/elsewhere", dev=(0xFE, 0), inode=42), _QEMU)
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


def test_result_from_another_format_or_a_newer_version_is_refused() -> None:
    with pytest.raises(ValueError, match="not a ant-kpi-pss v1-v2 document"):
        pss.PssResult.from_dict({"format": "other", "version": 1})
    with pytest.raises(ValueError, match="version=3"):
        pss.PssResult.from_dict({**_V1_DOC, "version": 3})
