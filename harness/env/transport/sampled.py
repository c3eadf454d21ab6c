"""Deploy files to a target and run a command there under the PSS sampler (payload/pss.py)."""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.core.digest import sha256_file
from harness.env.transport.protocols import (
    EXIT_NOT_FOUND,
    PSS_GRACE_S,
    PSS_SOURCE,
    CommandResult,
    FileTransferProtocol,
    Transport,
    _seconds,
    _tail,
)
from harness.errors import BadInput, Blocked, StepFailed

# -- deploy / run / collect ---------------------------------------------------------------------


def deploy(transport: FileTransferProtocol, files: Mapping[Path, str]) -> dict[str, str]:
    """Copy local files to their remote paths; returns the verified sha256 per remote path."""
    return {remote: transport.put(Path(local), remote) for local, remote in files.items()}


# Per transport object: remote pss.py paths already checked in this process.
_PSS_READY: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def ensure_pss(transport: Transport, remote_dir: str) -> str:
    """Put harness/pss.py on the board once (skipped when an identical copy is there); returns its path."""
    path = transport.remote_path(f"{remote_dir.rstrip('/')}/pss.py")
    ready = _PSS_READY.setdefault(transport, set())
    if path in ready:
        return path
    check = transport.run(["python3", "-c", "import sys; sys.exit(0 if sys.version_info >= (3, 7) else 3)"], timeout=60)
    if check.exit_code == EXIT_NOT_FOUND:
        raise Blocked(
            f"board {transport.name} has no python3, which the PSS sampler needs",
            "install python3 (3.7 or newer) on the board",
        )
    if check.exit_code != 0:
        raise Blocked(
            f"board {transport.name}: python3 is older than 3.7, too old for the PSS sampler",
            "install python3 3.7 or newer on the board",
        )
    there = transport.run(["sha256sum", "--", path], timeout=60)
    fields = there.stdout.split()
    if there.exit_code != 0 or not fields or fields[0] != sha256_file(PSS_SOURCE):
        transport.put(PSS_SOURCE, path)
    ready.add(path)
    return path


def run_sampled(
    transport: Transport,
    argv: Sequence[str],
    *,
    remote_dir: str,
    json_name: str,
    vminfo_name: str,
    timeout: float,
    local_dir: Path,
    interval_s: float | None = None,
) -> tuple[CommandResult, Path]:
    """Run argv under pss.py on the board; fetch its JSON and vminfo log into local_dir (fidelity "board").

    Returns the sampler's CommandResult (its exit code is the command's) and the local JSON path;
    the vminfo log is at local_dir / vminfo_name.
    """
    for name in (json_name, vminfo_name):
        if not name or "/" in name or name in (".", ".."):
            raise BadInput(f"{name!r} must be a plain file name")
    pss_path = ensure_pss(transport, remote_dir)
    base = transport.remote_path(remote_dir)
    json_remote, vminfo_remote = f"{base}/{json_name}", f"{base}/{vminfo_name}"
    pss_argv = [
        "python3",
        pss_path,
        "--json",
        json_remote,
        "--vminfo-log",
        vminfo_remote,
        "--timeout",
        _seconds(timeout),
    ]
    if interval_s is not None:
        pss_argv += ["--interval", _seconds(interval_s)]
    result = transport.run([*pss_argv, "--", *argv], timeout=timeout + PSS_GRACE_S)
    local_dir.mkdir(parents=True, exist_ok=True)
    try:
        local_json = transport.get(json_remote, local_dir / json_name)
        transport.get(vminfo_remote, local_dir / vminfo_name)
    except StepFailed as e:
        raise StepFailed(
            f"pss.py on board {transport.name} left no results (exit {result.exit_code}: "
            f"{_tail(result.stderr, 200)}); {e.what}"
        ) from None
    return result, local_json
