"""What runs inside images or on boards, not in the harness's own process.

Each module here is a stand-alone script: it is copied alone into a container or onto a board
and started there, so it imports nothing from the harness, and those that run on a board use the
standard library only (pss.py, companion.py). Host code finds them with `path()`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def path(name: str) -> Path:
    """The file (or folder) `name` of this package on disk, e.g. path("pss.py")."""
    return Path(str(files(__name__).joinpath(name)))
