"""Host-side checkouts of pinned sources: a bare mirror per URL, one work tree per commit.

Layout under the cache directory:
  git/<repo>-<urlhash>.git           bare mirror of one URL (full history of the pinned commits)
  git/<repo>-<urlhash>.partial.git   the same without blobs, for `paths` extraction
  src/<name>-<sha12>[-paths-<h>]     the work tree (or the extracted paths)
  src/<dir>.checkout.json            completion marker, written last
  locks/                             one lock per work tree and per mirror

Git is always given the manifest URL, so the user's `url.<base>.insteadOf` rules apply.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal

from harness.core.fsio import atomic_write_text, exclusive_lock
from harness.core.manifest import Source
from harness.errors import BadInput, Blocked, StepFailed

MARKER_VERSION: Final = 1
GIT_TIMEOUT_S: Final = 3600.0
_SHA_RE: Final = re.compile(r"^[0-9a-f]{40}$")
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_MAX_SUBMODULE_DEPTH: Final = 8

# A parent git process (a hook, `git rebase -x`) exports these; they would redirect every call.
_GIT_LOCATION_ENV: Final = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_COMMON_DIR",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
)
_MISSING_RE: Final = re.compile(
    r"not our ref|couldn't find remote ref|no such remote ref|unadvertised object|"
    r"not a valid object|bad object",
    re.IGNORECASE,
)
_INCOMPLETE_RE: Final = re.compile(
    r"did not send all necessary objects|corruption on the remote side|pack-objects died|"
    r"missing blob object|unable to read [0-9a-f]{40}",
    re.IGNORECASE,
)
_NETWORK_RE: Final = re.compile(
    r"could not resolve|unable to access|could not read from remote|does not appear to be a git "
    r"repository|connection (refused|timed out|reset)|network is unreachable|repository .* not "
    r"found|authentication failed|timed out",
    re.IGNORECASE,
)

Problem = Literal["missing", "incomplete", "network"]


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
# Running git
# --------------------------------------------------------------------------------------------


class GitFailed(StepFailed):
    """A git command failed in a way no more specific error explains."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str, log: Path | None) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"git {_subcommand(argv)} exited {returncode}: {_last_line(stderr)}", log)


def _subcommand(argv: Sequence[str]) -> str:
    it = iter(argv[1:])
    for a in it:
        if a in ("-c", "-C"):
            next(it, None)  # the option's value
        elif not a.startswith("-"):
            return a
    return ""


@dataclass(frozen=True, kw_only=True)
class Git:
    """Runs git argv lists (never a shell), appending each command and its output to `log`."""

    log: Path | None = None
    timeout_s: float = GIT_TIMEOUT_S

    def run(
        self, *args: str | Path, stdin: bytes | None = None, check: bool = True, log_stdout: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        # file:// mirrors must work for submodules too, which git ≥ 2.38.1 refuses by default.
        argv = ["git", "-c", "protocol.file.allow=always", *(str(a) for a in args)]
        env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_ENV}
        env["GIT_TERMINAL_PROMPT"] = "0"  # a missing credential must fail, not wait for a human
        env["LC_ALL"] = "C"  # stderr is matched against git's English messages
        started = time.monotonic()
        try:
            proc = subprocess.run(argv, input=stdin, capture_output=True, env=env, timeout=self.timeout_s, check=False)
        except FileNotFoundError:
            raise Blocked("git is not installed", "apt-get install git") from None
        except subprocess.TimeoutExpired:
            self._record(argv, b"", b"timed out", -1, time.monotonic() - started, log_stdout)
            raise Blocked(
                f"`{' '.join(argv[3:6])} …` took longer than {self.timeout_s:.0f} s",
                "check the network or use a local mirror (--source NAME=PATH)",
            ) from None
        self._record(argv, proc.stdout, proc.stderr, proc.returncode, time.monotonic() - started, log_stdout)
        if check and proc.returncode != 0:
            raise GitFailed(argv, proc.returncode, proc.stderr.decode(errors="replace"), self.log)
        return proc

    def out(self, *args: str | Path) -> str:
        """stdout of a successful command, stripped."""
        return self.run(*args).stdout.decode(errors="replace").strip()

    def _record(self, argv: list[str], stdout: bytes, stderr: bytes, rc: int, seconds: float, log_stdout: bool) -> None:
        if self.log is None:
            return
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as f:
            f.write(("$ " + " ".join(argv) + "\n").encode())
            if log_stdout and stdout:
                f.write(stdout if stdout.endswith(b"\n") else stdout + b"\n")
            if stderr:
                f.write(stderr if stderr.endswith(b"\n") else stderr + b"\n")
            f.write(f"[exit {rc}, {seconds:.2f} s]\n".encode())


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # git ends with generic advice ("Please make sure you have the correct access rights");
    # the first `fatal:` line names the actual cause.
    fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
    line = (fatal or lines or ["(no message)"])[0]
    return line.removeprefix("fatal: ").removeprefix("error: ")


def _classify(stderr: str) -> Problem:
    if _INCOMPLETE_RE.search(stderr):
        return "incomplete"
    if _MISSING_RE.search(stderr) and not _NETWORK_RE.search(stderr):
        return "missing"
    return "network"


# --------------------------------------------------------------------------------------------
# Mirrors
# --------------------------------------------------------------------------------------------


class _Unavailable(Exception):
    """A commit or blob could not be fetched; the caller words the error for its context."""

    def __init__(self, problem: Problem, detail: str, origin: str) -> None:
        self.problem = problem
        self.detail = detail
        self.origin = origin
        super().__init__(detail)


@dataclass(frozen=True, kw_only=True)
class _Mirror:
    path: Path
    url: str
    partial: bool

    def origin(self, git: Git) -> str:
        """The URL git really fetches from, after insteadOf rewriting."""
        return git.out("-C", self.path, "ls-remote", "--get-url", "origin")


def mirror_path(cache_dir: Path, url: str, *, partial: bool = False) -> Path:
    """Where the bare mirror of `url` lives in the cache."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    tail = url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", tail).strip("-.")[:40] or "repo"
    return cache_dir / "git" / f"{slug}-{digest}{'.partial' if partial else ''}.git"


def _is_local(url: str) -> bool:
    if url.startswith("file://"):
        return True
    if "://" in url:
        return False
    head = url.split("/", 1)[0]
    return ":" not in head  # `host:path` is ssh; anything else is a path


def _open_mirror(git: Git, cache_dir: Path, url: str, *, partial: bool) -> _Mirror:
    path = mirror_path(cache_dir, url, partial=partial)
    if not (path / "HEAD").is_file():
        git.run("init", "--quiet", "--bare", path)
    git.run("-C", path, "config", "remote.origin.url", url)
    return _Mirror(path=path, url=url, partial=partial)


def _has_commit(git: Git, repo: Path, sha: str) -> bool:
    # --missing stops a partial mirror from fetching the object lazily: this check stays offline.
    proc = git.run(
        "-C", repo, "rev-list", "-1", "--no-walk", "--missing=allow-any", f"{sha}^{{commit}}", "--", check=False
    )
    return proc.returncode == 0 and proc.stdout.decode().strip() == sha


def _fetch_options(git: Git, mirror: _Mirror) -> list[str]:
    if not mirror.partial:
        return []
    opts = ["--filter=blob:none"]
    if _is_local(mirror.origin(git)):
        # A plain local repository does not enable filters; its upload-pack runs here, so allow it.
        opts.append("--upload-pack=git -c uploadpack.allowFilter=true upload-pack")
    return opts


def _fetch_commit(git: Git, mirror: _Mirror, sha: str) -> None:
    """Make `sha` (and its history) present in the mirror; raises _Unavailable."""
    pin = f"refs/pins/{sha}"
    if git.out("-C", mirror.path, "for-each-ref", "--format=%(objectname)", pin) == sha:
        return
    opts = _fetch_options(git, mirror)
    first = git.run("-C", mirror.path, "fetch", "--quiet", "--no-tags", *opts, "origin", f"+{sha}:{pin}", check=False)
    if first.returncode == 0 and _has_commit(git, mirror.path, sha):
        return
    err = first.stderr.decode(errors="replace")
    problem = _classify(err)
    if problem == "missing" or first.returncode == 0:
        # Servers that refuse unadvertised commits: take every branch and tag, then look again.
        second = git.run(
            "-C",
            mirror.path,
            "fetch",
            "--quiet",
            "--no-tags",
            *opts,
            "origin",
            "+refs/heads/*:refs/heads/*",
            "+refs/tags/*:refs/tags/*",
            check=False,
        )
        if second.returncode != 0:
            err = second.stderr.decode(errors="replace")
            problem = _classify(err)
            if problem == "missing":
                problem = "network"
        elif _has_commit(git, mirror.path, sha):
            git.run("-C", mirror.path, "update-ref", pin, sha)
            return
    raise _Unavailable(problem, _last_line(err) if problem != "missing" else "", _safe_origin(git, mirror))


def _safe_origin(git: Git, mirror: _Mirror) -> str:
    try:
        return mirror.origin(git)
    except GitFailed:
        return mirror.url


@contextlib.contextmanager
def _mirror_locked(git: Git, cache_dir: Path, url: str, *, partial: bool) -> Iterator[_Mirror]:
    lock = cache_dir / "locks" / (mirror_path(cache_dir, url, partial=partial).name + ".lock")
    with exclusive_lock(lock, wait=True):
        yield _open_mirror(git, cache_dir, url, partial=partial)


# --------------------------------------------------------------------------------------------
# Errors worded for the user
# --------------------------------------------------------------------------------------------


def _insteadof_hint(url: str) -> str:
    return f"git config --global url.<mirror>.insteadOf {url}"


def _via(url: str, origin: str) -> str:
    return f" (via {origin})" if origin and origin != url else ""


def _source_error(source: Source, fetch_url: str, sha: str, e: _Unavailable) -> Exception:
    where = f"{fetch_url}{_via(fetch_url, e.origin)}"
    if e.problem == "missing":
        return BadInput(f"source {source.name}: commit {sha} not found in {where}; check kpis.toml or the mirror")
    if e.problem == "incomplete":
        # The pin is right; the mirror is short of content: a missing component, not bad input.
        return Blocked(
            f"source {source.name}: {where} cannot serve commit {sha[:12]} whole ({e.detail})",
            "use a complete mirror, or extract only the paths needed",
        )
    return Blocked(
        f"source {source.name}: cannot fetch {where}: {e.detail}",
        f"pass --source {source.name}=PATH (a local clone or mirror that has "
        f"{sha[:12]}), or point the URL at a mirror: {_insteadof_hint(source.url)}",
    )


def _submodule_error(source: Source, path: str, url: str, sha: str, e: _Unavailable) -> Exception:
    where = f"{url}{_via(url, e.origin)}"
    hint = f"point {url} at a mirror that has it: {_insteadof_hint(url)}"
    if e.problem == "missing":
        return BadInput(f"source {source.name}: submodule {path} commit {sha} not found in {where}; {hint}")
    if e.problem == "incomplete":
        return Blocked(
            f"source {source.name}: submodule {path}: {where} cannot serve commit {sha[:12]} whole ({e.detail})", hint
        )
    return Blocked(f"source {source.name}: submodule {path}: cannot fetch {where}: {e.detail}", hint)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def parse_source_overrides(items: Sequence[str]) -> dict[str, Path]:
    """`--source NAME=PATH` strings → {name: absolute path}; the path must exist."""
    out: dict[str, Path] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name or not raw:
            raise BadInput(f"--source {item!r}: expected NAME=PATH, e.g. --source iotjs=/srv/iotjs")
        if not _NAME_RE.match(name):
            raise BadInput(f"--source {item!r}: {name!r} is not a source name")
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
