"""The content-addressed artefact store: put, get, lookup by build key, verify."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from harness.core.artefacts import Artefact, ArtefactStore
from harness.core.digest import sha256_file
from harness.errors import BadInput

PROV = {
    "source": "iotjs",
    "source_commit": "02599f35810cfa6ea5495bbc42194ed576b969de",
    "target": "rpi2",
    "argv": ["python3", "tools/build.py"],
}


@pytest.fixture
def store(tmp_path: Path) -> ArtefactStore:
    return ArtefactStore(tmp_path / "artefacts")


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    p = tmp_path / "build" / "iotjs"
    p.parent.mkdir()
    p.write_bytes(b"\x7fELF" + bytes(range(256)) * 64)
    p.chmod(0o755)
    return p


def test_put_stores_a_copy_under_its_sha256(store: ArtefactStore, binary: Path) -> None:
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()
    art = store.put(binary, name="iotjs", kind="binary", provenance=PROV)
    assert art.sha256 == digest
    assert art.path == store.root / "sha256" / digest[:2] / digest / "iotjs"
    assert art.path.read_bytes() == binary.read_bytes()
    assert art.size == binary.stat().st_size
    assert (art.name, art.kind, dict(art.provenance)) == ("iotjs", "binary", PROV)


def test_put_keeps_the_executable_bit_and_stores_read_only(store: ArtefactStore, binary: Path, tmp_path: Path) -> None:
    art = store.put(binary, name="iotjs", kind="binary", provenance={})
    mode = stat.S_IMODE(art.path.stat().st_mode)
    assert mode & 0o111 and not mode & 0o222
    data = tmp_path / "model.tflite"
    data.write_bytes(b"TFL3")
    assert not stat.S_IMODE(store.put(data, name="m.tflite", kind="tflite", provenance={}).path.stat().st_mode) & 0o111


def test_meta_json_describes_the_artefact(store: ArtefactStore, binary: Path) -> None:
    art = store.put(binary, name="iotjs", kind="binary", provenance=PROV)
    meta = json.loads((art.path.parent / "meta.json").read_text())
    assert meta["name"] == "iotjs"
    assert meta["kind"] == "binary"
    assert meta["size"] == art.size
    assert meta["sha256"] == art.sha256
    assert meta["provenance"] == PROV
    assert meta["stored_at"].endswith("+00:00")


def test_get_returns_the_stored_artefact(store: ArtefactStore, binary: Path) -> None:
    art = store.put(binary, name="iotjs", kind="binary", provenance=PROV)
    got = store.get(art.sha256)
    assert got == art


def test_get_of_an_absent_hash_is_bad_input(store: ArtefactStore) -> None:
    with pytest.raises(BadInput, match=r"no artefact 0{64}"):
        store.get("0" * 64)
    with pytest.raises(BadInput, match="not a sha256"):
        store.get("../../etc")


def test_put_is_idempotent(store: ArtefactStore, binary: Path) -> None:
    first = store.put(binary, name="iotjs", kind="binary", provenance=PROV)
    again = store.put(binary, name="iotjs", kind="binary", provenance=PROV)
    assert again == first
    files = sorted(p.name for p in first.path.parent.iterdir())
    assert files == ["iotjs", "meta.json"]
    assert not any((store.root / "tmp").iterdir())


def test_the_same_bytes_under_another_name_share_one_entry(store: ArtefactStore, binary: Path) -> None:
    first = store.put(binary, name="iotjs", kind="binary", provenance=PROV)
    other = store.put(binary, name="iotjs-copy", kind="binary", provenance={"other": 1})
    assert other.path == first.path.with_name("iotjs-copy")
    assert other.path.read_bytes() == first.path.read_bytes()
    meta = json.loads((first.path.parent / "meta.json").read_text())
    assert meta["names"] == ["iotjs", "iotjs-copy"]
    assert meta["provenance"] == PROV  # the first put's record is kept
    assert store.get(first.sha256).name == "iotjs"


def test_lookup_finds_the_artefact_of_a_build_key(store: ArtefactStore, binary: Path) -> None:
    assert store.lookup("build-iotjs-rpi2-abc123") is None
    art = store.put(binary, name="iotjs", kind="binary", provenance=PROV, key="build-iotjs-rpi2-abc123")
    hit = store.lookup("build-iotjs-rpi2-abc123")
    assert hit is not None
    assert (hit.sha256, hit.path, dict(hit.provenance)) == (art.sha256, art.path, PROV)
    assert store.lookup("build-iotjs-rpi2-other") is None


def test_each_key_keeps_the_provenance_of_its_own_build(store: ArtefactStore, binary: Path) -> None:
    # A reproducible rebuild: same bytes, different inputs (say, another image id).
    store.put(binary, name="iotjs", kind="binary", provenance={"image_id": "a"}, key="k1")
    store.put(binary, name="iotjs", kind="binary", provenance={"image_id": "b"}, key="k2")
    one, two = store.lookup("k1"), store.lookup("k2")
    assert one is not None and two is not None
    assert one.sha256 == two.sha256
    assert (one.provenance["image_id"], two.provenance["image_id"]) == ("a", "b")


def test_lookup_misses_when_the_stored_file_is_gone(store: ArtefactStore, binary: Path) -> None:
    art = store.put(binary, name="iotjs", kind="binary", provenance=PROV, key="k")
    art.path.unlink()
    assert store.lookup("k") is None


def test_lookup_rejects_keys_that_are_not_file_names(store: ArtefactStore) -> None:
    with pytest.raises(BadInput, match="artefact key"):
        store.lookup("../escape")


def test_verify_detects_a_corrupted_file(store: ArtefactStore, binary: Path) -> None:
    art = store.put(binary, name="iotjs", kind="binary", provenance=PROV)
    assert store.verify(art)
    art.path.chmod(0o644)
    data = bytearray(art.path.read_bytes())
    data[100] ^= 0xFF  # same size, one flipped byte
    art.path.write_bytes(bytes(data))
    assert not store.verify(art)
    art.path.unlink()
    assert not store.verify(art)


def test_put_repairs_a_corrupted_entry(store: ArtefactStore, binary: Path) -> None:
    art = store.put(binary, name="iotjs", kind="binary", provenance=PROV)
    art.path.chmod(0o644)
    art.path.write_bytes(b"rotten" + b"\0" * (art.size - 6))
    again = store.put(binary, name="iotjs", kind="binary", provenance=PROV)
    assert store.verify(again)
    assert sha256_file(again.path) == art.sha256


def test_an_entry_without_meta_json_is_absent_and_rewritten(store: ArtefactStore, binary: Path) -> None:
    art = store.put(binary, name="iotjs", kind="binary", provenance=PROV)
    (art.path.parent / "meta.json").unlink()  # as if the put was interrupted
    with pytest.raises(BadInput):
        store.get(art.sha256)
    store.put(binary, name="iotjs", kind="binary", provenance=PROV)
    assert store.get(art.sha256).sha256 == art.sha256


def test_put_refuses_directories_missing_files_and_bad_names(
    store: ArtefactStore, binary: Path, tmp_path: Path
) -> None:
    with pytest.raises(BadInput, match="not a file"):
        store.put(tmp_path, name="dir", kind="binary", provenance={})
    with pytest.raises(BadInput, match="not a file"):
        store.put(tmp_path / "absent", name="x", kind="binary", provenance={})
    for bad in ("", "a/b", "meta.json", "..", ".hidden"):
        with pytest.raises(BadInput, match="plain file name"):
            store.put(binary, name=bad, kind="binary", provenance={})


def test_the_source_file_is_left_untouched(store: ArtefactStore, binary: Path) -> None:
    before = (binary.read_bytes(), os.stat(binary).st_mode)
    store.put(binary, name="iotjs", kind="binary", provenance=PROV)
    assert (binary.read_bytes(), os.stat(binary).st_mode) == before


def test_artefact_to_json_round_trips_the_record(store: ArtefactStore, binary: Path) -> None:
    art = store.put(binary, name="iotjs", kind="binary", provenance=PROV)
    record = art.to_json()
    assert record["sha256"] == art.sha256
    assert Artefact(path=art.path, **record) == art
