"""A content-addressed store of built files, with an index from build keys to contents.

Layout under the root:
  sha256/<first2>/<sha256>/<name>   the file (read-only; executable bit kept)
  sha256/<first2>/<sha256>/meta.json name, kind, size, sha256, provenance, stored_at (written last)
  index/<key>.json                  a build key → sha256, with that build's provenance

A warm re-run looks its build key up and reuses the artefact instead of building again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Final

from harness.core.digest import sha256_file
from harness.core.fsio import atomic_write_text, exclusive_lock
from harness.errors import BadInput

META: Final = "meta.json"
_SHA256_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_KEY_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+\-]{0,199}$")
_CHUNK: Final = 1 << 20


@dataclass(frozen=True, kw_only=True)
class Artefact:
    """One stored file: where it is, what it hashes to, and where it came from."""

    path: Path
    sha256: str
    size: int
    name: str
    kind: str
    provenance: Mapping[str, Any] = field(default_factory=dict)
    stored_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "size": self.size,
            "sha256": self.sha256,
            "provenance": dict(self.provenance),
            "stored_at": self.stored_at,
        }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _check_name(name: str) -> None:
    if not name or name in (".", "..", META) or "/" in name or "\0" in name or name.startswith("."):
        raise BadInput(f"artefact name {name!r} must be a plain file name (not {META!r})")


def _check_key(key: str) -> None:
    if not _KEY_RE.match(key):
        raise BadInput(f"artefact key {key!r}: use letters, digits and . _ - : + (at most 200)")


class ArtefactStore:
    """Files stored by sha256 under `root`, found again by hash or by build key."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def put(
        self, path: Path, *, name: str, kind: str, provenance: Mapping[str, Any], key: str | None = None
    ) -> Artefact:
        """Store a copy of the file `path` (idempotent for identical contents)."""
        src = Path(path)
        _check_name(name)
        if key is not None:
            _check_key(key)
        if not src.is_file():
            raise BadInput(f"cannot store {src} as artefact {name!r}: not a file")
        executable = bool(src.stat().st_mode & 0o111)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(exist_ok=True)
        # Hash while copying so the stored bytes are exactly the hashed bytes, even if the source
        # is rewritten meanwhile.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", dir=tmp_dir)
        tmp = Path(tmp_name)
        try:
            h = hashlib.sha256()
            size = 0
            with src.open("rb") as fin, os.fdopen(fd, "wb") as fout:
                while chunk := fin.read(_CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    fout.write(chunk)
                fout.flush()
                os.fsync(fout.fileno())
            digest = h.hexdigest()
            # Read-only: a stored artefact is never edited in place.
            tmp.chmod(0o555 if executable else 0o444)
            with exclusive_lock(self.root / "locks" / f"{digest}.lock", wait=True):
                meta = self._store(tmp, digest, size, name=name, kind=kind, provenance=provenance)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        stored_at = str(meta["stored_at"])
        if key is not None:
            stored_at = _now()
            entry = {
                "key": key,
                "sha256": digest,
                "name": name,
                "kind": kind,
                "provenance": dict(provenance),
                "stored_at": stored_at,
            }
            atomic_write_text(self.root / "index" / f"{key}.json", json.dumps(entry, indent=2, sort_keys=True) + "\n")
        # The caller's view: its name, kind and provenance (meta.json keeps the first put's).
        return Artefact(
            path=self._dir(digest) / name,
            sha256=digest,
            size=size,
            name=name,
            kind=kind,
            provenance=dict(provenance),
            stored_at=stored_at,
        )

    def _store(
        self, tmp: Path, digest: str, size: int, *, name: str, kind: str, provenance: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Put the hashed temporary file in place; returns the content's meta.json record."""
        d = self._dir(digest)
        meta = self._read_meta(digest)
        if meta is not None and self._intact(d / meta["name"], size, digest):
            # The same bytes again: keep the first record; another name becomes a second link.
            target = d / name
            if not target.exists():
                _link_or_copy(d / meta["name"], target)
            names = sorted({*meta.get("names", [meta["name"]]), name})
            if names != meta.get("names"):
                meta["names"] = names
                atomic_write_text(d / META, json.dumps(meta, indent=2, sort_keys=True) + "\n")
            return meta
        # New, or an earlier put died before meta.json, or the stored bytes rotted: start over.
        names = sorted({*(meta or {}).get("names", []), name})
        first = str((meta or {}).get("name", name))
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        os.replace(tmp, d / first)
        for other in names:
            if other != first:
                _link_or_copy(d / first, d / other)
        if meta is None:
            meta = {"name": name, "kind": kind, "provenance": dict(provenance), "stored_at": _now()}
        meta.update(names=names, size=size, sha256=digest)
        atomic_write_text(d / META, json.dumps(meta, indent=2, sort_keys=True) + "\n")
        return meta

    @staticmethod
    def _intact(path: Path, size: int, digest: str | None = None) -> bool:
        """The file exists with this size (and, when given, this sha256)."""
        try:
            if not path.is_file() or path.stat().st_size != size:
                return False
            return digest is None or sha256_file(path) == digest
        except OSError:
            return False

    def _read_meta(self, sha256: str) -> dict[str, Any] | None:
        try:
            meta = json.loads((self._dir(sha256) / META).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("sha256") != sha256 or "name" not in meta:
            return None
        return meta

    @staticmethod
    def _from_meta(d: Path, meta: Mapping[str, Any]) -> Artefact:
        shown = str(meta["name"])
        return Artefact(
            path=d / shown,
            sha256=str(meta["sha256"]),
            size=int(meta["size"]),
            name=shown,
            kind=str(meta.get("kind", "")),
            provenance=dict(meta.get("provenance", {})),
            stored_at=str(meta.get("stored_at", "")),
        )

    def get(self, sha256: str) -> Artefact:
        """The stored artefact with this sha256; BadInput when the store has none."""
        if not _SHA256_RE.match(sha256):
            raise BadInput(f"artefact {sha256!r}: not a sha256 (64 lowercase hex digits)")
        meta = self._read_meta(sha256)
        if meta is None or not (self._dir(sha256) / meta["name"]).is_file():
            raise BadInput(f"no artefact {sha256} in {self.root}")
        return self._from_meta(self._dir(sha256), meta)

    def lookup(self, key: str) -> Artefact | None:
        """The artefact a build with this key produced, or None when it must be built."""
        _check_key(key)
        try:
            entry = json.loads((self.root / "index" / f"{key}.json").read_text())
            digest = str(entry["sha256"])
            name = str(entry["name"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        meta = self._read_meta(digest) if _SHA256_RE.match(digest) else None
        if meta is None:
            return None
        path = self._dir(digest) / name
        if not self._intact(path, int(meta["size"])):
            return None
        return Artefact(
            path=path,
            sha256=digest,
            size=int(meta["size"]),
            name=name,
            kind=str(entry.get("kind", meta.get("kind", ""))),
            provenance=dict(entry.get("provenance", {})),
            stored_at=str(entry.get("stored_at", "")),
        )

    def verify(self, artefact: Artefact) -> bool:
        """Re-hash the stored file: True when its bytes still match the recorded sha256."""
        try:
            return artefact.path.stat().st_size == artefact.size and sha256_file(artefact.path) == artefact.sha256
        except OSError:
            return False


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
