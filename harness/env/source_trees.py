"""Work trees of pinned sources: a full tree, its submodules at their recorded commits, or only some
paths of a tree (their blobs fetched and checked one by one)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Final

from harness.core.manifest import Source
from harness.env.git import (
    _MAX_SUBMODULE_DEPTH,
    Git,
    _classify,
    _fetch_commit,
    _fetch_options,
    _insteadof_hint,
    _last_line,
    _Mirror,
    _mirror_locked,
    _source_error,
    _submodule_error,
    _Unavailable,
    _via,
)
from harness.errors import BadInput, Blocked, StepFailed

MARKER_VERSION: Final = 1

# --------------------------------------------------------------------------------------------
# Work trees
# --------------------------------------------------------------------------------------------


def _normalise_paths(name: str, paths: Sequence[str]) -> tuple[str, ...]:
    out: set[str] = set()
    for raw in paths:
        p = PurePosixPath(raw.strip())
        parts = [x for x in p.parts if x not in ("", ".")]
        if p.is_absolute() or not parts or ".." in parts or ".git" in parts:
            raise BadInput(f"source {name}: path {raw!r} must be relative to the repository root")
        out.add("/".join(parts))
    return tuple(sorted(out))


def _reusable(git: Git, source: Source, dest: Path, marker: Path, wanted: tuple[str, ...]) -> dict[str, Any] | None:
    """The marker's record when the tree on disk is complete and unmodified, else None."""
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if (
        not isinstance(record, dict)
        or not dest.is_dir()
        or (
            record.get("version") != MARKER_VERSION
            or record.get("commit") != source.commit
            or record.get("paths") != list(wanted)
            or record.get("submodules_enabled") != bool(source.submodules and not wanted)
        )
    ):
        return None
    if wanted:
        return record if _files_intact(dest, record.get("files", [])) else None
    head = git.run("-C", dest, "rev-parse", "HEAD", check=False)
    if head.returncode != 0 or head.stdout.decode().strip() != source.commit:
        return None
    for sub in record.get("submodules", []):
        # `git status` does not report a submodule that was never populated.
        if not (dest / sub["path"] / ".git").exists():
            return None
    status = git.run(
        "-C", dest, "status", "--porcelain", "--untracked-files=no", "--ignore-submodules=untracked", check=False
    )
    if status.returncode != 0 or status.stdout.strip():
        return None
    return record


def _discard(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _materialise(
    git: Git, source: Source, cache: Path, dest: Path, fetch_url: str, wanted: tuple[str, ...]
) -> dict[str, Any]:
    """Build the tree in a temporary directory and move it into place only when complete."""
    for stale in dest.parent.glob(f".{dest.name}.tmp-*"):
        _discard(stale)  # left by an interrupted run; the lock says no one else is writing it
    _discard(dest.with_name(dest.name + ".checkout.json"))
    _discard(dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        if wanted:
            record = _extract_paths(git, source, cache, tmp, fetch_url, wanted)
        else:
            record = _full_tree(git, source, cache, tmp, fetch_url)
        tmp.rename(dest)
    except BaseException:
        _discard(tmp)
        raise
    record.update(
        version=MARKER_VERSION,
        name=source.name,
        url=source.url,
        commit=source.commit,
        paths=list(wanted),
        submodules_enabled=bool(source.submodules and not wanted),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    return record


def _full_tree(git: Git, source: Source, cache: Path, tmp: Path, fetch_url: str) -> dict[str, Any]:
    sha = source.commit
    with _mirror_locked(git, cache, fetch_url, partial=False) as mirror:
        try:
            _fetch_commit(git, mirror, sha)
        except _Unavailable as e:
            raise _source_error(source, fetch_url, sha, e) from None
        origin = mirror.origin(git)
        _clone_at(git, mirror.path, tmp, source.url, sha)
    subs: list[dict[str, str]] = []
    if source.submodules:
        _submodules(git, source, cache, tmp, sha, source.url, "", subs, depth=0)
    return {"origin": origin, "submodules": subs}


def _clone_at(git: Git, mirror: Path, dest: Path, url: str, sha: str) -> None:
    """A self-contained clone (objects hard-linked from the mirror) with `sha` checked out."""
    git.run("clone", "--quiet", "--local", "--no-checkout", mirror, dest)
    git.run("-C", dest, "remote", "set-url", "origin", url)
    git.run("-C", dest, "-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", sha)
    head = git.out("-C", dest, "rev-parse", "HEAD")
    if head != sha:
        raise StepFailed(f"checkout of {url} at {sha} left HEAD at {head}", git.log)


# --------------------------------------------------------------------------------------------
# Submodules
# --------------------------------------------------------------------------------------------


_Entry = tuple[str, str, str, str]  # (mode, type, oid, path) as ls-tree prints them


def _ls_tree(git: Git, repo: Path, sha: str, paths: Sequence[str] = ()) -> list[_Entry]:
    """(mode, type, oid, path) of every entry under `paths` (all when empty), recursively."""
    argv: list[str | Path] = ["--literal-pathspecs", "-C", repo, "ls-tree", "-r", "-z", "--full-tree", sha]
    if paths:
        argv += ["--", *paths]
    raw = git.run(*argv, log_stdout=False).stdout.decode("utf-8", errors="surrogateescape")
    entries = []
    for item in raw.split("\0"):
        if not item:
            continue
        meta, _, path = item.partition("\t")
        mode, kind, oid = meta.split(" ")
        entries.append((mode, kind, oid, path))
    return entries


def _gitmodules(git: Git, source: Source, repo: Path, sha: str) -> dict[str, tuple[str, str]]:
    """{path: (name, url)} from .gitmodules as committed at `sha`."""
    proc = git.run("-C", repo, "config", "--blob", f"{sha}:.gitmodules", "--list", "-z", check=False)
    if proc.returncode != 0:
        return {}
    keys: dict[str, dict[str, str]] = {}
    for item in proc.stdout.decode(errors="replace").split("\0"):
        key, _, value = item.partition("\n")
        if not key.startswith("submodule.") or "." not in key[len("submodule.") :]:
            continue
        name, _, var = key[len("submodule.") :].rpartition(".")
        keys.setdefault(name, {})[var] = value
    out = {}
    for name, kv in keys.items():
        if "path" in kv:
            out[kv["path"].strip("/")] = (name, kv.get("url", ""))
    return out


def resolve_submodule_url(url: str, parent_url: str) -> str:
    """A .gitmodules URL, with `./` and `../` taken relative to the parent repository's URL."""
    if not url.startswith(("./", "../")):
        return url
    base, rest, joiner = parent_url.rstrip("/"), url, "/"
    while rest.startswith(("./", "../")):
        if rest.startswith("./"):
            rest = rest[2:]
            continue
        rest = rest[3:]
        cut = max(base.rfind("/"), base.rfind(":"))
        if cut > 0:
            # `host:repo.git` + `../x.git` is `host:x.git`: keep the separator that was cut.
            joiner = base[cut] if base[cut] == ":" and "://" not in base else "/"
            base = base[:cut]
    return f"{base}{joiner}{rest}"


def _submodules(
    git: Git,
    source: Source,
    cache: Path,
    repo: Path,
    sha: str,
    repo_url: str,
    prefix: str,
    out: list[dict[str, str]],
    *,
    depth: int,
) -> None:
    """Check out every gitlink of `repo` at its recorded commit, recursively."""
    links = [(p, oid) for mode, _, oid, p in _ls_tree(git, repo, sha) if mode == "160000"]
    if not links:
        return
    if depth >= _MAX_SUBMODULE_DEPTH:
        raise BadInput(
            f"source {source.name}: submodules nested deeper than {_MAX_SUBMODULE_DEPTH} levels under {prefix or '/'}"
        )
    modules = _gitmodules(git, source, repo, sha)
    for path, oid in links:
        full = prefix + path
        if path not in modules or not modules[path][1]:
            raise BadInput(
                f"source {source.name}: submodule {full} ({oid}) has no URL in .gitmodules at its parent's commit"
            )
        name, raw_url = modules[path]
        url = resolve_submodule_url(raw_url, repo_url)
        target = repo / path
        with _mirror_locked(git, cache, url, partial=False) as mirror:
            try:
                _fetch_commit(git, mirror, oid)
            except _Unavailable as e:
                raise _submodule_error(source, full, url, oid, e) from None
            origin = mirror.origin(git)
            if target.exists():
                target.rmdir()  # checkout leaves an empty directory for a gitlink; clone wants none
            _clone_at(git, mirror.path, target, url, oid)
        # Recorded as initialised, as `git submodule update --init` would, for tools that ask.
        git.run("-C", repo, "config", f"submodule.{name}.url", url)
        git.run("-C", repo, "config", f"submodule.{name}.active", "true")
        out.append({"path": full, "commit": oid, "url": url, "origin": origin})
        _submodules(git, source, cache, target, oid, url, full + "/", out, depth=depth + 1)


# --------------------------------------------------------------------------------------------
# Partial extraction
# --------------------------------------------------------------------------------------------


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _files_intact(dest: Path, files: Sequence[Mapping[str, str]]) -> bool:
    """Every extracted file still has the content and kind git recorded."""
    for f in files:
        p = dest / f["path"]
        mode = f["mode"]
        try:
            if mode == "120000":
                if not p.is_symlink() or _blob_id(os.fsencode(os.readlink(p))) != f["oid"]:
                    return False
            elif mode == "160000":
                if not p.is_dir():
                    return False
            else:
                if p.is_symlink() or not p.is_file() or _blob_id(p.read_bytes()) != f["oid"]:
                    return False
                if (mode == "100755") != bool(p.stat().st_mode & 0o100):
                    return False
        except OSError:
            return False
    return True


def _extract_paths(
    git: Git, source: Source, cache: Path, tmp: Path, fetch_url: str, wanted: tuple[str, ...]
) -> dict[str, Any]:
    """Write only `wanted` of the pinned tree, fetching just their blobs."""
    sha = source.commit
    with _mirror_locked(git, cache, fetch_url, partial=True) as mirror:
        try:
            _fetch_commit(git, mirror, sha)
        except _Unavailable as e:
            raise _source_error(source, fetch_url, sha, e) from None
        origin = mirror.origin(git)
        entries = _ls_tree(git, mirror.path, sha, wanted)
        for p in wanted:
            if not any(e[3] == p or e[3].startswith(p + "/") for e in entries):
                raise BadInput(f"source {source.name}: {p} is not in commit {sha}")
        blobs = [e for e in entries if e[1] == "blob"]
        _fetch_blobs(git, source, mirror, fetch_url, origin, blobs)
        data = _read_blobs(git, mirror.path, [e[2] for e in blobs])
    tmp.mkdir(parents=True)
    files = []
    for mode, kind, oid, path in entries:
        target = tmp / path
        if not target.resolve().is_relative_to(tmp.resolve()):
            raise BadInput(f"source {source.name}: tree entry {path!r} escapes the checkout")
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "commit":
            target.mkdir(exist_ok=True)  # a gitlink: partial extraction does not fill submodules
        elif mode == "120000":
            os.symlink(os.fsdecode(data[oid]), target)
        else:
            target.write_bytes(data[oid])
            target.chmod(0o755 if mode == "100755" else 0o644)
        files.append({"path": path, "mode": mode, "oid": oid})
    return {"origin": origin, "files": files, "submodules": []}


def _fetch_blobs(
    git: Git, source: Source, mirror: _Mirror, fetch_url: str, origin: str, blobs: Sequence[_Entry]
) -> None:
    if not blobs:
        return
    # Wants that are all present locally are satisfied without contacting the remote.
    stdin = "".join(f"{e[2]}\n" for e in blobs).encode()
    proc = git.run(
        "-C",
        mirror.path,
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        *_fetch_options(git, mirror),
        "--stdin",
        "origin",
        stdin=stdin,
        check=False,
    )
    if proc.returncode == 0:
        return
    err = proc.stderr.decode(errors="replace")
    problem = _classify(err)
    if problem == "network":
        e = _Unavailable("network", _last_line(err), origin)
        raise _source_error(source, fetch_url, source.commit, e)
    lacking = [e[3] for e in blobs if e[2] in err] or [e[3] for e in blobs]
    shown = ", ".join(lacking[:3]) + (f" and {len(lacking) - 3} more" if len(lacking) > 3 else "")
    raise Blocked(
        f"source {source.name}: {fetch_url}{_via(fetch_url, origin)} lacks the content "
        f"of {shown} at {source.commit[:12]}",
        f"use a complete mirror ({_insteadof_hint(source.url)}) or --source {source.name}=PATH",
    )


def _read_blobs(git: Git, repo: Path, oids: Sequence[str]) -> dict[str, bytes]:
    if not oids:
        return {}
    unique = list(dict.fromkeys(oids))
    stdin = "".join(f"{o}\n" for o in unique).encode()
    out = git.run("-C", repo, "cat-file", "--batch", stdin=stdin, log_stdout=False).stdout
    data: dict[str, bytes] = {}
    pos = 0
    for oid in unique:
        eol = out.index(b"\n", pos)
        header = out[pos:eol].decode().split()
        if len(header) != 3 or header[0] != oid or header[1] != "blob":
            raise StepFailed(f"git cat-file: object {oid} unreadable ({' '.join(header[1:])})", git.log)
        size = int(header[2])
        data[oid] = out[eol + 1 : eol + 1 + size]
        pos = eol + 1 + size + 1  # the content is followed by a newline
    return data
