"""Board transports (harness/env/transport/) and leases (harness/env/lab/lease.py).

Tests marked `ssh` run against a real board: Debian's sshd in its own network namespace
(tests/netns_board.py), with verified host keys, ARM binaries run through binfmt, and the board
taken down mid-run. They skip only when sshd, ip or root are missing, and say which.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.core.digest import sha256_file
from harness.env import transport
from harness.env.lab.inventory import Board, load_boards
from harness.env.lab.lease import holder, lease
from harness.env.lab.session import transport_for
from harness.env.transport import CommandResult, LocalTransport, SshTransport, deploy, run_sampled
from harness.errors import Blocked, StepFailed
from harness.payload import pss

sys.path.insert(0, str(Path(__file__).resolve().parent))
import netns_board  # a helper module beside the tests (tests/ is not a package)

HELLO_C = r"""
#include <stdio.h>
#include <sys/utsname.h>
int main(int argc, char **argv) {
    struct utsname u;
    if (uname(&u) != 0) return 2;
    printf("hello from %s", u.machine);
    for (int i = 1; i < argc; i++) printf(" [%s]", argv[i]);
    printf("\n");
    return 3;
}
"""
NASTY_ARGS = [
    "; rm -rf /tmp/x",
    "$(touch {m}.dollar)",
    "`touch {m}.tick`",
    'it\'s "quoted"',
    "a  b\tc",
    "> {m}.redirect",
    "*",
    "$HOME",
    "",
    "new\nline",
    "| cat",
    "&& touch {m}.and",
]


def _nasty(marker: Path) -> list[str]:
    return [a.replace("{m}", str(marker)) for a in NASTY_ARGS]


def _assert_verbatim(result: CommandResult, args: list[str], marker: Path) -> None:
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "".join(f"<{a}>\n" for a in args)
    assert not list(marker.parent.glob(f"{marker.name}*")), "a shell interpreted an argument"


# -- local transport ---------------------------------------------------------------------------


@pytest.fixture
def local(tmp_path: Path) -> LocalTransport:
    board = Board(
        name="here",
        model="Jetson Xavier",
        arch="x86_64",
        target="x86_64",
        transport="local",
        work_dir=str(tmp_path / "work"),
    )
    return LocalTransport(board)


def test_transport_for_picks_the_driver_named_in_the_inventory(tmp_path: Path) -> None:
    ssh_board = Board(name="pi", model="Raspberry Pi 3", arch="armhf", target="rpi2", transport="ssh", host="h")
    local_board = Board(name="here", model="Jetson TX1", arch="arm64", target="arm64", transport="local")
    assert isinstance(transport_for(ssh_board), SshTransport)
    t = transport_for(local_board)
    assert isinstance(t, LocalTransport) and t.name == "here"
    assert isinstance(t, transport.Transport)


def test_local_run_returns_output_exit_code_and_wall_time(local: LocalTransport) -> None:
    r = local.run(["sh", "-c", "echo out; echo err >&2; exit 5"], timeout=10)
    assert (r.exit_code, r.stdout, r.stderr, r.timed_out) == (5, "out\n", "err\n", False)
    assert r.wall_s > 0 and not r.ok


def test_local_argv_is_never_interpreted_by_a_shell(local: LocalTransport, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    args = _nasty(marker)
    _assert_verbatim(local.run(["printf", "<%s>\\n", *args], timeout=10), args, marker)


def test_local_cwd_env_and_stdout_file(local: LocalTransport, tmp_path: Path) -> None:
    out = tmp_path / "logs" / "out.txt"
    r = local.run(["sh", "-c", 'pwd; echo "$ANT_X"'], timeout=10, cwd="/proc", env={"ANT_X": "a b;c"}, stdout_path=out)
    assert r.exit_code == 0 and r.stdout == ""
    assert out.read_text() == "/proc\na b;c\n"


def test_local_missing_command_is_127(local: LocalTransport) -> None:
    r = local.run(["ant-kpi-no-such-tool"], timeout=10)
    assert r.exit_code == 127 and "ant-kpi-no-such-tool" in r.stderr


def test_local_timeout_kills_the_whole_tree(local: LocalTransport, tmp_path: Path) -> None:
    start = time.monotonic()
    r = local.run(["sh", "-c", "sleep 30 & sleep 30; wait"], timeout=0.5)
    assert r.timed_out and r.exit_code == 124
    assert time.monotonic() - start < 10


def test_local_put_get_verify_and_keep_mode(local: LocalTransport, tmp_path: Path) -> None:
    src = tmp_path / "tool"
    src.write_bytes(os.urandom(50_000))
    src.chmod(0o755)
    digest = local.put(src, "bin/tool")
    placed = Path(local.remote_path("bin/tool"))
    assert placed.read_bytes() == src.read_bytes() and placed.stat().st_mode & 0o777 == 0o755
    assert digest == sha256_file(src)
    back = local.get("bin/tool", tmp_path / "back" / "tool")
    assert back.read_bytes() == src.read_bytes()
    with pytest.raises(StepFailed):
        local.get("bin/absent", tmp_path / "absent")


def test_local_identity_describes_this_machine(local: LocalTransport) -> None:
    ident = local.identity()
    assert ident["board"] == "here" and ident["transport"] == "local"
    assert ident["kernel"].startswith("Linux ") and ident["hostname"] == socket.gethostname()
    assert isinstance(ident["mem_available_kb"], int) and ident["mem_available_kb"] > 0
    assert ident["python3"] and ident["python3"][0] == "3"


def test_parse_identity_converts_temperature_and_blanks() -> None:
    ident = transport.parse_identity(
        "model=Raspberry Pi 4 Model B Rev 1.4\nkernel=Linux 6.1.0 armv7l\ngovernor=performance\n"
        "temp=48312\nmem_available=812344\nhostname=pi\npython3=\ncpus=4\n"
    )
    assert ident == {
        "model": "Raspberry Pi 4 Model B Rev 1.4",
        "kernel": "Linux 6.1.0 armv7l",
        "cpu_governor": "performance",
        "soc_temp_c": 48.3,
        "mem_available_kb": 812344,
        "hostname": "pi",
        "python3": None,
        "cpus": 4,
    }


class CountingLocal(LocalTransport):
    """A local transport that counts file copies."""

    puts = 0

    def put(self, local: Path, remote: str) -> str:
        self.puts += 1
        return super().put(local, remote)


def test_run_sampled_copies_pss_once_and_fetches_both_outputs(tmp_path: Path) -> None:
    board = Board(
        name="here",
        model="Jetson TX2",
        arch="x86_64",
        target="x86_64",
        transport="local",
        work_dir=str(tmp_path / "work"),
    )
    t = CountingLocal(board)
    argv = [sys.executable, "-c", "import time; x = bytearray(8 << 20); time.sleep(0.3)"]
    for i in range(2):
        r, local_json = run_sampled(
            t,
            argv,
            remote_dir="pss",
            json_name=f"r{i}.json",
            vminfo_name=f"r{i}.log",
            timeout=60,
            local_dir=tmp_path / "raw",
        )
        assert r.exit_code == 0, r.stderr
        result = pss.load_json(local_json)
        assert result.samples > 0 and (result.peak() or 0) >= 8 * 1024
        assert pss.read_vminfo_log(tmp_path / "raw" / f"r{i}.log")[1] == result.peak()
    assert t.puts == 1


def test_run_sampled_reports_a_missing_command_as_step_failure(local: LocalTransport, tmp_path: Path) -> None:
    with pytest.raises(StepFailed, match="left no results"):
        run_sampled(
            local,
            ["ant-kpi-no-such-tool"],
            remote_dir="pss",
            json_name="x.json",
            vminfo_name="x.log",
            timeout=30,
            local_dir=tmp_path / "raw",
        )


def test_deploy_returns_verified_sha_per_remote_path(local: LocalTransport, tmp_path: Path) -> None:
    a, b = tmp_path / "a.js", tmp_path / "b.js"
    a.write_text("console.log(1)\n")
    b.write_text("console.log(2)\n")
    shas = deploy(local, {a: "apps/a.js", b: "apps/b.js"})
    assert shas == {"apps/a.js": sha256_file(a), "apps/b.js": sha256_file(b)}


# -- ssh without a board: failures that must stay readable and credential-free ----------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_board_is_blocked_after_retries_without_credentials(tmp_path: Path) -> None:
    if shutil.which("ssh") is None:
        pytest.skip("the OpenSSH client (ssh) is not installed (apt-get install openssh-client)")
    key = tmp_path / "secret-lab-key"
    key.write_text("not a key\n")
    known = tmp_path / "known_hosts"
    known.write_text("")
    board = Board(
        name="gone",
        model="Raspberry Pi 5",
        arch="arm64",
        target="arm64",
        transport="ssh",
        host="127.0.0.1",
        port=_free_port(),
        user="labadmin7",
        identity_file=str(key),
        known_hosts=str(known),
        connect_timeout_s=2,
    )
    t = SshTransport(board, attempts=3, backoff_s=0.2)
    start = time.monotonic()
    with pytest.raises(Blocked) as e:
        t.run(["true"], timeout=10)
    assert time.monotonic() - start >= 0.2 + 0.4  # two backoffs: three attempts
    text = e.value.one_line()
    assert "board gone unreachable" in text and "3 attempts" in text and "powered" in text
    assert "labadmin7" not in text and "secret-lab-key" not in text


def test_missing_identity_file_is_blocked_without_naming_it(tmp_path: Path) -> None:
    board = Board(
        name="pi",
        model="Raspberry Pi 4",
        arch="arm64",
        target="arm64",
        transport="ssh",
        host="127.0.0.1",
        user="labadmin7",
        identity_file=str(tmp_path / "secret-lab-key"),
    )
    with pytest.raises(Blocked) as e:
        SshTransport(board).run(["true"], timeout=10)
    assert "identity_file" in e.value.one_line() and "secret-lab-key" not in e.value.one_line()


# -- leases -------------------------------------------------------------------------------------


def test_second_lease_on_a_board_is_blocked_with_the_holder(tmp_path: Path) -> None:
    with lease("pi", leases_dir=tmp_path, run_id="run-1", ttl_s=60) as held:
        assert held.run_id == "run-1"
        assert holder(tmp_path, "pi") == held.note()
        with pytest.raises(Blocked) as e, lease("pi", leases_dir=tmp_path, run_id="run-2", ttl_s=60):
            pass
        assert f"board pi is leased by run run-1 (pid {os.getpid()}" in str(e.value)
        assert e.value.fix.startswith("wait, or pass --board-wait S")
        with lease("other", leases_dir=tmp_path, run_id="run-2", ttl_s=60):
            pass
    assert holder(tmp_path, "pi") is None
    with lease("pi", leases_dir=tmp_path, run_id="run-2", ttl_s=60):
        pass


_HOLDER = """
import sys, time
from pathlib import Path
from harness.env.lab.lease import lease
with lease("pi", leases_dir=Path(sys.argv[1]), run_id="run-dead", ttl_s=60):
    print("held", flush=True)
    time.sleep(60)
"""


def test_lease_of_a_killed_run_is_free_again(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        with (
            pytest.raises(Blocked, match=rf"leased by run run-dead \(pid {proc.pid}"),
            lease("pi", leases_dir=tmp_path, run_id="run-2", ttl_s=60),
        ):
            pass
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        with lease("pi", leases_dir=tmp_path, run_id="run-2", ttl_s=60) as held:
            assert holder(tmp_path, "pi") == held.note()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_waiting_lease_gets_the_board_when_the_holder_ends(tmp_path: Path) -> None:
    got: list[float] = []

    def second() -> None:
        with lease("pi", leases_dir=tmp_path, run_id="run-2", ttl_s=60, wait=True, wait_timeout_s=20):
            got.append(time.monotonic())

    with lease("pi", leases_dir=tmp_path, run_id="run-1", ttl_s=60):
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.8)
        released = time.monotonic()
        assert not got
    waiter.join(timeout=20)
    assert got and got[0] >= released


def test_overdue_holder_is_reported_as_overdue(tmp_path: Path) -> None:
    with lease("pi", leases_dir=tmp_path, run_id="run-1", ttl_s=0.01):
        time.sleep(0.05)
        with pytest.raises(Blocked, match="overdue"), lease("pi", leases_dir=tmp_path, run_id="r2", ttl_s=5):
            pass


# -- the namespace board ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nsboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[netns_board.NetnsBoard]:
    missing = netns_board.missing_tools()
    if missing:
        pytest.skip(f"a namespace test board needs {', '.join(missing)}")
    with netns_board.running(tmp_path_factory.mktemp("nsboard")) as board:
        yield board


@pytest.fixture
def ssh(nsboard: netns_board.NetnsBoard) -> Iterator[SshTransport]:
    """A transport to the namespace board; the board is back up after each test."""
    yield SshTransport(nsboard.board(), attempts=2, backoff_s=0.1, alive_interval_s=1, alive_count_max=2)
    nsboard.link(up=True)
    if nsboard.sshd is None or nsboard.sshd.poll() is not None:
        nsboard.kill_all()
        nsboard.start_sshd()


@pytest.fixture(scope="module")
def armhf_hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("arm-linux-gnueabihf-gcc")
    if gcc is None:
        pytest.skip("arm-linux-gnueabihf-gcc is not installed (apt-get install gcc-arm-linux-gnueabihf)")
    root = tmp_path_factory.mktemp("armhf")
    (root / "hello.c").write_text(HELLO_C)
    subprocess.run(
        [gcc, "-static", "-O2", "-Wall", "-Werror", "-o", str(root / "hello"), str(root / "hello.c")], check=True
    )
    return root / "hello"


@pytest.mark.ssh
def test_ssh_runs_a_command_and_returns_output_and_exit_code(ssh: SshTransport) -> None:
    r = ssh.run(["sh", "-c", "echo out; echo err >&2; exit 7"], timeout=30)
    assert (r.exit_code, r.stdout, r.stderr, r.timed_out) == (7, "out\n", "err\n", False)


@pytest.mark.ssh
def test_remote_exit_255_is_the_commands_own_result_not_a_dead_board(ssh: SshTransport) -> None:
    assert ssh.run(["sh", "-c", "exit 255"], timeout=30).exit_code == 255
    assert ssh.run(["sh", "-c", "kill -9 $$"], timeout=30).exit_code == 128 + 9


@pytest.mark.ssh
def test_ssh_argv_with_shell_metacharacters_arrives_verbatim(ssh: SshTransport, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    args = _nasty(marker)
    _assert_verbatim(ssh.run(["printf", "<%s>\\n", *args], timeout=30), args, marker)


@pytest.mark.ssh
def test_ssh_cwd_env_stdout_file_and_missing_command(ssh: SshTransport, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    r = ssh.run(["sh", "-c", 'pwd; echo "$ANT_X"'], timeout=30, cwd="/proc", env={"ANT_X": "$(id) ;x"}, stdout_path=out)
    assert r.exit_code == 0 and out.read_text() == "/proc\n$(id) ;x\n"
    assert ssh.run(["ant-kpi-no-such-tool"], timeout=30).exit_code == 127


@pytest.mark.ssh
def test_ssh_timeout_ends_the_remote_command(ssh: SshTransport, nsboard: netns_board.NetnsBoard) -> None:
    r = ssh.run(["sleep", "37.5"], timeout=1)
    assert r.timed_out and r.exit_code == 124 and r.wall_s < 20
    time.sleep(0.5)
    left = [p for p in nsboard.pids() if b"37.5" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert left == []


@pytest.mark.ssh
def test_ssh_put_and_get_are_verified_by_sha256(ssh: SshTransport, tmp_path: Path) -> None:
    src = tmp_path / "blob.bin"
    src.write_bytes(os.urandom(300_000))
    src.chmod(0o750)
    digest = ssh.put(src, "files/blob.bin")
    assert digest == sha256_file(src)
    # The namespace shares this filesystem: what landed on the "board" can be checked directly.
    placed = Path(ssh.remote_path("files/blob.bin"))
    assert placed.read_bytes() == src.read_bytes() and placed.stat().st_mode & 0o777 == 0o750
    back = ssh.get("files/blob.bin", tmp_path / "back.bin")
    assert back.read_bytes() == src.read_bytes()
    with pytest.raises(StepFailed, match="cannot fetch"):
        ssh.get("files/absent.bin", tmp_path / "absent.bin")
    assert not (tmp_path / "absent.bin").exists()


@pytest.mark.ssh
def test_ssh_deploy_and_run_an_armhf_static_binary(ssh: SshTransport, armhf_hello: Path) -> None:
    shas = deploy(ssh, {armhf_hello: "bin/hello"})
    assert shas == {"bin/hello": sha256_file(armhf_hello)}
    r = ssh.run([ssh.remote_path("bin/hello"), "a b", "$x"], timeout=60)
    # binfmt runs it under qemu-arm, which reports an ARMv7 machine
    assert r.exit_code == 3 and r.stdout == "hello from armv7l [a b] [$x]\n"


@pytest.mark.ssh
def test_ssh_run_sampled_returns_pss_json_with_samples(ssh: SshTransport, tmp_path: Path) -> None:
    argv = ["python3", "-c", "import time; x = bytearray(16 << 20); time.sleep(0.4)"]
    r, local_json = run_sampled(
        ssh, argv, remote_dir="pss", json_name="run.json", vminfo_name="run.log", timeout=60, local_dir=tmp_path / "raw"
    )
    assert r.exit_code == 0, r.stderr
    doc = json.loads(local_json.read_text())
    assert doc["format"] == "ant-kpi-pss" and doc["samples"] > 5 and doc["argv"] == argv
    assert doc["peak_pss_kb"] >= 16 * 1024
    assert pss.read_vminfo_log(tmp_path / "raw" / "run.log")[1] == doc["peak_pss_kb"]
    assert transport.FIDELITY == "board"


@pytest.mark.ssh
def test_ssh_identity_reports_kernel_memory_hostname_python(ssh: SshTransport) -> None:
    ident = ssh.identity()
    assert ident["board"] == "nsboard" and ident["transport"] == "ssh"
    assert ident["kernel"] == " ".join(os.uname()[i] for i in (0, 2, 4))
    assert ident["mem_available_kb"] > 0 and ident["hostname"] == socket.gethostname()
    assert ident["python3"].startswith("3.")
    assert set(ident) >= {"model", "cpu_governor", "soc_temp_c"}


@pytest.mark.ssh
def test_inventory_entry_reaches_the_board(nsboard: netns_board.NetnsBoard, tmp_path: Path) -> None:
    path = tmp_path / "boards.toml"
    path.write_text(nsboard.toml("bench-pi"))
    board = load_boards(path)["bench-pi"]
    t = transport_for(board)
    assert isinstance(t, SshTransport)
    assert t.run(["echo", "ok"], timeout=30).stdout == "ok\n"


@pytest.mark.ssh
def test_wrong_host_key_is_refused_at_once(nsboard: netns_board.NetnsBoard, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = tmp_path / "known_hosts"
    kind, key = Path(f"{other}.pub").read_text().split()[:2]
    known.write_text(f"[{nsboard.board_ip}]:{nsboard.port} {kind} {key}\n")
    t = SshTransport(nsboard.board(known_hosts=str(known)), attempts=3, backoff_s=5)
    start = time.monotonic()
    with pytest.raises(Blocked) as e:
        t.run(["true"], timeout=30)
    assert time.monotonic() - start < 5, "a host key mismatch must not be retried"
    assert "board nsboard: its host key does not match" in e.value.what
    assert f"ssh-keygen -R '[{nsboard.board_ip}]:{nsboard.port}' -f {known}" in e.value.fix
    assert "client_ed25519" not in e.value.one_line()


@pytest.mark.ssh
def test_unknown_host_key_is_never_accepted(nsboard: netns_board.NetnsBoard, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("")
    with pytest.raises(Blocked, match=r"is not in .*unknown host keys are never accepted"):
        SshTransport(nsboard.board(known_hosts=str(known))).run(["true"], timeout=30)
    assert known.read_text() == ""


@pytest.mark.ssh
def test_wrong_client_key_is_blocked_without_credentials(nsboard: netns_board.NetnsBoard, tmp_path: Path) -> None:
    key = tmp_path / "secret-lab-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    with pytest.raises(Blocked) as e:
        SshTransport(nsboard.board(identity_file=str(key))).run(["true"], timeout=30)
    assert "refused the SSH key" in e.value.what and "secret-lab-key" not in e.value.one_line()


@pytest.mark.ssh
def test_board_killed_mid_command_is_blocked_and_earlier_results_kept(
    ssh: SshTransport, nsboard: netns_board.NetnsBoard, tmp_path: Path
) -> None:
    first = ssh.run(["echo", "first result"], timeout=30, stdout_path=tmp_path / "first.txt")
    assert first.exit_code == 0
    killer = threading.Timer(1.0, nsboard.kill_all)
    killer.start()
    try:
        with pytest.raises(Blocked) as e:
            ssh.run(["sleep", "30"], timeout=60)
    finally:
        killer.join()
    assert "board nsboard: connection lost while running 'sleep'" in e.value.what
    assert (tmp_path / "first.txt").read_text() == "first result\n"


@pytest.mark.ssh
def test_cable_pulled_mid_command_is_noticed_by_keepalives(ssh: SshTransport, nsboard: netns_board.NetnsBoard) -> None:
    puller = threading.Timer(1.0, nsboard.link, kwargs={"up": False})
    puller.start()
    start = time.monotonic()
    try:
        with pytest.raises(Blocked, match="connection lost"):
            ssh.run(["sleep", "60"], timeout=120)
    finally:
        puller.join()
    assert time.monotonic() - start < 20


@pytest.mark.ssh
def test_board_down_before_the_next_command_is_unreachable_after_retries(
    ssh: SshTransport, nsboard: netns_board.NetnsBoard
) -> None:
    assert ssh.run(["true"], timeout=30).exit_code == 0
    nsboard.kill_all()
    with pytest.raises(Blocked) as e:
        ssh.run(["true"], timeout=30)
    assert "board nsboard unreachable" in e.value.what and "2 attempts" in e.value.what
    assert "Connection refused" in e.value.what
    assert e.value.fix.startswith("check it is powered and reachable")
    nsboard.start_sshd()
    assert ssh.run(["true"], timeout=30).exit_code == 0
