"""The one sha256 helper: of a file, of a stream, of several files in order (hex digests)."""

from __future__ import annotations

import hashlib
import os
from typing import IO, Final

_CHUNK: Final = 1 << 20


def sha256_stream(f: IO[bytes]) -> str:
    """Hex sha256 of everything left to read in a binary stream, read in chunks."""
    h = hashlib.sha256()
    while chunk := f.read(_CHUNK):
        h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file."""
    with open(path, "rb") as f:
        return sha256_stream(f)


def sha256_files(*paths: str | os.PathLike[str]) -> str:
    """Hex sha256 of the files' contents one after another (a key for a set of tool files)."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()
