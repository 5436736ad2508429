"""A tabular file read as-is (:class:`RawTable`), which knows the file row of each row
and refuses a missing column with the closest one the file has."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from personasim.errors import ColumnError

__all__ = ["RawTable"]

_CLI_COLUMN_FLAGS = {"user", "item", "rating", "timestamp"}


@dataclass
class RawTable:
    """A file read as-is: CSV columns as text, Parquet columns in their own types.

    Attributes:
        table: The rows, with the file's own column names.
        file: Where they came from.
        first_row: The row number of ``table``'s first row (2 in a CSV file with a
            header, 1 in Parquet).
        rows: For a subset of a file's rows (see :meth:`take`), their row numbers.
    """

    table: pa.Table
    file: Path
    first_row: int
    rows: np.ndarray | None = None

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The rows as a pandas frame (made on first use)."""
        return self.table.to_pandas()

    @property
    def columns(self) -> list[str]:
        """The column names."""
        return list(self.table.column_names)

    def column(self, name: str) -> pa.ChunkedArray:
        """One column as an Arrow array."""
        return self.table.column(name)

    def row_number(self, index: int) -> int:
        """The file row number of the table's `index`-th row (0-based position)."""
        if self.rows is not None:
            return int(self.rows[index])
        return self.first_row + int(index)

    def take(self, positions: np.ndarray) -> RawTable:
        """The rows at `positions`, keeping their file row numbers."""
        rows = np.asarray([self.row_number(i) for i in positions], dtype="int64")
        return RawTable(self.table.take(pa.array(positions)), self.file, self.first_row, rows)

    def require_columns(self, columns: list[tuple[str, str]], fix: str | None = None) -> None:
        """Check that the file has every mapped column.

        Args:
            columns: ``(config key, column name)`` pairs, e.g. ``("rating", "score")``;
                the key names the `[data.columns]` setting to fix.
            fix: What the message tells the user to do, when a file's columns are
                not mapped by `[data.columns]` (e.g. a rankings file).

        Raises:
            ColumnError: A column is missing; names the closest existing one.
        """
        present = self.columns
        for key, name in columns:
            if name in present:
                continue
            close = difflib.get_close_matches(name, present, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            flag = f" (or --{key}-col)" if key in _CLI_COLUMN_FLAGS else ""
            remedy = fix or f"map the right one with data.columns.{key}{flag}"
            if key == "rating" and not fix:  # perhaps a log of views or clicks
                remedy += "; a log without ratings: --rating-col none (data.columns.rating = '')"
            other = [d for d in (";", "\t", "|", ",") if len(present) == 1 and d in present[0]]
            if other:  # one column holding the others: another delimiter
                hint = ""
                remedy = (
                    f"the header looks delimited by {other[0]!r}: pass --delimiter "
                    f"{other[0]!r} (data.delimiter)"
                )
            raise ColumnError(
                f"no such column (the file has: {', '.join(present)}){hint}; {remedy}",
                file=self.file,
                row=1 if self.first_row > 1 else None,
                column=name,
            )
