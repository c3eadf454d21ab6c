"""Faults in what the harness reads back or hands out (issue 14, security): archives copied out of
containers, training checkpoints, and evidence bundles whose origin an evaluator must know.

Real parts only: tar archives written with tarfile as any tool could, torch checkpoints saved with
torch, OpenSSH's ssh-keygen for signatures, and `python -m harness` for bundles.
"""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

from harness.env.container import extract_checked
from harness.errors import StepFailed

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_faults_security import harness, vminfo_log

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------------------
# Archives from containers
# --------------------------------------------------------------------------------------------


def _tar(path: Path, members: list[tuple[str, str, str]]) -> Path:
    """A tar of (name, kind, link or content) members, written with tarfile as any tool could."""
    with tarfile.open(path, "w") as tar:
        for name, kind, arg in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = arg.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "sym": tarfile.SYMTYPE,
                "hard": tarfile.LNKTYPE,
                "chr": tarfile.CHRTYPE,
                "fifo": tarfile.FIFOTYPE,
            }[kind]
            info.linkname = arg
            tar.addfile(info)
    return path


UNSAFE = {
    "absolute": [("/tmp/ant-kpi-evil", "file", "x")],
    "parent": [("a/../../evil", "file", "x")],
    "symlink-absolute": [("l", "sym", "/etc")],
    "symlink-up": [("d/l", "sym", "../../evil")],
    "symlink-inner-dotdot": [("b", "sym", "."), ("l", "sym", "b/c/../..")],
    "under-a-symlink": [("l", "sym", "d"), ("d", "dir", ""), ("l/x", "file", "x")],
    "empty-symlink": [("", "sym", "x")],
    "hardlink": [("f", "file", "x"), ("h", "hard", "f")],
    "device": [("dev", "chr", "")],
    "fifo": [("p", "fifo", "")],
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_an_unsafe_archive_member_is_refused_before_anything_is_extracted(tmp_path: Path, case: str) -> None:
    archive = _tar(tmp_path / "a.tar", [("ok.txt", "file", "fine"), *UNSAFE[case]])
    dest = tmp_path / "dest"
    dest.mkdir()
    with tarfile.open(archive) as tar, pytest.raises(StepFailed, match="refusing to extract"):
        extract_checked(tar, dest, where="c:/work")
    assert list(dest.iterdir()) == []
    assert not Path("/tmp/ant-kpi-evil").exists() and not (tmp_path / "evil").exists()


def test_a_plain_archive_with_relative_links_inside_extracts(tmp_path: Path) -> None:
    archive = _tar(
        tmp_path / "a.tar",
        [
            ("w", "dir", ""),
            ("w/a", "dir", ""),
            ("w/a/f.txt", "file", "data"),
            ("w/b", "dir", ""),
            ("w/b/l", "sym", "../a/f.txt"),
            ("w/latest", "sym", "a"),
        ],
    )
    dest = tmp_path / "dest"
    dest.mkdir()
    with tarfile.open(archive) as tar:
        extract_checked(tar, dest, where="c:/work")
    assert (dest / "w" / "b" / "l").read_text() == "data" and (dest / "w" / "latest" / "f.txt").is_file()


def test_every_python_the_project_allows_has_the_fixed_tar_data_filter() -> None:
    spec = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    # PEP 706's filters came in 3.10.12 / 3.11.4 (3.12.0); their symbolic-link fix (gh-107845) one release later.
    without = ["3.9.18", "3.10.0", "3.10.11", "3.10.12", "3.11.0", "3.11.3", "3.11.4"]
    with_fix = ["3.10.13", "3.10.16", "3.11.5", "3.11.7", "3.12.0", "3.13.1"]
    assert [v for v in without if v in spec] == []
    assert [v for v in with_fix if v in spec] == with_fix
    assert hasattr(tarfile, "data_filter")


# --------------------------------------------------------------------------------------------
# Checkpoints are loaded as weights only
# --------------------------------------------------------------------------------------------


class Planted:
    """Unpickling this runs code: it touches a file (what a crafted checkpoint would do worse)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("module", ["admm_export", "patch_memory", "vit_throughput_bench"])
def test_a_checkpoint_that_would_run_code_is_refused_and_a_training_checkpoint_loads(
    tmp_path: Path, module: str
) -> None:
    torch = pytest.importorskip("torch")
    import argparse

    import numpy as np

    payload = __import__(f"harness.payload.{module}", fromlist=["load_weights_only"])
    good = tmp_path / "good.pth"
    state = {"conv.weight": torch.zeros(2, 2)}
    torch.save(
        {
            "state_dict": state,
            "model": state,
            "args": argparse.Namespace(lr=0.1, arch="x"),
            "perm_list": [np.arange(4)],
            "best_acc1": torch.tensor(1.0),
            "f": np.float64(2.0),
        },
        good,
    )
    assert torch.equal(payload.load_weights_only(good)["model"]["conv.weight"], state["conv.weight"])
    marker = tmp_path / "code-ran"
    bad = tmp_path / "bad.pth"
    torch.save({"model": state, "extra": Planted(marker)}, bad)
    with pytest.raises(pickle.UnpicklingError):
        payload.load_weights_only(bad)
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# verify: integrity is not authenticity; detached signatures
# --------------------------------------------------------------------------------------------


def _key(tmp: Path, name: str) -> Path:
    key = tmp / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def test_verify_says_sums_are_not_authenticity_and_checks_a_detached_signature(tmp_path: Path) -> None:
    runs = ["--runs-dir", str(tmp_path / "runs")]
    log = vminfo_log(tmp_path / "a.log", 900)
    assert (
        harness(
            tmp_path, *runs, "ingest", "1", str(log), "--variant", "iotjs", "--fidelity", "board", "--run-id", "r"
        ).returncode
        == 0
    )
    lab_key, other_key = _key(tmp_path, "lab"), _key(tmp_path, "other")
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"lab@ant-kpi {(tmp_path / 'lab.pub').read_text()}")
    bundle = tmp_path / "runs" / "r.evidence.tar.gz"
    made = harness(tmp_path, *runs, "bundle", "r", "--sign-key", str(lab_key))
    assert made.returncode == 0, made.stderr
    assert "signed: r.evidence.tar.gz.sig" in made.stdout

    plain = harness(tmp_path, "verify", str(bundle))
    assert plain.returncode == 0 and "authenticity NOT checked" in plain.stdout
    assert "r.evidence.tar.gz.sig is present but was not checked" in plain.stdout
    signed = harness(tmp_path, "verify", str(bundle), "--allowed-signers", str(signers))
    assert signed.returncode == 0, signed.stderr
    assert "authentic — r.evidence.tar.gz.sig is a valid signature by lab@ant-kpi" in signed.stdout

    # Someone rebuilds the bundle (new sums, new .sha256 sidecar) and signs it with their own key.
    again = harness(tmp_path, *runs, "bundle", "r", "--sign-key", str(other_key))
    assert again.returncode == 0
    forged = harness(tmp_path, "verify", str(bundle), "--allowed-signers", str(signers))
    assert forged.returncode == 2 and len(forged.stderr.strip().splitlines()) == 1
    assert "is not by a key of" in forged.stderr
    (tmp_path / "runs" / "r.evidence.tar.gz.sig").unlink()
    unsigned = harness(tmp_path, "verify", str(bundle), "--allowed-signers", str(signers))
    assert unsigned.returncode == 2 and "no signature r.evidence.tar.gz.sig" in unsigned.stderr


def test_verify_help_says_integrity_is_not_authenticity() -> None:
    p = subprocess.run([sys.executable, "-m", "harness", "verify", "--help"], capture_output=True, text=True)
    text = " ".join(p.stdout.split())
    assert "integrity, not authenticity" in text and "--allowed-signers" in text and "separate channel" in text
