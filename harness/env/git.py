"""Running git for the source checkouts, and the bare mirror per URL that every checkout is made from.

No checkout reaches the network unless a commit is missing from its mirror; errors name the
URL, the commit and the fix (a local mirror through --source or git's insteadOf)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from harness.core.fsio import exclusive_lock
from harness.core.manifest import Source
from harness.errors import BadInput, Blocked, StepFailed

GIT_TIMEOUT_S: Final = 3600.0
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
