"""One strict TOML reader for kpis.toml and boards.toml: known keys, types, required keys, and errors
that name the file and the key path (ManifestError: one line, exit 2), with a did-you-mean.

Values never go into an error unless the caller puts them there: boards.toml holds credentials.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from harness.errors import ManifestError

_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class StrictTable:
    """Reads one table strictly: known keys, types, required keys; errors carry the key path."""

    def __init__(self, path: Path, key: str, table: object) -> None:
        self.path = path
        self.key = key
        if not isinstance(table, dict):
            raise ManifestError(path, key, f"must be a table, not {type_name(table)}")
        self.table: dict[str, Any] = table
        self.seen: set[str] = set()

    def _sub(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def _get(self, name: str, required: bool) -> Any:
        self.seen.add(name)
        if name not in self.table:
            if required:
                raise ManifestError(self.path, self._sub(name), "required key is missing")
            return None
        return self.table[name]

    def str_(self, name: str, *, required: bool = True, default: str = "") -> str:
        v = self._get(name, required)
        if v is None:
            return default
        if not isinstance(v, str):
            raise ManifestError(self.path, self._sub(name), f"must be a string, not {type_name(v)}")
        return v

    def int_(
        self, name: str, *, required: bool = True, default: int = 0, minimum: int = 0, maximum: int | None = None
    ) -> int:
        v = self._get(name, required)
        if v is None:
            return default
        if not isinstance(v, int) or isinstance(v, bool):
            raise ManifestError(self.path, self._sub(name), f"must be an integer, not {type_name(v)}")
        if v < minimum:
            raise ManifestError(self.path, self._sub(name), f"must be ≥ {minimum}, got {v}")
        if maximum is not None and v > maximum:
            raise ManifestError(self.path, self._sub(name), f"must be ≤ {maximum}, got {v}")
        return v

    def float_(self, name: str, *, required: bool = True) -> float | None:
        v = self._get(name, required)
        if v is None:
            return None
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise ManifestError(self.path, self._sub(name), f"must be a number, not {type_name(v)}")
        return float(v)

    def bool_(self, name: str, *, required: bool = False, default: bool = False) -> bool:
        v = self._get(name, required)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise ManifestError(self.path, self._sub(name), f"must be true or false, not {type_name(v)}")
        return v

    def choice(self, name: str, choices: tuple[str, ...], *, required: bool = True) -> str:
        v = self.str_(name, required=required)
        if not required and v == "":
            return v
        if v not in choices:
            raise ManifestError(
                self.path,
                self._sub(name),
                f"{v!r} is not one of {', '.join(choices)}{did_you_mean(v, choices)}",
            )
        return v

    def str_list(self, name: str, *, required: bool = True) -> tuple[str, ...]:
        v = self._get(name, required)
        if v is None:
            return ()
        if not isinstance(v, list):
            raise ManifestError(self.path, self._sub(name), f"must be a list of strings, not {type_name(v)}")
        for i, item in enumerate(v):
            if not isinstance(item, str):
                raise ManifestError(self.path, f"{self._sub(name)}[{i}]", f"must be a string, not {type_name(item)}")
        return tuple(v)

    def table_(self, name: str, *, required: bool = True) -> StrictTable | None:
        v = self._get(name, required)
        if v is None:
            return None
        return StrictTable(self.path, self._sub(name), v)

    def tables(self, name: str, *, required: bool = True) -> list[StrictTable]:
        v = self._get(name, required)
        if v is None:
            return []
        if not isinstance(v, list):
            raise ManifestError(self.path, self._sub(name), f"must be a list of tables, not {type_name(v)}")
        return [StrictTable(self.path, f"{self._sub(name)}[{i}]", item) for i, item in enumerate(v)]

    def named_tables(self, name: str, *, required: bool = True) -> list[tuple[str, StrictTable]]:
        outer = self.table_(name, required=required)
        if outer is None:
            return []
        out = []
        for key in outer.table:
            outer.seen.add(key)
            if not _ID_RE.match(key):
                raise ManifestError(self.path, outer._sub(key), "names use letters, digits, '_', '-', '.'")
            out.append((key, StrictTable(self.path, outer._sub(key), outer.table[key])))
        return out

    # The inventory's style: one typed value, or None when absent and not required.
    def get(self, name: str, kind: type, *, required: bool) -> Any:
        v = self._get(name, required)
        if v is None:
            return None
        if kind is float:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        elif kind is bool:
            ok = isinstance(v, bool)
        else:
            ok = isinstance(v, kind) and not isinstance(v, bool)
        if not ok:
            raise ManifestError(self.path, self._sub(name), f"must be {TYPE_NAMES[kind]}, not {type_name(v)}")
        return v

    def sub(self, name: str) -> str:
        """The key path of `name` in this table, as errors name it."""
        return self._sub(name)

    def error(self, name: str, problem: str) -> ManifestError:
        return ManifestError(self.path, self._sub(name), problem)

    def only(self, allowed: tuple[str, ...]) -> None:
        """Reject unknown keys first, so a misspelt key is not reported as a missing one."""
        for k in self.table:
            if k not in allowed:
                raise self.error(k, f"unknown key{did_you_mean(k, allowed)}")

    def done(self) -> None:
        """Reject keys nobody asked for, with a did-you-mean."""
        for k in self.table:
            if k not in self.seen:
                raise ManifestError(self.path, self._sub(k), f"unknown key{did_you_mean(k, sorted(self.seen))}")


TYPE_NAMES: Final[Mapping[type, str]] = {
    dict: "a table",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
}


def type_name(v: object) -> str:
    return TYPE_NAMES.get(type(v), type(v).__name__)
