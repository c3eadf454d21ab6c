"""Facts of a .tflite file without running it: size and sha256, whether it is a TFLite flatbuffer
or a Git LFS pointer, and its graph (operators, tensors, description)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from harness.core.digest import sha256_file
from harness.errors import BadInput, Blocked

# --------------------------------------------------------------------------------------------
# File facts
# --------------------------------------------------------------------------------------------

LITERT_FIX: Final = "pip install ai-edge-litert (the LiteRT runtime, which also ships the TFLite schema)"
TFLITE_IDENTIFIER: Final = b"TFL3"


def size_and_sha256(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file; BadInput when it cannot be read."""
    p = Path(path)
    try:
        return p.stat().st_size, sha256_file(p)
    except OSError as e:
        raise BadInput(f"{p}: cannot read ({e.strerror or e})") from None


def looks_like_tflite(path: str | os.PathLike[str]) -> bool:
    """Whether the file carries the TFLite flatbuffer identifier (bytes 4-8 are 'TFL3')."""
    try:
        with Path(path).open("rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[4:8] == TFLITE_IDENTIFIER


def lfs_pointer(path: str | os.PathLike[str]) -> bool:
    """Whether the file is a Git LFS pointer stub rather than the content itself."""
    try:
        with Path(path).open("rb") as f:
            return f.read(40).startswith(b"version https://git-lfs")
    except OSError:
        return False


@dataclass(frozen=True, kw_only=True)
class GraphFacts:
    """What a .tflite holds, read back from its flatbuffer: operators and 1x1-convolution zeros."""

    ops: tuple[str, ...]
    pointwise_zero: int
    pointwise_total: int

    @property
    def pointwise_sparsity(self) -> float:
        return self.pointwise_zero / self.pointwise_total if self.pointwise_total else 0.0


_WEIGHT_DTYPES: Final = {"FLOAT32": np.float32, "INT8": np.int8, "FLOAT16": np.float16}


def read_graph(path: str | os.PathLike[str]) -> GraphFacts:
    """Operators of the first subgraph, and the zeros stored in its 1x1 CONV_2D weights."""
    s = _schema()
    p = Path(path)
    if not looks_like_tflite(p):
        raise BadInput(f"{p}: not a TFLite flatbuffer")
    try:
        model = s.ModelT.InitFromPackedBuf(p.read_bytes(), 0)
        graph = model.subgraphs[0]
    except Exception as e:  # a damaged flatbuffer fails with whatever the generated reader hits
        raise BadInput(f"{p}: unreadable TFLite flatbuffer ({type(e).__name__}: {e})") from None
    op_names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(s.TensorType).items() if not k.startswith("_")}
    ops, zero, total = [], 0, 0
    for op in graph.operators:
        oc = model.operatorCodes[op.opcodeIndex]
        name = op_names.get(max(oc.builtinCode, oc.deprecatedBuiltinCode), "CUSTOM")
        ops.append(name)
        if name != "CONV_2D":
            continue
        w = graph.tensors[op.inputs[1]]
        shape = [int(d) for d in w.shape]
        dtype = _WEIGHT_DTYPES.get(type_names.get(w.type, ""))
        data = model.buffers[w.buffer].data
        if len(shape) != 4 or shape[1:3] != [1, 1] or dtype is None or data is None:
            continue
        values = np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(), dtype=dtype)
        zero += int((values == 0).sum())
        total += values.size
    return GraphFacts(ops=tuple(ops), pointwise_zero=zero, pointwise_total=total)


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as e:
        raise Blocked(f"the LiteRT runtime is not installed ({e})", LITERT_FIX) from None
    return schema
