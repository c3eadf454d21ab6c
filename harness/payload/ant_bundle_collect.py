"""Collect a self-contained ANT runtime bundle for one target: run inside the ANT build image.

Standard library only: this file is copied into the build image and run there with its python3,
where the target's libraries are installed under their Debian multi-arch paths. It copies the
runtime (`iotjs`, `app-core/`), the shared libraries it needs (the NEEDED closure, read from the
ELF dynamic sections, not from `ldd`, which would have to run the target's loader), the loader
itself and the GStreamer plugins a KPI names (with their own closures), and writes `bundle.json`
with the sha256 of every file.

A board then runs `lib/<loader> --library-path lib bin/iotjs …`: the libraries come from the
build image, not from whatever the board's OS holds, so every board of an architecture runs the
same bytes; the board needs only a Linux kernel, POSIX sh, coreutils and python3 (for the
companion session driver).

Usage: python3 ant_bundle_collect.py --out DIR --triplet TRIPLET --exe FILE [--so-dir DIR]…
       [--lib-dir DIR]… [--copy-dir SRC=DEST]… [--gst-plugin NAME]…
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

PT_LOAD = 1
PT_DYNAMIC = 2
PT_INTERP = 3
DT_NULL = 0
DT_NEEDED = 1
DT_STRTAB = 5
DT_SONAME = 14
DT_RPATH = 15
DT_RUNPATH = 29


class ElfError(Exception):
    """A file is not an ELF object this reader understands."""


def _read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise ElfError(f"{size} bytes at offset {offset} are past the end of the file")
    return data


@dataclass
class DynamicInfo:
    """What the dynamic loader reads of an ELF file."""

    needed: list[str] = field(default_factory=list)
    runpath: list[str] = field(default_factory=list)
    soname: str = ""
    interp: str = ""


def dynamic_info(path: str | os.PathLike[str]) -> DynamicInfo:
    """NEEDED names, RPATH/RUNPATH, SONAME and the interpreter of an ELF file."""
    with open(path, "rb") as f:
        ident = f.read(16)
        if len(ident) < 16 or ident[:4] != b"\x7fELF":
            raise ElfError(f"{path}: not an ELF file")
        cls = {1: 32, 2: 64}.get(ident[4])
        order = {1: "<", 2: ">"}.get(ident[5])
        if cls is None or order is None:
            raise ElfError(f"{path}: unknown ELF class or byte order")
        head = order + ("HHIIIIIHHH" if cls == 32 else "HHIQQQIHHH")
        fields = struct.unpack(head, _read_at(f, 16, struct.calcsize(head)))
        phoff, phentsize, phnum = fields[4], fields[8], fields[9]
        ph = order + ("IIIIIIII" if cls == 32 else "IIQQQQQQ")
        loads: list[tuple[int, int, int]] = []  # (vaddr, offset, filesz)
        dynamic: tuple[int, int] | None = None
        interp = ""
        for i in range(phnum):
            e = struct.unpack(ph, _read_at(f, phoff + i * phentsize, struct.calcsize(ph)))
            if cls == 32:
                p_type, p_offset, p_vaddr, p_filesz = e[0], e[1], e[2], e[4]
            else:
                p_type, p_offset, p_vaddr, p_filesz = e[0], e[2], e[3], e[5]
            if p_type == PT_LOAD:
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == PT_DYNAMIC:
                dynamic = (p_offset, p_filesz)
            elif p_type == PT_INTERP:
                interp = _read_at(f, p_offset, p_filesz).split(b"\0", 1)[0].decode()
        info = DynamicInfo(interp=interp)
        if dynamic is None:
            return info
        ent = order + ("iI" if cls == 32 else "qQ")
        size = struct.calcsize(ent)
        raw = _read_at(f, dynamic[0], dynamic[1])
        entries = [struct.unpack_from(ent, raw, o) for o in range(0, len(raw) - size + 1, size)]
        strtab = next((v for t, v in entries if t == DT_STRTAB), None)
        if strtab is None:
            raise ElfError(f"{path}: dynamic section without a string table")
        base = next((off + strtab - va for va, off, sz in loads if va <= strtab < va + sz), None)
        if base is None:
            raise ElfError(f"{path}: string table address {strtab:#x} is in no loaded segment")

        def string(offset: int) -> str:
            f.seek(base + offset)
            out = b""
            while not out.endswith(b"\0"):
                chunk = f.read(64)
                if not chunk:
                    break
                out += chunk
            return out.split(b"\0", 1)[0].decode()

        for tag, val in entries:
            if tag == DT_NULL:
                break
            if tag == DT_NEEDED:
                info.needed.append(string(val))
            elif tag in (DT_RPATH, DT_RUNPATH):
                info.runpath.extend(p for p in string(val).split(":") if p)
            elif tag == DT_SONAME:
                info.soname = string(val)
        return info


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Collector:
    """Copies ELF files and their NEEDED closure into out/lib."""

    def __init__(self, out: Path, search: list[Path]) -> None:
        self.out = out
        self.search = search
        self.libs: dict[str, str] = {}  # name in lib/ → source path
        self.missing: dict[str, list[str]] = {}  # name → who needs it

    def _find(self, name: str, extra: list[str]) -> Path | None:
        if "/" in name:
            p = Path(name)
            if p.is_file():
                return p
            name = p.name  # e.g. the loader of a cross sysroot, which is not at its run-time path
        for d in [*map(Path, extra), *self.search]:
            if (d / name).is_file():
                return d / name
        return None

    def add_closure(self, path: Path) -> None:
        todo = [path]
        while todo:
            cur = todo.pop()
            info = dynamic_info(cur)
            for name in info.needed:
                key = os.path.basename(name)
                if key in self.libs:
                    continue
                found = self._find(name, info.runpath)
                if found is None:
                    self.missing.setdefault(key, []).append(str(cur))
                    continue
                self.libs[key] = str(found)
                shutil.copy2(found.resolve(), self.out / "lib" / key)
                todo.append(found.resolve())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--triplet", required=True, help="Debian multi-arch triplet, e.g. arm-linux-gnueabihf")
    ap.add_argument("--exe", required=True, type=Path, help="the runtime binary (iotjs)")
    ap.add_argument("--so-dir", action="append", default=[], type=Path,
                    help="a directory of the build's own shared libraries (searched, and all copied)")
    ap.add_argument("--lib-dir", action="append", default=[], type=Path,
                    help="another directory of target libraries (searched after the multi-arch ones)")
    ap.add_argument("--copy-dir", action="append", default=[], help="SRC=DEST: a directory copied as is")
    ap.add_argument("--gst-plugin", action="append", default=[], help="GStreamer plugin name, e.g. videotestsrc")
    a = ap.parse_args(argv)
    out: Path = a.out
    if out.exists():
        shutil.rmtree(out)
    for sub in ("bin", "lib", "gst"):
        (out / sub).mkdir(parents=True)
    multiarch = [Path(f"/lib/{a.triplet}"), Path(f"/usr/lib/{a.triplet}")]
    col = Collector(out, [*a.so_dir, *multiarch, *a.lib_dir])
    shutil.copy2(a.exe, out / "bin" / a.exe.name)
    col.add_closure(a.exe)
    for d in a.so_dir:
        for so in sorted(d.glob("*.so")):
            if so.name not in col.libs:
                col.libs[so.name] = str(so)
                shutil.copy2(so.resolve(), out / "lib" / so.name)
                col.add_closure(so.resolve())
    plugins: dict[str, str] = {}
    gst_dir = Path(f"/usr/lib/{a.triplet}/gstreamer-1.0")
    for name in a.gst_plugin:
        so = gst_dir / f"libgst{name}.so"
        if not so.is_file():
            col.missing.setdefault(so.name, []).append("--gst-plugin")
            continue
        shutil.copy2(so, out / "gst" / so.name)
        plugins[name] = str(so)
        col.add_closure(so)
    interp = dynamic_info(a.exe).interp
    if not interp:
        print(f"{a.exe}: no interpreter (a static binary?)", file=sys.stderr)
        return 2
    loader = os.path.basename(interp)
    if loader not in col.libs:
        src = col._find(interp, [])
        if src is None:
            col.missing.setdefault(loader, []).append(str(a.exe))
        else:
            col.libs[loader] = str(src)
            shutil.copy2(src.resolve(), out / "lib" / loader)
    for spec in a.copy_dir:
        src, _, dest = spec.partition("=")
        shutil.copytree(src, out / dest, symlinks=False)
    files = {str(p.relative_to(out)): sha256_file(p) for p in sorted(out.rglob("*")) if p.is_file()}
    meta = {
        "triplet": a.triplet,
        "exe": f"bin/{a.exe.name}",
        "loader": f"lib/{loader}",
        "interp": interp,
        "libs": col.libs,
        "gst_plugins": plugins,
        "missing": col.missing,
        "files": files,
    }
    (out / "bundle.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    if col.missing:
        print("missing: " + ", ".join(f"{k} (needed by {v[0]})" for k, v in sorted(col.missing.items())),
              file=sys.stderr)
        return 3
    print(f"bundle: {len(files)} files, {len(col.libs)} libraries, {len(plugins)} GStreamer plugins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
