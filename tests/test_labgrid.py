"""labgrid as the lab's reservation layer: inventory keys, the client's output, holding a place.

The parsers read output captured from real labgrid-client runs (tests/fixtures/labgrid/README.md).
The end-to-end test starts a real labgrid coordinator and exporter on loopback, exports two
namespace SSH boards as places, and runs a measurement over both in parallel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from harness.env.lab import labgrid
from harness.env.lab.inventory import load_boards
from harness.errors import Blocked, ManifestError
from harness.parsers import labgrid as lgtext
from tests.labgrid_lab import LabgridLab

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "labgrid"

PLACE_BOARD = """
[boards.pi-a]
model = "Raspberry Pi 2"
arch = "armhf"
target = "rpi2"
transport = "ssh"
place = "nsboard-a"
known_hosts = "/lab/known_hosts"
camera_source = "rpi"
"""


def _captured(name: str) -> str:
    return (FIX / f"{name}.captured.txt").read_text()


# -- the client's output -------------------------------------------------------------------------


def test_a_place_s_ssh_service_is_read_from_show() -> None:
    idle = lgtext.parse_places(_captured("show-idle"))
    assert [p.name for p in idle] == ["nsboard-a"] and idle[0].acquired == "" and idle[0].tags == {"board": "rpi2"}
    svc = idle[0].network_service()
    assert svc is not None and not svc.acquired
    assert (svc.params["address"], svc.params["port"], svc.params["username"]) == ("10.77.5.2", 2222, "root")
    held = lgtext.parse_places(_captured("show-acquired"))[0]
    assert held.acquired == "vm/root+runA"
    assert held.network_service() is not None and held.network_service().acquired  # type: ignore[union-attr]
    assert held.network_service().params["extra"]["proxy_required"] is False  # type: ignore[union-attr]


def test_places_give_holders_tags_and_reservations() -> None:
    places = {p.name: p for p in lgtext.parse_places(_captured("places-v"))}
    assert places["nsboard-a"].acquired == "vm/root+runA" and places["nsboard-a"].reservation == ""
    assert places["nsboard-b"].acquired == "vm/root+runB" and places["nsboard-b"].reservation == "28GBPVODAB"
    assert all(p.tags == {"board": "rpi2"} for p in places.values())


def test_the_holder_the_token_and_the_errors_are_read_from_the_client() -> None:
    assert lgtext.parse_token(_captured("reserve-shell")) == "28GBPVODAB"
    assert lgtext.parse_token(_captured("res-wait")) == "SGKLPRGCPP"
    assert lgtext.holder(_captured("acq-busy")) == "vm/root+runA"
    assert lgtext.holder(_captured("nosuch")) is None
    assert lgtext.error(_captured("nosuch")) == "place pattern nosuch matches nothing"
    assert lgtext.coordinator_unreachable(_captured("nocoord"))
    assert not lgtext.coordinator_unreachable(_captured("acq-busy"))
    assert lgtext.not_acquired(_captured("rel-not")) and not lgtext.not_acquired(_captured("release"))
    assert lgtext.other_user(_captured("rel-other")) and not lgtext.other_user(_captured("rel-not"))


# -- the inventory -------------------------------------------------------------------------------


def _load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    p = tmp_path / "boards.toml"
    p.write_text(text)
    return load_boards(p)


def test_a_board_may_name_a_place_or_tags_instead_of_a_host(tmp_path: Path) -> None:
    b = _load(tmp_path, PLACE_BOARD)["pi-a"]
    assert b.labgrid and b.place == "nsboard-a" and b.host == "" and b.address == "labgrid place nsboard-a"
    assert b.public()["labgrid_place"] == "nsboard-a"
    tagged = PLACE_BOARD.replace(
        'place = "nsboard-a"', 'reserve = { board = "rpi2", bench = "b-1" }\ncoordinator = "lab:20408"'
    )
    b = _load(tmp_path, tagged)["pi-a"]
    assert b.reserve == (("bench", "b-1"), ("board", "rpi2")) and b.coordinator == "lab:20408"
    assert b.reserve_filter() == "bench=b-1 board=rpi2" and "tagged bench=b-1 board=rpi2" in b.address


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ('place = "nsboard-a"', 'place = "nsboard-a"\nhost = "10.0.0.1"', "NetworkService"),
        ('place = "nsboard-a"', 'place = "a"\nreserve = { board = "x" }', "not both"),
        ('place = "nsboard-a"', "reserve = {}", "names no tag"),
        ('place = "nsboard-a"', 'reserve = { Board = "x" }', "tag key"),
        ('place = "nsboard-a"', 'reserve = { board = "two words" }', "tag value"),
        ('place = "nsboard-a"', 'coordinator = "lab:1"', "no place or reserve"),
        ('place = "nsboard-a"', 'place = "../x"', "place name"),
        ('transport = "ssh"', 'transport = "local"', "only for transport = 'ssh'"),
    ],
)
def test_bad_labgrid_keys_are_one_located_line(tmp_path: Path, old: str, new: str, fragment: str) -> None:
    with pytest.raises(ManifestError) as e:
        _load(tmp_path, PLACE_BOARD.replace(old, new))
    assert fragment in str(e.value) and "boards.pi-a" in str(e.value)


def test_without_labgrid_installed_a_place_ends_blocked_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python3"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Blocked) as e:
        labgrid.client_path()
    assert "labgrid is not installed" in str(e.value) and labgrid.INSTALL in e.value.fix


# -- a real coordinator, exporter and two namespace boards -----------------------------------------


def _labgrid_or_skip() -> str:
    try:
        return labgrid.client_path()
    except Blocked:
        pytest.skip(f"labgrid is not installed on this machine ({labgrid.INSTALL})")


@pytest.fixture(scope="module")
def real_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabgridLab, list[object], Path]]:
    from tests import labgrid_lab, netns_board

    _labgrid_or_skip()
    missing = netns_board.missing_tools()
    if missing:
        pytest.skip(f"no namespace test board on this machine: {', '.join(missing)} missing")
    tmp = tmp_path_factory.mktemp("lglab")
    with labgrid_lab.running(tmp / "lab", 2) as lab:
        yield lab, lab.boards, tmp  # type: ignore[misc]


def test_a_place_is_acquired_its_address_used_and_released_after(real_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab, boards, _ = real_lab
    text = PLACE_BOARD.replace('place = "nsboard-a"', f'place = "nsboard-0"\ncoordinator = "{lab.coordinator}"')
    board = _load(tmp_path, text)["pi-a"]
    with labgrid.hold(board, run_id="t1", leases_dir=tmp_path / "leases", wait=False, wait_timeout_s=None) as held:
        assert (held.host, held.port, held.user) == (boards[0].board_ip, boards[0].port, "root")
        assert lab.holders()["nsboard-0"] == f"{os.uname().nodename}/{labgrid.run_username('t1')}"
        assert list((tmp_path / "leases" / "labgrid").glob("*.json"))  # what the next run sweeps if this one dies
    assert lab.holders()["nsboard-0"] == ""
    assert not list((tmp_path / "leases" / "labgrid").glob("*.json"))


def test_tags_reserve_one_free_place_and_a_busy_lab_ends_blocked_naming_the_holders(real_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lab, _, _ = real_lab
    text = PLACE_BOARD.replace('place = "nsboard-a"', f'reserve = {{ lab = "ci" }}\ncoordinator = "{lab.coordinator}"')
    board = _load(tmp_path, text)["pi-a"]
    kw = {"leases_dir": tmp_path / "leases", "wait": True, "wait_timeout_s": 20.0}
    with labgrid.hold(board, run_id="t2", **kw) as one, labgrid.hold(board, run_id="t3", **kw) as two:  # type: ignore[arg-type]
        assert {one.place, two.place} == {"nsboard-0", "nsboard-1"} and one.token and two.token
        late = labgrid.hold(board, run_id="t4", leases_dir=tmp_path / "leases", wait=True, wait_timeout_s=3.0)
        with pytest.raises(Blocked) as e, late:
            pass
        assert "no labgrid place tagged lab=ci came free" in str(e.value)
        assert labgrid.run_username("t2") in str(e.value) and labgrid.run_username("t3") in str(e.value)
    assert set(lab.holders().values()) == {""}
    assert "Reservation" not in lab.client.call("reservations").stdout  # both cancelled, none left waiting


def _two_arch_manifest(tmp: Path) -> Path:
    """The end-to-end KPI 1 manifest (a small local runtime and bench) with an arm64 target beside rpi2."""
    from tests.test_e2e_js_memory import _manifest

    path = _manifest(tmp)
    text = path.read_text()
    text = text.replace(
        "[targets.x86_64]",
        '[targets.arm64]\narch = "arm64"\ntriple = "aarch64-linux-gnu"\nqemu = "qemu-aarch64"\n[targets.x86_64]',
    )
    for factor in ("256", "128"):
        text = text.replace(
            f'argv.x86_64 = ["make", "CC=gcc", "FACTOR={factor}"]',
            f'argv.x86_64 = ["make", "CC=gcc", "FACTOR={factor}"]\n'
            f'argv.arm64 = ["make", "CC=aarch64-linux-gnu-gcc", "FACTOR={factor}"]',
        )
    text = text.replace('output.x86_64 = "build/iotjs"', 'output.x86_64 = "build/iotjs"\noutput.arm64 = "build/iotjs"')
    text = text.replace('targets = ["rpi2", "x86_64"]', 'targets = ["rpi2", "arm64", "x86_64"]')
    path.write_text(text)
    return path


def _harness(tmp: Path, manifest: Path, boards: Path, run_id: str, *extra: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "ANT_KPI_CACHE": str(tmp / "cache"),
        "GIT_CONFIG_GLOBAL": str(tmp / "gitconfig"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "COLUMNS": "160",
    }
    argv = [
        sys.executable, "-m", "harness", "--manifest", str(manifest), "--runs-dir", str(tmp / "runs"),
        "run", "js_memory", "--target", "pi-a", "--target", "tx2-b", "--boards", str(boards), "--run-id", run_id,
        "--workload", "small", *extra,
    ]  # fmt: skip
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.docker
@pytest.mark.qemu
@pytest.mark.ssh
def test_two_labgrid_boards_measured_in_parallel_then_busy_then_killed(real_lab) -> None:  # type: ignore[no-untyped-def]
    from tests.test_e2e_js_memory import _docker_or_skip

    _docker_or_skip()
    lab, _, tmp = real_lab
    manifest = _two_arch_manifest(tmp)
    inventory = lab.inventory(
        tmp / "boards.toml",
        [("pi-a", "Raspberry Pi 2", "armhf", "rpi2"), ("tx2-b", "Jetson TX2", "arm64", "arm64")],
    )

    # 1. Both boards in one run, each on its own worker: rows of both, each with its place.
    proc = _harness(tmp, manifest, inventory, "both")
    out, _ = proc.communicate(timeout=1200)
    assert proc.returncode == 0, out
    assert "boards in parallel: pi-a" in out and "[tx2-b] measure:" in out and "[pi-a] measure:" in out
    df = pd.read_parquet(tmp / "runs" / "both" / "results.parquet")
    peaks = df[(df.metric == "peak_pss") & (df.status == "ok")]
    assert set(peaks.target) == {"rpi2", "arm64"} and set(peaks.fidelity) == {"board"}
    places = {t: json.loads(i)["labgrid_place"] for t, i in zip(peaks.target, peaks.target_identity, strict=True)}
    assert places == {"rpi2": "nsboard-0", "arm64": "nsboard-1"}
    assert set(lab.holders().values()) == {""}  # released at the end

    # 2. Both places held by someone else: the run waits up to --board-wait, then BLOCKED naming the holder.
    other = labgrid.Client(coordinator=lab.coordinator, username="someone+other-run")
    for i in range(2):
        assert other.acquire(f"nsboard-{i}") == (True, "")
    try:
        proc = _harness(tmp, manifest, inventory, "busy", "--board-wait", "3")
        out, _ = proc.communicate(timeout=600)
    finally:
        for i in range(2):
            other.release(f"nsboard-{i}")
    assert proc.returncode == 3, out
    assert "labgrid place nsboard-0 is acquired by" in out and "someone+other-run" in out
    busy = pd.read_parquet(tmp / "runs" / "busy" / "results.parquet")
    assert set(busy[busy.metric == "peak_pss"].status) == {"blocked"}

    # 3. A run killed with SIGKILL while it holds both places: labgrid keeps them acquired; the
    # next run on this machine releases them and goes on.
    proc = _harness(tmp, manifest, inventory, "killed")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and set(lab.holders().values()) == {""}:
        time.sleep(0.2)
    held = lab.holders()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert any(held.values()), "the run ended before it held a place"
    time.sleep(1.0)
    left = {k: v for k, v in lab.holders().items() if v}
    assert left and all(labgrid.run_username("killed") in v for v in left.values())
    proc = _harness(tmp, manifest, inventory, "after")
    out, _ = proc.communicate(timeout=1200)
    assert proc.returncode == 0, out
    assert "left by run killed" in out
    assert set(lab.holders().values()) == {""}


def test_doctor_names_each_labgrid_board_s_place_and_who_holds_it(real_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from harness.commands.doctor_needs import Machine, lab_needs
    from harness.core.manifest import load_manifest
    from harness.options import EnvSettings

    lab, _, _ = real_lab
    inventory = tmp_path / "boards.toml"
    inventory.write_text(
        PLACE_BOARD.replace('place = "nsboard-a"', f'place = "nsboard-0"\ncoordinator = "{lab.coordinator}"')
        + PLACE_BOARD.replace("[boards.pi-a]", "[boards.pi-z]").replace(
            'place = "nsboard-a"', f'place = "no-such-place"\ncoordinator = "{lab.coordinator}"'
        )
    )
    other = labgrid.Client(coordinator=lab.coordinator, username="someone+doctor-test")
    assert other.acquire("nsboard-0") == (True, "")
    try:
        m = Machine(
            load_manifest(ROOT / "kpis.toml"),
            root=ROOT,
            cache_dir=tmp_path / "cache",
            env=EnvSettings(boards=inventory),
            overrides={},
        )
        needs = {n.name: n for n in lab_needs(m)}
    finally:
        other.release("nsboard-0")
    assert needs["labgrid client (boards with a place)"].state == "ok"
    ok = needs["board pi-a: labgrid place nsboard-0"]
    assert ok.state == "ok" and "held by" in ok.probe.detail and "someone+doctor-test" in ok.probe.detail
    gone = needs["board pi-z: labgrid place no-such-place"]
    assert gone.state == "missing" and "labgrid-client create" in gone.fix
