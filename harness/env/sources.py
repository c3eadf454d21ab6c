"""Host-side checkouts of pinned sources: a bare mirror per URL, one work tree per commit.

Layout under the cache directory:
  git/<repo>-<urlhash>.git           bare mirror of one URL (full history of the pinned commits)
  git/<repo>-<urlhash>.partial.git   the same without blobs, for `paths` extraction
  src/<name>-<sha12>[-paths-<h>]     the work tree (or the extracted paths)
  src/<dir>.checkout.json            completion marker, written last
  locks/                             one lock per work tree and per mirror

Git is always given the manifest URL, so the user's `url.<base>.insteadOf` rules apply."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from harness.core.fsio import atomic_write_text, exclusive_lock
from harness.core.manifest import Source
from harness.core.strict_toml import did_you_mean
from harness.env.git import (
    _NAME_RE,
    GIT_TIMEOUT_S,  # noqa: F401 (re-exported: callers set checkout timeouts)
    Git,
    _has_commit,
)
from harness.env.source_trees import (
    MARKER_VERSION,  # noqa: F401
    _materialise,
    _normalise_paths,
    _reusable,
)
from harness.errors import BadInput

_SHA_RE: Final = re.compile(r"^[0-9a-f]{40}$")


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Checkout:
    """A source tree on disk at its pinned commit, or a local directory used as it is."""

    name: str
    url: str
    commit: str
    path: Path
    override: str = ""
    origin: str = ""
    submodules: tuple[tuple[str, str], ...] = ()
    submodule_urls: tuple[tuple[str, str, str], ...] = ()  # (path, url, origin)
    paths: tuple[str, ...] = ()
    manifest_commit: str = ""

    @property
    def pinned(self) -> bool:
        return bool(self.commit)

    def to_provenance(self) -> dict[str, Any]:
        """What a result row records about this source."""
        origins = {p: (u, o) for p, u, o in self.submodule_urls}
        return {
            "name": self.name,
            "url": self.url,
            "commit": self.commit,
            "pinned": self.pinned,
            "manifest_commit": self.manifest_commit,
            "override": self.override,
            "origin": self.origin,
            "paths": list(self.paths),
            "submodules": [
                {"path": p, "commit": c, "url": origins.get(p, ("", ""))[0], "origin": origins.get(p, ("", ""))[1]}
                for p, c in self.submodules
            ],
        }


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def parse_source_overrides(items: Sequence[str], known: Collection[str] | None = None) -> dict[str, Path]:
    """`--source NAME=PATH` strings → {name: absolute path}; the path must exist, NAME be a source of `known`."""
    out: dict[str, Path] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name or not raw:
            raise BadInput(f"--source {item!r}: expected NAME=PATH, e.g. --source iotjs=/srv/iotjs")
        if not _NAME_RE.match(name):
            raise BadInput(f"--source {item!r}: {name!r} is not a source name")
        if known is not None and name not in known:
            names = sorted(known)
            raise BadInput(
                f"--source {name}: the manifest has no source {name!r}{did_you_mean(name, names)}; "
                f"sources: {', '.join(names)}"
            )
        if name in out:
            raise BadInput(f"--source {name} given twice")
        path = Path(raw).expanduser()
        if not path.exists():
            raise BadInput(f"--source {name}={raw}: no such file or directory")
        if not path.is_dir():
            raise BadInput(f"--source {name}={raw}: not a directory")
        out[name] = path.resolve()
    return out


def checkout(
    source: Source,
    cache_dir: Path,
    *,
    override: Path | None = None,
    paths: tuple[str, ...] = (),
    log: Path | None = None,
) -> Checkout:
    """Check `source` out at its pinned commit (submodules included) under `cache_dir`."""
    sha = source.commit
    if not _SHA_RE.match(sha):
        raise BadInput(f"source {source.name}: commit {sha!r} is not a full 40-hex SHA")
    wanted = _normalise_paths(source.name, paths)
    git = Git(log=log)
    fetch_url = source.url
    over = ""
    if override is not None:
        opath = override.expanduser().resolve()
        if not opath.is_dir():
            raise BadInput(f"--source {source.name}={override}: not a directory")
        over = str(opath)
        if _repo_kind(opath) == "plain":
            return _use_in_place(source, opath, wanted)
        if not _has_commit(git, opath, sha):
            raise BadInput(
                f"source {source.name}: --source {opath} is a git repository without "
                f"commit {sha}; fetch it there (git -C {opath} fetch origin {sha}) "
                "or point --source at another clone"
            )
        fetch_url = over
    cache = cache_dir.expanduser().resolve()
    dirname = f"{source.name}-{sha[:12]}"
    if wanted:
        dirname += "-paths-" + hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:8]
    dest = cache / "src" / dirname
    marker = dest.with_name(dirname + ".checkout.json")
    with exclusive_lock(cache / "locks" / f"{dirname}.lock", wait=True):
        record = _reusable(git, source, dest, marker, wanted)
        if record is None:
            record = _materialise(git, source, cache, dest, fetch_url, wanted)
            atomic_write_text(marker, json.dumps(record, indent=2, sort_keys=True) + "\n")
    origin = over or str(record["origin"])
    subs = record.get("submodules", [])
    return Checkout(
        name=source.name,
        url=source.url,
        commit=str(record["commit"]),
        path=dest,
        override=over,
        origin=origin,
        submodules=tuple((s["path"], s["commit"]) for s in subs),
        submodule_urls=tuple((s["path"], s["url"], s["origin"]) for s in subs),
        paths=wanted,
        manifest_commit=sha,
    )


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------


def _repo_kind(path: Path) -> Literal["worktree", "bare", "plain"]:
    # Only the directory itself counts: a plain folder inside some other clone is still plain.
    if (path / ".git").exists():
        return "worktree"
    if (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir():
        return "bare"
    return "plain"


def _use_in_place(source: Source, path: Path, wanted: tuple[str, ...]) -> Checkout:
    for p in wanted:
        if not (path / p).exists() and not (path / p).is_symlink():
            raise BadInput(f"source {source.name}: --source {path} has no {p}")
    return Checkout(
        name=source.name,
        url=source.url,
        commit="",
        path=path,
        override=str(path),
        origin=str(path),
        paths=wanted,
        manifest_commit=source.commit,
    )
