"""Named edits of upstream files: each says what it replaces and why, and fails loudly when upstream moved."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.errors import BadInput, StepFailed


@dataclass(frozen=True, kw_only=True)
class Patch:
    """One edit of an upstream file: `old` (exact text, found exactly once) becomes `new`.

    `why` names the upstream problem the edit fixes; it is recorded beside the tree and repeated
    in the error when `old` is no longer in the file (upstream moved: the patch needs a review).
    """

    file: str
    old: str
    new: str
    why: str

    def __post_init__(self) -> None:
        if not self.old:
            raise BadInput(f"patch of {self.file}: the text to replace is empty")
        if not self.why.strip():
            raise BadInput(f"patch of {self.file}: say why it is needed")


def apply_patch(tree: Path, patch: Patch) -> None:
    """Apply one patch in place; StepFailed naming the file when its text is absent or ambiguous."""
    path = tree / patch.file
    if not path.is_file():
        raise StepFailed(f"{patch.file}: no such file in {tree} to patch ({patch.why})")
    # surrogateescape: some upstream files carry bytes that are not UTF-8 (legacy Korean comments);
    # they pass through unchanged.
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    old, new = patch.old, patch.new
    if "\r\n" in text and "\r\n" not in old:
        # The file has CRLF line ends, the patch is written with LF: match in the file's style.
        old, new = old.replace("\n", "\r\n"), new.replace("\n", "\r\n")
    count = text.count(old)
    first = patch.old.strip().splitlines()[0] if patch.old.strip() else repr(patch.old)
    if count == 0:
        raise StepFailed(
            f"{patch.file}: the text to patch is not there ({first!r}); upstream changed, review the patch: {patch.why}"
        )
    if count > 1:
        raise StepFailed(
            f"{patch.file}: the text to patch occurs {count} times ({first!r}); make it unique: {patch.why}"
        )
    path.write_bytes(text.replace(old, new).encode("utf-8", errors="surrogateescape"))
