"""The one error type users see for bad input: it names the file or argument, what was expected,
and what was found, so the CLI can print it without a traceback."""

from __future__ import annotations

from pathlib import Path


class FacebenchError(Exception):
    """Bad input or a missing resource, with a message meant for the user."""


class DataError(FacebenchError, ValueError):
    """A dataset file or folder that is missing or not in the expected format."""

    def __init__(self, where: str | Path, expected: str, found: str, hint: str = ""):
        self.where, self.expected, self.found, self.hint = str(where), expected, found, hint
        msg = f"{where}: expected {expected}, found {found}"
        super().__init__(msg + (f". {hint}" if hint else ""))

    def __reduce__(self):
        # Rebuilt from its parts when it crosses a process boundary (a run in its own process).
        return type(self), (self.where, self.expected, self.found, self.hint)
