"""The lab inventory (harness/boards.py): strict loading, defaults, and credentials kept private."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.env.lab.inventory import SEED_MODELS, Board, boards_for_target, inventory_path, load_boards
from harness.errors import EXIT_BAD_INPUT, EXIT_BLOCKED, Blocked, ManifestError
from harness.options import EnvSettings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "boards.example.toml"
SECRET_USER = "labadmin7"
SECRET_KEY = "/home/lab/.ssh/secret-lab-key"

GOOD = f"""
[boards.pi]
model = "Raspberry Pi 2"
arch = "armhf"
target = "rpi2"
transport = "ssh"
host = "10.0.0.5"
user = "{SECRET_USER}"
identity_file = "{SECRET_KEY}"
camera_source = "rpi"
tags = ["bench-1"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "boards.toml"
    p.write_text(text)
    return p


def _error(tmp_path: Path, text: str) -> ManifestError:
    with pytest.raises(ManifestError) as e:
        load_boards(_write(tmp_path, text))
    return e.value


def test_example_inventory_loads_with_one_board_per_documented_kind() -> None:
    boards = load_boards(EXAMPLE)
    assert {b.model for b in boards.values()} >= {"Raspberry Pi 2", "Jetson TX2", "ODROID XU4"}
    by_model = {b.model: b for b in boards.values()}
    assert by_model["Raspberry Pi 2"].camera_source == "rpi" and by_model["Raspberry Pi 2"].arch == "armhf"
    assert by_model["Jetson TX2"].camera_source == "nvidia" and by_model["Jetson TX2"].target == "arm64"
    assert by_model["ODROID XU4"].camera_source == "/dev/video0"
    assert by_model["Raspberry Pi 4"].reserve == (("board", "rpi4"), ("os", "raspios-bookworm-armhf"))
    assert [b.transport for b in boards.values()].count("local") == 1


def test_ssh_board_gets_documented_defaults(tmp_path: Path) -> None:
    b = load_boards(_write(tmp_path, GOOD))["pi"]
    # work_dir "" is the per-user default, /tmp/ant-kpi-<uid> on the board (made 0700 on first use).
    assert (b.port, b.connect_timeout_s, b.command_timeout_s, b.work_dir) == (22, 10.0, 3600.0, "")
    assert b.known_hosts == "" and b.tags == ("bench-1",) and b.notes == ()
    assert b.seed_model


def test_stream_interface_defaults_to_eth0_and_refuses_what_is_not_a_name(tmp_path: Path) -> None:
    assert load_boards(_write(tmp_path, GOOD))["pi"].interface == "eth0"
    assert load_boards(_write(tmp_path, GOOD + 'interface = "wlan0"\n'))["pi"].interface == "wlan0"
    with pytest.raises(ManifestError, match="interface"):
        load_boards(_write(tmp_path, GOOD + 'interface = "eth0; reboot"\n'))


def test_local_board_needs_no_ssh_fields(tmp_path: Path) -> None:
    text = '[boards.here]\nmodel = "Jetson Xavier"\narch = "arm64"\ntarget = "arm64"\ntransport = "local"\n'
    b = load_boards(_write(tmp_path, text))["here"]
    assert b.transport == "local" and b.host == "" and b.camera_source is None


def test_other_model_is_accepted_with_a_note_and_a_suggestion(tmp_path: Path) -> None:
    b = load_boards(_write(tmp_path, GOOD.replace('"Raspberry Pi 2"', '"Raspberry Pi2"')))["pi"]
    assert not b.seed_model
    assert len(b.notes) == 1 and "did you mean 'Raspberry Pi 2'" in b.notes[0]
    assert len(SEED_MODELS) == 9


def test_unknown_key_is_rejected_with_did_you_mean(tmp_path: Path) -> None:
    e = _error(tmp_path, GOOD.replace("host =", "hots ="))
    assert e.key == "boards.pi.hots" and "did you mean 'host'" in e.problem


def test_unknown_top_level_key_is_rejected(tmp_path: Path) -> None:
    e = _error(tmp_path, GOOD.replace("[boards.pi]", "[board.pi]"))
    assert e.key == "board" and "did you mean 'boards'" in e.problem


def test_wrong_type_names_key_and_type(tmp_path: Path) -> None:
    e = _error(tmp_path, GOOD.replace('host = "10.0.0.5"', 'host = "10.0.0.5"\nport = "22"'))
    assert e.key == "boards.pi.port" and e.problem == "must be an integer, not a string"


def test_missing_key_is_reported(tmp_path: Path) -> None:
    e = _error(tmp_path, GOOD.replace('model = "Raspberry Pi 2"\n', ""))
    assert e.key == "boards.pi.model" and e.problem == "required key is missing"
    e = _error(tmp_path, GOOD.replace('host = "10.0.0.5"\n', ""))
    assert e.key == "boards.pi.host"


@pytest.mark.parametrize(
    ("old", "new", "key", "fragment"),
    [
        ('arch = "armhf"', 'arch = "arm64"', "boards.pi.arch", "does not match target 'rpi2'"),
        ('target = "rpi2"', 'target = "rpi3"', "boards.pi.target", "did you mean 'rpi2'"),
        ('transport = "ssh"', 'transport = "shh"', "boards.pi.transport", "did you mean 'ssh'"),
        ('camera_source = "rpi"', 'camera_source = "usb"', "boards.pi.camera_source", "/dev/videoN"),
        ('tags = ["bench-1"]', "tags = [1]", "boards.pi.tags[0]", "must be a string"),
        ('tags = ["bench-1"]', 'work_dir = "relative/dir"', "boards.pi.work_dir", "absolute"),
        ('host = "10.0.0.5"', 'host = "10.0.0.5"\nport = 70000', "boards.pi.port", "1-65535"),
        ('host = "10.0.0.5"', 'host = "-oProxyCommand=x"', "boards.pi.host", "host name"),
    ],
)
def test_bad_values_are_one_located_line(tmp_path: Path, old: str, new: str, key: str, fragment: str) -> None:
    e = _error(tmp_path, GOOD.replace(old, new))
    assert e.key == key and fragment in e.problem
    assert e.exit_code == EXIT_BAD_INPUT
    assert "\n" not in e.one_line()


def test_ssh_keys_on_a_local_board_are_rejected(tmp_path: Path) -> None:
    e = _error(tmp_path, GOOD.replace('transport = "ssh"', 'transport = "local"'))
    assert e.key == "boards.pi.host" and "only for transport = 'ssh'" in e.problem


def test_invalid_toml_is_bad_input(tmp_path: Path) -> None:
    e = _error(tmp_path, "[boards.pi\n")
    assert "not valid TOML" in e.problem


def test_missing_inventory_is_blocked_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(Blocked) as e:
        load_boards(tmp_path / "absent.toml")
    assert e.value.exit_code == EXIT_BLOCKED and "boards.example.toml" in e.value.fix


def test_inventory_path_prefers_option_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ANT_KPI_BOARDS", raising=False)
    assert inventory_path(env=EnvSettings.from_environ()) == Path("boards.toml")
    monkeypatch.setenv("ANT_KPI_BOARDS", str(tmp_path / "lab.toml"))
    assert inventory_path(env=EnvSettings.from_environ()) == tmp_path / "lab.toml"
    assert inventory_path(tmp_path / "x.toml", env=EnvSettings.from_environ()) == tmp_path / "x.toml"
    (tmp_path / "lab.toml").write_text(GOOD)
    assert list(load_boards(inventory_path(env=EnvSettings.from_environ()))) == ["pi"]


def test_targets_can_come_from_the_manifest(tmp_path: Path) -> None:
    text = GOOD.replace('target = "rpi2"', 'target = "rpi3"')
    assert load_boards(_write(tmp_path, text), targets={"rpi3": "armhf"})["pi"].target == "rpi3"


def test_boards_for_target_lists_only_that_target_by_name() -> None:
    boards = load_boards(EXAMPLE)
    armhf = boards_for_target(boards, "rpi2")
    assert [b.name for b in armhf] == sorted(b.name for b in armhf)
    assert {b.model for b in armhf} == {"Raspberry Pi 2", "ODROID XU4", "Raspberry Pi 4"}
    assert boards_for_target(boards, "nope") == []


def test_credentials_stay_out_of_public_record_and_repr(tmp_path: Path) -> None:
    b = load_boards(_write(tmp_path, GOOD))["pi"]
    assert b.user == SECRET_USER and b.identity_file == SECRET_KEY
    public = b.public()
    assert set(public) == {"name", "model", "arch", "target", "transport", "tags"}
    for shown in (str(public), repr(b), str(b)):
        assert SECRET_USER not in shown and "secret-lab-key" not in shown


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (f'user = "{SECRET_USER}"', f'user = "{SECRET_USER} extra"'),
        (f'user = "{SECRET_USER}"', "user = 7"),
        (f'identity_file = "{SECRET_KEY}"', f'identity_file = ["{SECRET_KEY}"]'),
        (f'identity_file = "{SECRET_KEY}"', f'identity_file = "{SECRET_KEY}"\nidentity_files = "{SECRET_KEY}"'),
    ],
)
def test_errors_about_credentials_do_not_repeat_them(tmp_path: Path, old: str, new: str) -> None:
    e = _error(tmp_path, GOOD.replace(old, new))
    assert SECRET_USER not in e.one_line() and "secret-lab-key" not in e.one_line()


def test_board_is_frozen() -> None:
    b = Board(name="x", model="Jetson TX1", arch="arm64", target="arm64", transport="local")
    with pytest.raises(AttributeError):
        b.model = "other"  # type: ignore[misc]
