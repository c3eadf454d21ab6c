"""Reaching a board: protocols (protocols.py) and two drivers, local.py and ssh.py; sampled.py runs a
command under the PSS sampler there. The driver for a board is chosen by the lab (env.lab.session).
"""

from harness.env.transport.local import LocalTransport
from harness.env.transport.protocols import (
    FIDELITY,
    CommandProtocol,
    CommandResult,
    Endpoint,
    FileTransferProtocol,
    IdentityProtocol,
    Transport,
    parse_identity,
    prepare_work_dir,
    probe_identity,
    remove_inside,
)
from harness.env.transport.sampled import deploy, ensure_pss, run_sampled
from harness.env.transport.ssh import SshTransport

__all__ = [
    "FIDELITY",
    "CommandProtocol",
    "CommandResult",
    "Endpoint",
    "FileTransferProtocol",
    "IdentityProtocol",
    "LocalTransport",
    "SshTransport",
    "Transport",
    "deploy",
    "ensure_pss",
    "parse_identity",
    "prepare_work_dir",
    "probe_identity",
    "remove_inside",
    "run_sampled",
]
