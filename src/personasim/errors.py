"""All errors personasim raises on purpose.

Every error is a :class:`PersonaSimError`. The CLI maps :class:`ConfigError` (the
command or configuration is wrong) to exit code 2 and every other error (the data, a
backend or a stage failed, or a stage needs one that has not run) to exit code 3,
printing the one-line message only. An error personasim did not raise on purpose (a
bug) exits with :data:`INTERNAL_ERROR_EXIT`; an interrupted command with 130.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "INTERNAL_ERROR_EXIT",
    "BackendError",
    "ColumnError",
    "ConfigError",
    "DataError",
    "PersonaSimError",
    "StageError",
]


INTERNAL_ERROR_EXIT = 4
"""The exit code of an unexpected error (a bug, not the input): report it with -v."""


class PersonaSimError(Exception):
    """Base class of every error personasim raises on purpose."""

    exit_code: int = 3


class ConfigError(PersonaSimError):
    """The command line or the run configuration is wrong; fix the command."""

    exit_code = 2


class StageError(PersonaSimError):
    """A pipeline stage cannot run, e.g. because a stage it needs has not run."""


class BackendError(PersonaSimError):
    """A model backend (language model, embedder, server) failed."""


def _location(file: str | Path | None, row: int | None, column: str | None) -> str:
    parts = []
    if file is not None:
        parts.append(str(file))
    if row is not None:
        parts.append(f"row {row}")
    if column is not None:
        parts.append(f"column {column!r}")
    return ", ".join(parts)


class DataError(PersonaSimError):
    """The input data is invalid.

    The message names where: the file, the row (counted as in a spreadsheet: in a CSV
    file the header is row 1, so it equals the line number; in Parquet the first record
    is row 1) and the column.

    Args:
        message: What is wrong and, where it helps, what to do.
        file: The offending file.
        row: The offending row, 1-based as described above.
        column: The offending column, as named in the file.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.row = row
        self.column = column
        if exit_code is not None:
            self.exit_code = exit_code
        where = _location(file, row, column)
        super().__init__(f"{where}: {message}" if where else message)


class ColumnError(DataError, ConfigError):
    """A column the configuration names is missing from a file (a usage error: exit 2)."""

    exit_code = 2
