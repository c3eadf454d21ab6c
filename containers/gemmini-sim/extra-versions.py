"""Add the gemmini-sim image's own tools to tvm-npu's tool-versions JSON (run at image build time),
read with tvm-npu's own tool-versions.py (installed in the base image)."""

from __future__ import annotations

import importlib.util
import json
import sys

BASE_SCRIPT = "/usr/local/libexec/ant-kpi/tool-versions.py"
DEB_PACKAGES = ["gcc-riscv64-unknown-elf", "picolibc-riscv64-unknown-elf", "autoconf"]
PYTHON_PACKAGES = ["tensorflow-cpu", "flatbuffers", "typing_extensions"]


def main() -> None:
    spec = importlib.util.spec_from_file_location("tool_versions", BASE_SCRIPT)
    assert spec is not None and spec.loader is not None, BASE_SCRIPT
    base = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(base)
    with open(sys.argv[1], encoding="utf-8") as f:
        versions = json.load(f)
    versions.update({f"deb:{p}": base.deb_version(p) for p in DEB_PACKAGES})
    versions.update({f"py:{p}": base.py_version(p) for p in PYTHON_PACKAGES})
    json.dump(versions, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
