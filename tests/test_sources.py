"""Checkouts at pinned commits, built against small git repositories made here with the git CLI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.core.manifest import Source
from harness.env.git import mirror_path
from harness.env.source_trees import resolve_submodule_url
from harness.env.sources import Checkout, checkout, parse_source_overrides
from harness.errors import BadInput, Blocked

REMOTE = "https://example.invalid/"


def git(*args: str | Path, cwd: Path | None = None) -> str:
    """Run git for fixture set-up (file:// allowed so submodules can be made locally)."""
    proc = subprocess.run(
        ["git", "-c", "protocol.file.allow=always", *map(str, args)],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return proc.stdout.strip()


def commit(repo: Path, message: str, *files: str) -> str:
    git("-C", repo, "add", "--", *files)
    git("-C", repo, "commit", "--quiet", "-m", message)
    return git("-C", repo, "rev-parse", "HEAD")


def add_gitlink(repo: Path, path: str, sha: str, url: str) -> None:
    """Record `sha` at `path` as a submodule whose URL in .gitmodules is `url`."""
    git("-C", repo, "update-index", "--add", "--cacheinfo", f"160000,{sha},{path}")
    git("-C", repo, "config", "-f", repo / ".gitmodules", f"submodule.{path}.path", path)
    git("-C", repo, "config", "-f", repo / ".gitmodules", f"submodule.{path}.url", url)


def init(path: Path) -> Path:
    path.mkdir(parents=True)
    git("init", "--quiet", "--initial-branch=main", path)
    return path


@dataclass(frozen=True, kw_only=True)
class World:
    """app → lib (submodule) → core (submodule of lib); lib has a newer commit nobody pins."""

    root: Path
    repos: Path
    app: Path
    app_sha: str
    app_new: str
    lib: Path
    lib_old: str
    lib_new: str
    core: Path
    core_sha: str
    app_url: str
    lib_url: str
    gitconfig: Path

    def source(self, *, url: str | None = None, commit: str | None = None, submodules: bool = True) -> Source:
        return Source(name="app", url=url or self.app_url, commit=commit or self.app_sha, submodules=submodules)

    def rewrite(self, base: str | Path, prefix: str) -> None:
        """Add a `url.<base>.insteadOf <prefix>` rule to the test's global git config."""
        with self.gitconfig.open("a") as f:
            f.write(f'[url "{base}"]\n\tinsteadOf = {prefix}\n')


def make_world(tmp_path: Path, *, remote_urls: bool) -> World:
    """Build the three repositories; with `remote_urls` every URL is under https://example.invalid/."""
    repos = tmp_path / "repos"
    core = init(repos / "core.git")
    (core / "core.txt").write_text("core v1\n")
    core_sha = commit(core, "core v1", "core.txt")

    lib = init(repos / "lib.git")
    (lib / "lib.txt").write_text("lib v1\n")
    # lib names core relatively, as many upstreams do: resolved against lib's own URL.
    add_gitlink(lib, "core", core_sha, "../core.git" if remote_urls else str(core))
    lib_old = commit(lib, "lib v1", "lib.txt", ".gitmodules")
    (lib / "lib.txt").write_text("lib v2: must not be checked out\n")
    lib_new = commit(lib, "lib v2", "lib.txt")

    app = init(repos / "app.git")
    (app / "app.txt").write_text("app v1\n")
    (app / "docs").mkdir()
    (app / "docs" / "readme.txt").write_text("read me\n")
    (app / "bin").mkdir()
    (app / "bin" / "run.sh").write_text("#!/bin/sh\necho run\n")
    (app / "bin" / "run.sh").chmod(0o755)
    (app / "big").mkdir()
    (app / "big" / "weights.bin").write_bytes(os.urandom(8192))
    os.symlink("docs/readme.txt", app / "readme")
    lib_url = f"{REMOTE}lib.git" if remote_urls else str(lib)
    add_gitlink(app, "deps/lib", lib_old, lib_url)
    app_sha = commit(app, "app v1", "app.txt", "docs", "bin", "big", "readme", ".gitmodules")
    (app / "app.txt").write_text("app v2: must not be checked out\n")
    app_new = commit(app, "app v2", "app.txt")

    return World(
        root=tmp_path,
        repos=repos,
        app=app,
        app_sha=app_sha,
        app_new=app_new,
        lib=lib,
        lib_old=lib_old,
        lib_new=lib_new,
        core=core,
        core_sha=core_sha,
        app_url=f"{REMOTE}app.git" if remote_urls else str(app),
        lib_url=lib_url,
        gitconfig=tmp_path / "gitconfig",
    )


@pytest.fixture
def gitconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private global git config: no user or system rules leak into the test."""
    cfg = tmp_path / "gitconfig"
    cfg.write_text("[user]\n\tname = Fixture\n\temail = fixture@example.invalid\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return cfg


@pytest.fixture
def world(tmp_path: Path, gitconfig: Path) -> World:
    return make_world(tmp_path, remote_urls=False)


@pytest.fixture
def remote_world(tmp_path: Path, gitconfig: Path) -> World:
    return make_world(tmp_path, remote_urls=True)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def head(path: Path) -> str:
    return git("-C", path, "rev-parse", "HEAD")


# --------------------------------------------------------------------------------------------
# Pinned checkouts and submodules
# --------------------------------------------------------------------------------------------


def test_checkout_is_at_the_pinned_commit_not_the_branch_tip(world: World, cache: Path) -> None:
    co = checkout(world.source(), cache)
    assert co.commit == world.app_sha == head(co.path)
    assert (co.path / "app.txt").read_text() == "app v1\n"
    assert co.path == cache.resolve() / "src" / f"app-{world.app_sha[:12]}"


def test_submodule_is_at_its_recorded_commit_not_the_newer_one(world: World, cache: Path) -> None:
    co = checkout(world.source(), cache)
    lib = co.path / "deps" / "lib"
    assert head(lib) == world.lib_old != world.lib_new
    assert (lib / "lib.txt").read_text() == "lib v1\n"
    assert head(lib / "core") == world.core_sha
    assert co.submodules == (("deps/lib", world.lib_old), ("deps/lib/core", world.core_sha))
    assert git("-C", co.path, "status", "--porcelain") == ""


def test_submodules_are_left_empty_when_the_source_does_not_want_them(world: World, cache: Path) -> None:
    co = checkout(world.source(submodules=False), cache)
    assert co.submodules == ()
    assert not any((co.path / "deps" / "lib").iterdir())


def test_warm_checkout_reuses_the_tree_without_touching_the_remote(world: World, cache: Path) -> None:
    first = checkout(world.source(), cache)
    keep = first.path / "untracked-build-output"
    keep.write_text("kept")
    # The remotes vanish: a warm call that fetched anything would now fail.
    shutil.move(world.repos, world.root / "gone")
    started = time.monotonic()
    again = checkout(world.source(), cache)
    assert time.monotonic() - started < 2.0
    assert again == first
    assert keep.read_text() == "kept"


def test_a_modified_tree_is_checked_out_again(world: World, cache: Path) -> None:
    co = checkout(world.source(), cache)
    (co.path / "app.txt").write_text("edited\n")
    (co.path / "deps" / "lib" / "lib.txt").write_text("edited\n")
    co = checkout(world.source(), cache)
    assert (co.path / "app.txt").read_text() == "app v1\n"
    assert (co.path / "deps" / "lib" / "lib.txt").read_text() == "lib v1\n"


def test_a_tree_without_its_completion_marker_is_redone(world: World, cache: Path) -> None:
    co = checkout(world.source(), cache)
    marker = co.path.with_name(co.path.name + ".checkout.json")
    marker.unlink()
    shutil.rmtree(co.path / "deps" / "lib" / "core")  # as if interrupted half way
    co = checkout(world.source(), cache)
    assert marker.is_file()
    assert head(co.path / "deps" / "lib" / "core") == world.core_sha


def test_an_interrupted_temporary_tree_is_cleaned_up(world: World, cache: Path) -> None:
    stale = cache / "src" / f".app-{world.app_sha[:12]}.tmp-999999"
    stale.mkdir(parents=True)
    (stale / "half").write_text("")
    checkout(world.source(), cache)
    assert not stale.exists()


def test_a_missing_pinned_commit_is_bad_input_in_one_line(world: World, cache: Path) -> None:
    wrong = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(BadInput) as e:
        checkout(world.source(commit=wrong), cache)
    line = e.value.one_line()
    assert "\n" not in line
    assert line == (f"error: source app: commit {wrong} not found in {world.app}; check kpis.toml or the mirror")


def test_a_short_commit_is_refused_before_any_git_call(world: World, cache: Path) -> None:
    with pytest.raises(BadInput, match="full 40-hex"):
        checkout(world.source(commit=world.app_sha[:12]), cache)
    assert not cache.exists()


def test_a_missing_submodule_commit_names_path_sha_url_and_the_fix(remote_world: World, cache: Path) -> None:
    w = remote_world
    # A "mirror" of lib that has a different history: the recorded commit is not in it.
    other = init(w.root / "other-lib")
    (other / "x").write_text("x\n")
    commit(other, "unrelated", "x")
    w.rewrite(w.repos / "app.git", f"{REMOTE}app.git")
    w.rewrite(other, f"{REMOTE}lib.git")
    with pytest.raises(BadInput) as e:
        checkout(w.source(), cache)
    line = e.value.one_line()
    assert "\n" not in line
    assert f"source app: submodule deps/lib commit {w.lib_old} not found in {REMOTE}lib.git" in line
    assert f"git config --global url.<mirror>.insteadOf {REMOTE}lib.git" in line
    # Nothing half-made is left where a later call would look.
    assert not (cache / "src" / f"app-{w.app_sha[:12]}").exists()


# --------------------------------------------------------------------------------------------
# URL rewriting and unreachable remotes
# --------------------------------------------------------------------------------------------


def test_insteadof_rewrites_the_manifest_url_and_every_submodule_url(remote_world: World, cache: Path) -> None:
    w = remote_world
    w.rewrite(f"{w.repos}/", REMOTE)  # one prefix rule for all three repositories
    co = checkout(w.source(), cache)
    assert co.url == f"{REMOTE}app.git"
    assert co.origin == f"{w.repos}/app.git"
    assert head(co.path / "deps" / "lib") == w.lib_old
    assert head(co.path / "deps" / "lib" / "core") == w.core_sha
    assert co.submodule_urls == (
        ("deps/lib", f"{REMOTE}lib.git", f"{w.repos}/lib.git"),
        ("deps/lib/core", f"{REMOTE}core.git", f"{w.repos}/core.git"),
    )
    # The work tree keeps the manifest's URLs, not the mirror's.
    assert git("-C", co.path, "config", "remote.origin.url") == f"{REMOTE}app.git"


def test_an_unreachable_url_is_blocked_with_the_override_and_insteadof_fixes(remote_world: World, cache: Path) -> None:
    with pytest.raises(Blocked) as e:
        checkout(remote_world.source(), cache)
    line = e.value.one_line()
    assert line.startswith(f"BLOCKED: source app: cannot fetch {REMOTE}app.git: ")
    assert "Could not resolve host" in line
    assert "--source app=PATH" in line
    assert f"git config --global url.<mirror>.insteadOf {REMOTE}app.git" in line


def test_an_unreachable_submodule_url_is_blocked_naming_the_submodule(remote_world: World, cache: Path) -> None:
    w = remote_world
    w.rewrite(w.repos / "app.git", f"{REMOTE}app.git")
    with pytest.raises(Blocked, match=re.escape(f"submodule deps/lib: cannot fetch {REMOTE}lib")):
        checkout(w.source(), cache)


def test_git_runs_without_prompts_and_ignores_an_inherited_git_dir(
    world: World, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import harness.env.git as git_runner

    seen: list[dict[str, str]] = []
    real_run = subprocess.run

    def spy(*args: object, **kwargs: object) -> object:
        env = kwargs.get("env")
        assert isinstance(env, dict)
        seen.append(env)
        return real_run(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "1")
    monkeypatch.setenv("GIT_DIR", str(world.root / "not-a-repo"))  # as inside a git hook
    monkeypatch.setattr(git_runner.subprocess, "run", spy)
    co = checkout(world.source(), cache)
    assert co.commit == world.app_sha
    assert seen and all(e["GIT_TERMINAL_PROMPT"] == "0" and "GIT_DIR" not in e for e in seen)


# --------------------------------------------------------------------------------------------
# --source NAME=PATH
# --------------------------------------------------------------------------------------------


def test_override_with_a_local_clone_checks_out_the_pin_from_it(world: World, cache: Path) -> None:
    clone = world.root / "my-clone"
    git("clone", "--quiet", world.app, clone)
    src = world.source(url=f"{REMOTE}app.git")  # unreachable: only the clone can serve it
    co = checkout(src, cache, override=clone)
    assert co.commit == world.app_sha == head(co.path)
    assert co.override == str(clone) == co.origin
    assert head(co.path / "deps" / "lib") == world.lib_old  # submodules still via their URLs
    prov = co.to_provenance()
    assert prov["override"] == str(clone)
    assert prov["commit"] == world.app_sha
    assert prov["pinned"] is True


def test_override_with_a_bare_mirror(world: World, cache: Path) -> None:
    bare = world.root / "mirror.git"
    git("clone", "--quiet", "--mirror", world.app, bare)
    co = checkout(world.source(url=f"{REMOTE}app.git"), cache, override=bare)
    assert co.commit == head(co.path) == world.app_sha
    assert co.origin == str(bare)


def test_override_with_paths_extracts_from_the_override(world: World, cache: Path) -> None:
    bare = world.root / "mirror.git"
    git("clone", "--quiet", "--bare", world.app, bare)
    co = checkout(world.source(url=f"{REMOTE}app.git"), cache, override=bare, paths=("docs",))
    assert (co.path / "docs" / "readme.txt").read_text() == "read me\n"
    assert (co.commit, co.origin, co.override) == (world.app_sha, str(bare), str(bare))


def test_override_with_a_plain_directory_is_used_in_place_and_marked_unpinned(world: World, cache: Path) -> None:
    plain = world.root / "plain"
    plain.mkdir()
    (plain / "app.txt").write_text("local edit\n")
    co = checkout(world.source(), cache, override=plain)
    assert co.path == plain
    assert co.commit == ""
    prov = co.to_provenance()
    assert prov["pinned"] is False
    assert prov["manifest_commit"] == world.app_sha
    assert prov["override"] == str(plain)
    assert not cache.exists()


def test_override_with_a_clone_that_lacks_the_commit_is_bad_input(world: World, cache: Path) -> None:
    stranger = init(world.root / "stranger")
    (stranger / "s").write_text("s\n")
    commit(stranger, "unrelated", "s")
    with pytest.raises(BadInput, match=f"git repository without commit {world.app_sha}"):
        checkout(world.source(), cache, override=stranger)


def test_override_reuse_still_checks_the_override_has_the_commit(world: World, cache: Path) -> None:
    checkout(world.source(), cache)
    stranger = init(world.root / "stranger")
    (stranger / "s").write_text("s\n")
    commit(stranger, "unrelated", "s")
    with pytest.raises(BadInput):
        checkout(world.source(), cache, override=stranger)


def test_parse_source_overrides_accepts_name_equals_path(tmp_path: Path) -> None:
    (tmp_path / "iotjs").mkdir()
    got = parse_source_overrides([f"iotjs={tmp_path / 'iotjs'}"])
    assert got == {"iotjs": (tmp_path / "iotjs").resolve()}


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ("iotjs", "expected NAME=PATH"),
        ("=/tmp", "expected NAME=PATH"),
        ("iotjs=", "expected NAME=PATH"),
        ("bad name=/tmp", "is not a source name"),
        ("iotjs=/no/such/dir", "no such file or directory"),
    ],
)
def test_parse_source_overrides_rejects_bad_items(item: str, problem: str) -> None:
    with pytest.raises(BadInput, match=problem):
        parse_source_overrides([item])


def test_parse_source_overrides_rejects_a_file_and_a_repeated_name(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("")
    with pytest.raises(BadInput, match="not a directory"):
        parse_source_overrides([f"x={f}"])
    with pytest.raises(BadInput, match="given twice"):
        parse_source_overrides([f"x={tmp_path}", f"x={tmp_path}"])


# --------------------------------------------------------------------------------------------
# Partial extraction (`paths`)
# --------------------------------------------------------------------------------------------


def test_paths_extracts_only_those_paths_of_the_pinned_tree(world: World, cache: Path) -> None:
    co = checkout(world.source(), cache, paths=("docs", "bin/run.sh", "readme"))
    files = sorted(str(p.relative_to(co.path)) for p in co.path.rglob("*"))
    assert files == ["bin", "bin/run.sh", "docs", "docs/readme.txt", "readme"]
    assert os.access(co.path / "bin" / "run.sh", os.X_OK)
    assert not os.access(co.path / "docs" / "readme.txt", os.X_OK)
    assert os.readlink(co.path / "readme") == "docs/readme.txt"
    assert co.commit == world.app_sha
    assert co.paths == ("bin/run.sh", "docs", "readme")
    assert co.submodules == ()


def test_paths_checkout_is_reused_warm_and_redone_when_a_file_changes(world: World, cache: Path) -> None:
    co = checkout(world.source(), cache, paths=("docs",))
    shutil.move(world.repos, world.root / "gone")
    assert checkout(world.source(), cache, paths=("docs/",)) == co
    (co.path / "docs" / "readme.txt").write_text("edited\n")
    shutil.move(world.root / "gone", world.repos)
    co = checkout(world.source(), cache, paths=("docs",))
    assert (co.path / "docs" / "readme.txt").read_text() == "read me\n"


def test_paths_that_the_commit_lacks_are_bad_input(world: World, cache: Path) -> None:
    with pytest.raises(BadInput, match=f"no/such is not in commit {world.app_sha}"):
        checkout(world.source(), cache, paths=("docs", "no/such"))


@pytest.mark.parametrize("bad", ["/etc", "../up", "a/../../b", ".git/config", "."])
def test_paths_must_stay_inside_the_repository(world: World, cache: Path, bad: str) -> None:
    with pytest.raises(BadInput, match="relative to the repository root"):
        checkout(world.source(), cache, paths=(bad,))


def test_paths_work_from_a_mirror_that_lacks_large_blobs_elsewhere(world: World, cache: Path) -> None:
    # Like the upstream mirrors: made with a size filter, then cut loose from its origin, so the
    # large blob is simply absent.
    thin = world.root / "thin.git"
    git(
        "clone",
        "--quiet",
        "--bare",
        "--no-local",
        "--filter=blob:limit=4k",
        "--upload-pack=git -c uploadpack.allowFilter=true upload-pack",
        f"file://{world.app}",
        thin,
    )
    git("-C", thin, "config", "--remove-section", "remote.origin")
    src = world.source(url=f"{REMOTE}app.git", submodules=False)
    world.rewrite(thin, f"{REMOTE}app.git")
    co = checkout(src, cache, paths=("docs", "bin"))
    assert (co.path / "docs" / "readme.txt").read_text() == "read me\n"
    assert co.origin == str(thin)
    with pytest.raises(Blocked, match=re.escape("lacks the content of big/weights.bin")):
        checkout(src, cache, paths=("big",))
    with pytest.raises(Blocked, match=r"cannot serve commit [0-9a-f]{12} whole"):
        checkout(src, cache)


# --------------------------------------------------------------------------------------------
# Provenance, logs, helpers
# --------------------------------------------------------------------------------------------


def test_provenance_records_urls_origins_and_every_submodule(remote_world: World, cache: Path) -> None:
    w = remote_world
    w.rewrite(f"{w.repos}/", REMOTE)
    prov = checkout(w.source(), cache).to_provenance()
    assert prov == {
        "name": "app",
        "url": f"{REMOTE}app.git",
        "commit": w.app_sha,
        "pinned": True,
        "manifest_commit": w.app_sha,
        "override": "",
        "origin": f"{w.repos}/app.git",
        "paths": [],
        "submodules": [
            {"path": "deps/lib", "commit": w.lib_old, "url": f"{REMOTE}lib.git", "origin": f"{w.repos}/lib.git"},
            {
                "path": "deps/lib/core",
                "commit": w.core_sha,
                "url": f"{REMOTE}core.git",
                "origin": f"{w.repos}/core.git",
            },
        ],
    }


def test_every_git_command_is_logged(world: World, cache: Path) -> None:
    log = cache / "logs" / "source.log"
    checkout(world.source(), cache, log=log)
    text = log.read_text()
    assert "$ git -c protocol.file.allow=always " in text
    assert f"fetch --quiet --no-tags origin +{world.app_sha}:refs/pins/{world.app_sha}" in text
    assert "[exit 0," in text


def test_mirrors_are_kept_per_url(world: World, cache: Path) -> None:
    checkout(world.source(), cache)
    mirror = mirror_path(cache.resolve(), str(world.app))
    assert git("-C", mirror, "rev-parse", f"refs/pins/{world.app_sha}") == world.app_sha
    assert mirror_path(cache, "https://x/a.git") != mirror_path(cache, "https://y/a.git")
    assert mirror_path(cache, "https://x/a.git").name.startswith("a-")


@pytest.mark.parametrize(
    ("url", "parent", "expected"),
    [
        ("../core.git", "https://h/org/lib.git", "https://h/org/core.git"),
        ("./sub.git", "https://h/org/lib.git/", "https://h/org/lib.git/sub.git"),
        ("../../x/y.git", "https://h/org/lib.git", "https://h/x/y.git"),
        ("../y.git", "git@h:org/lib.git", "git@h:org/y.git"),
        ("../y.git", "h:lib.git", "h:y.git"),
        ("https://h/abs.git", "https://h/org/lib.git", "https://h/abs.git"),
    ],
)
def test_relative_submodule_urls_resolve_against_the_parent(url: str, parent: str, expected: str) -> None:
    assert resolve_submodule_url(url, parent) == expected


def test_checkout_is_a_frozen_record() -> None:
    co = Checkout(name="a", url="u", commit="c" * 40, path=Path("/x"))
    with pytest.raises(AttributeError):
        co.commit = ""  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# The real IoT.js pin, from the local upstream mirrors (never part of the repository)
# --------------------------------------------------------------------------------------------

MIRRORS = Path("/work/.mirror")
IOTJS_MIRRORS = {
    "https://github.com/jerryscript-project/iotjs.git": "jerryscript-project+iotjs",
    "https://github.com/jerryscript-project/jerryscript.git": "jerryscript-project+jerryscript",
    "https://github.com/Samsung/http-parser.git": "Samsung+http-parser",
    # The pinned libtuv commit lives in the SKKU-ESLAB fork, not in Samsung/libtuv.
    "https://github.com/Samsung/libtuv.git": "SKKU-ESLAB+libtuv",
    "https://github.com/ARMmbed/mbedtls.git": "ARMmbed+mbedtls",
}


@pytest.mark.skipif(
    not all((MIRRORS / m / "repo").is_dir() for m in IOTJS_MIRRORS.values()),
    reason="needs local mirrors of IoT.js and its 4 submodules under /work/.mirror",
)
def test_real_iotjs_pin_checks_out_from_local_mirrors(tmp_path: Path, gitconfig: Path) -> None:
    from harness.core.manifest import load_manifest

    manifest = load_manifest(Path(__file__).resolve().parent.parent / "kpis.toml")
    src = manifest.sources["iotjs"]
    with gitconfig.open("a") as f:
        for url, mirror in IOTJS_MIRRORS.items():
            f.write(f'[url "{MIRRORS / mirror / "repo"}"]\n\tinsteadOf = {url}\n')
    co = checkout(src, tmp_path / "cache")
    assert head(co.path) == src.commit == co.commit
    expected = {
        "deps/jerry": "8ba0d1b6ee5a065a42f3b306771ad8e3c0d819bc",
        "deps/http-parser": "f8f84b34db144ce54682333b360cbca3259b9536",
        "deps/libtuv": "8b169052d6e658c6e8701d385b456cc6c7de876c",
        "deps/mbedtls": "8be0e6db41b4a085e90cb03983f99d3a5158d450",
    }
    assert dict(co.submodules) == expected
    for path, sha in expected.items():
        assert head(co.path / path) == sha
    assert dict((p, o) for p, _, o in co.submodule_urls)["deps/libtuv"] == str(MIRRORS / "SKKU-ESLAB+libtuv" / "repo")
    started = time.monotonic()
    assert checkout(src, tmp_path / "cache") == co
    assert time.monotonic() - started < 3.0
