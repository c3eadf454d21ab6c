"""Detached signatures of evidence bundles (`<bundle>.sig`), made and checked with OpenSSH's ssh-keygen -Y.

MANIFEST.sha256 proves integrity only: whoever can change a bundle can rewrite its sums too. A
signature made with the lab's SSH key, checked against an allowed-signers file the evaluator got
from the lab (the format of ssh-keygen(1), `principal key-type key`), also proves who packed it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Final

from harness.errors import BadInput, Blocked

SIG_SUFFIX: Final = ".sig"
# ssh-keygen's namespace: a signature made for another purpose (git commits, files) never verifies here.
NAMESPACE: Final = "ant-kpi-evidence"
_TIMEOUT_S: Final = 60


class SignatureError(BadInput):
    """A signature is missing, malformed, or not by an allowed signer."""


def signature_path(bundle: Path) -> Path:
    return bundle.with_name(bundle.name + SIG_SUFFIX)


def _ssh_keygen() -> str:
    exe = shutil.which("ssh-keygen")
    if exe is None:
        raise Blocked(
            "ssh-keygen (OpenSSH) is not installed: bundles cannot be signed or checked",
            "apt-get install openssh-client",
        )
    return exe


def _flat(text: str) -> str:
    return " ".join(text.split())[:200] or "no message"


def sign_bundle(bundle: Path, key: Path) -> Path:
    """Write `<bundle>.sig` with the SSH private key `key`; returns the signature's path."""
    if not key.is_file():
        raise BadInput(f"--sign-key {key}: no such key file")
    sig = signature_path(bundle)
    sig.unlink(missing_ok=True)  # ssh-keygen refuses to overwrite one
    p = subprocess.run(
        [_ssh_keygen(), "-Y", "sign", "-q", "-f", str(key), "-n", NAMESPACE, str(bundle)],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    if p.returncode != 0 or not sig.is_file():
        raise BadInput(f"cannot sign {bundle.name} with {key}: {_flat(p.stderr)}")
    return sig


def verify_signature(bundle: Path, allowed_signers: Path) -> str:
    """The principal whose key (listed in `allowed_signers`) signed `bundle`; SignatureError otherwise."""
    if not allowed_signers.is_file():
        raise BadInput(f"--allowed-signers {allowed_signers}: no such file")
    sig = signature_path(bundle)
    if not sig.is_file():
        raise SignatureError(f"{bundle}: no signature {sig.name} beside it, so its origin cannot be checked")
    exe = _ssh_keygen()
    found = subprocess.run(
        [exe, "-Y", "find-principals", "-s", str(sig), "-f", str(allowed_signers)],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    principals = found.stdout.split()
    if found.returncode != 0 or not principals:
        raise SignatureError(f"{bundle}: {sig.name} is not by a key of {allowed_signers} ({_flat(found.stderr)})")
    with bundle.open("rb") as data:
        p = subprocess.run(
            [exe, "-Y", "verify", "-f", str(allowed_signers), "-I", principals[0], "-n", NAMESPACE, "-s", str(sig)],
            stdin=data,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
        )
    if p.returncode != 0:
        raise SignatureError(
            f"{bundle}: {sig.name} does not verify for {principals[0]} ({_flat(p.stderr or p.stdout)})"
        )
    return principals[0]
