"""Errors that end a command, each with its own exit code.

Exit codes (documented in README.md):
  0  every evaluated KPI met its target (or nothing was evaluated)
  1  a KPI failed its target
  2  bad input: a broken manifest, an unknown KPI, a bad option or file
  3  blocked: a component this machine or lab lacks (Docker, QEMU, a board, a tool)
  4  a step's tool failed: a build error, a crashed benchmark (its log is kept)
"""

from __future__ import annotations

from typing import ClassVar, Final

from harness.redact import redact_text

EXIT_OK: Final = 0
EXIT_KPI_FAILED: Final = 1
EXIT_BAD_INPUT: Final = 2
EXIT_BLOCKED: Final = 3
EXIT_STEP_FAILED: Final = 4


class HarnessError(Exception):
    """Base of every error the CLI turns into one line and an exit code."""

    exit_code: ClassVar[int] = EXIT_BAD_INPUT
    label: ClassVar[str] = "error"

    def __str__(self) -> str:
        # Messages quote addresses and commands; a credential in one must never reach a log or a report.
        return redact_text(super().__str__())

    def one_line(self) -> str:
        text = " ".join(str(self).split())
        return f"{self.label}: {text}"


class BadInput(HarnessError):
    """The user's input is wrong: manifest, options, files."""

    exit_code = EXIT_BAD_INPUT
    label = "error"


class ManifestError(BadInput):
    """A manifest problem, located by file and key path."""

    def __init__(self, path: object, key: str, problem: str) -> None:
        self.path = str(path)
        self.key = key
        self.problem = problem
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {problem}")


class Blocked(HarnessError):
    """A step cannot run here: a component is missing. Retryable once the fix is applied."""

    exit_code = EXIT_BLOCKED
    label = "BLOCKED"

    def __init__(self, what: str, fix: str) -> None:
        self.what = what
        self.fix = fix
        super().__init__(f"{what} — fix: {fix}")


class StepFailed(HarnessError):
    """A tool the harness ran failed (a build, a benchmark crash); its log is kept."""

    exit_code = EXIT_STEP_FAILED
    label = "FAILED"

    def __init__(self, what: str, log: object | None = None) -> None:
        self.what = what
        self.log = None if log is None else str(log)
        tail = f" (log: {self.log})" if self.log else ""
        super().__init__(f"{what}{tail}")
