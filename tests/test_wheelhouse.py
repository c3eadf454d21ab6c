"""The host fills an image's wheelhouse: a tiny pinned set of real wheels through the host's pip,
the cache key, reuse, pip's real failure causes, and the PyTorch build choice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.env import wheelhouse as wh
from harness.errors import BadInput, Blocked
from harness.options import EnvSettings
from harness.parsers.pip import classify_pip_error

FIX = Path(__file__).parent / "fixtures" / "pip"
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("name", "kind", "words"),
    [
        ("cert", "certificate", "certificate not trusted (self-signed certificate in certificate chain"),
        ("dns", "dns", "index host does not resolve (Name or service not known"),
        ("refused", "refused", "connection refused (Connection refused"),
        ("nomatch", "no such version", "no matching wheel for nosuchpkg-ant-kpi==0.0.1"),
        ("cpu-torchvision", "constraint", "a pip constraint excludes the pin (torchvision<=0.29.1"),
    ],
)
def test_pip_failures_captured_from_real_runs_are_named_by_their_cause(name: str, kind: str, words: str) -> None:
    cause = classify_pip_error((FIX / f"{name}.captured.txt").read_text())
    assert cause.kind == kind
    assert cause.text.startswith(words)
    assert cause.fix


def test_every_manylinux_tag_from_2_17_to_the_images_glibc_is_asked_for() -> None:
    tags = wh.platform_tags()
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in tags
    assert {"manylinux_2_25_x86_64", "manylinux_2_18_x86_64", "manylinux2014_x86_64"} <= set(tags)


def test_the_wheel_sets_name_files_the_images_have() -> None:
    for image, files in wh.WHEEL_SETS.items():
        for torch in ("cuda", "cpu"):
            ws = wh.wheel_set(image, ROOT / "containers" / image, torch_build=torch)
            assert [n for n, _ in ws.files] == [n.format(torch=torch) for n, _ in files]
    with pytest.raises(BadInput, match="has no wheelhouse"):
        wh.wheel_set("ant-build", ROOT / "containers" / "ant-build")


def _context(tmp_path: Path, pins: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "requirements.txt").write_text(pins)
    return ctx


def test_the_host_downloads_exactly_the_pinned_wheels_and_reuses_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(wh.WHEEL_SETS, "tiny", (("requirements.txt", True),))
    ctx = _context(tmp_path, "six==1.17.0\n")
    ws = wh.wheel_set("tiny", ctx)
    first = wh.fill(ws, tmp_path / "cache", log=tmp_path / "pip.log")
    assert not first.reused and first.wheels == 1
    (whl,) = first.path.glob("*.whl")
    assert whl.name.startswith("six-1.17.0-")
    doc = json.loads((first.path / wh.COMPLETE).read_text())
    assert doc["key"] == ws.key() and list(doc["wheels"]) == [whl.name] and doc["python"] == "3.11"
    again = wh.fill(ws, tmp_path / "cache")
    assert again.reused and again.path == first.path
    # Another pin is another key, so another folder: a wheelhouse never serves requirements it was not made for.
    before = ws.key()
    (ctx / "requirements.txt").write_text("six==1.16.0\n")
    assert wh.wheel_set("tiny", ctx).key() != before


def test_a_package_built_in_the_image_comes_as_its_source_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(wh.WHEEL_SETS, "tiny", (("requirements.txt", True), (wh.SOURCE_REQUIREMENTS, False)))
    ctx = _context(tmp_path, "six==1.17.0\n")
    (ctx / wh.SOURCE_REQUIREMENTS).write_text("# built in the image\nsix==1.17.0  # comment\n")
    ws = wh.wheel_set("tiny", ctx)
    argv = wh.download_argv(ws, wh.SOURCE_REQUIREMENTS, False, tmp_path / "d")
    assert "--no-binary=six" in argv and "--no-deps" in argv and "--only-binary=:all:" not in argv
    filled = wh.fill(ws, tmp_path / "cache", log=tmp_path / "pip.log")
    doc = json.loads((filled.path / wh.COMPLETE).read_text())
    assert list(doc["sources"]) == ["six-1.17.0.tar.gz"] and filled.wheels == 1
    assert next(iter(doc["wheels"])).startswith("six-1.17.0-")


def test_a_pin_the_host_cannot_get_is_blocked_with_pips_cause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(wh.WHEEL_SETS, "tiny", (("requirements.txt", True),))
    ws = wh.wheel_set("tiny", _context(tmp_path, "nosuchpkg-ant-kpi==0.0.1\n"))
    with pytest.raises(Blocked) as e:
        wh.fill(ws, tmp_path / "cache", log=tmp_path / "pip.log")
    assert "no matching wheel for nosuchpkg-ant-kpi==0.0.1" in e.value.what
    assert "pip.log" in e.value.fix
    assert not (tmp_path / "cache" / f"tiny-{ws.key()[:16]}" / wh.COMPLETE).exists()


def test_host_wheelhouse_builds_offline_and_falls_back_from_an_unobtainable_cpu_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(wh.WHEEL_SETS, "tiny", (("requirements.txt", True), ("requirements-torch-{torch}.txt", True)))
    ctx = _context(tmp_path, "six==1.17.0\n")
    (ctx / "requirements-torch-cpu.txt").write_text("nosuchpkg-ant-kpi==0.0.1+cpu\n")
    (ctx / "requirements-torch-cuda.txt").write_text("")
    monkeypatch.setattr(wh, "gpu_here", lambda: False)
    got = wh.host_wheelhouse("tiny", ctx, EnvSettings(), tmp_path / "cache", log=tmp_path / "pip.log")
    assert got is not None and got.torch_build == "cuda"
    assert got.env.build_args["WHEELHOUSE_ONLY"] == "yes" and got.env.build_args["TORCH_BUILD"] == "cuda"
    assert got.env.wheelhouse == str(got.filled.path)
    assert got.notes[0].startswith("PyTorch CPU build not obtainable by the host's pip")
    # Given a wheelhouse, or told not to, the harness leaves the image's own pip alone.
    assert wh.host_wheelhouse("tiny", ctx, EnvSettings(wheelhouse=str(tmp_path)), tmp_path / "c") is None
    assert wh.host_wheelhouse("tiny", ctx, EnvSettings(host_wheelhouse=False), tmp_path / "c") is None


def test_torch_choice_follows_the_engine() -> None:
    assert wh.torch_choices("", remote_engine=False, gpu=False) == ("cpu", "cuda")
    assert wh.torch_choices("", remote_engine=True, gpu=False) == ("cuda",)
    assert wh.torch_choices("", remote_engine=False, gpu=True) == ("cuda",)
    assert wh.torch_choices("cpu", remote_engine=True, gpu=True) == ("cpu",)


def test_images_wheelhouse_command_fills_a_folder_and_says_how_to_build_from_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.cli import main

    out = tmp_path / "wh"
    code = main(["--manifest", str(ROOT / "kpis.toml"), "images", "wheelhouse", "nosuch", "-o", str(out)])
    assert code == 2 and "no image 'nosuch'" in capsys.readouterr().err
    code = main(["--manifest", str(ROOT / "kpis.toml"), "images", "wheelhouse", "ant-build", "-o", str(out)])
    assert code == 2 and "has no wheelhouse" in capsys.readouterr().err


def test_an_unobtainable_torch_pair_fails_before_the_shared_set_is_downloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(wh.WHEEL_SETS, "tiny", (("requirements.txt", True), ("requirements-torch-{torch}.txt", True)))
    ctx = _context(tmp_path, "six==1.17.0\n")
    (ctx / "requirements-torch-cpu.txt").write_text("nosuchpkg-ant-kpi==0.0.1+cpu\n")
    ws = wh.wheel_set("tiny", ctx, torch_build="cpu")
    with pytest.raises(Blocked):
        wh.fill(ws, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*/*.whl"))  # six was never fetched for a set that cannot build


def test_a_complete_cached_wheelhouse_gives_the_settings_an_image_was_built_with(tmp_path: Path) -> None:
    """What doctor uses to find an image `ant-kpi images build` made: no download, only the cache."""
    root = Path(__file__).resolve().parent.parent
    context = root / "containers" / "tvm-npu"
    env = EnvSettings(host_wheelhouse=True)
    assert wh.cached_host_env("tvm-npu", context, env, tmp_path) is None  # nothing filled yet
    ws = wh.wheel_set("tvm-npu", context)
    dest = tmp_path / f"tvm-npu-{ws.key()[:16]}"
    dest.mkdir()
    (dest / wh.COMPLETE).write_text(json.dumps({"key": "another"}))
    assert wh.cached_host_env("tvm-npu", context, env, tmp_path) is None  # a stale or foreign fill
    (dest / wh.COMPLETE).write_text(json.dumps({"key": ws.key()}))
    got = wh.cached_host_env("tvm-npu", context, env, tmp_path)
    assert got is not None and got.wheelhouse == str(dest) and got.build_args["WHEELHOUSE_ONLY"] == "yes"
    assert wh.cached_host_env("tvm-npu", context, EnvSettings(host_wheelhouse=False), tmp_path) is None
