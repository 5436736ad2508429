"""Reading tabular files (CSV/TSV and Parquet), whole or in batches, into
:class:`~personasim.data.raw_table.RawTable` with exact locations for every error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from personasim.data.delimited import blank_rows, csv_options, locate_parse_error, prepare_csv
from personasim.data.raw_table import RawTable
from personasim.errors import DataError

__all__ = ["detect_format", "iter_table_file", "read_table_file"]

_PARQUET_SUFFIXES = {".parquet", ".pq"}


def detect_format(path: Path) -> str:
    """ "parquet" or "csv", from the file name."""
    return "parquet" if path.suffix.lower() in _PARQUET_SUFFIXES else "csv"


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError("file not found", file=path, exit_code=2)
    if path.is_dir():
        raise DataError("is a folder, expected a file", file=path, exit_code=2)
    if path.stat().st_size == 0:
        raise DataError("the file is empty", file=path, row=1)


def iter_table_file(
    path: Path,
    *,
    columns: list[str] | None = None,
    delimiter: str = "",
    encoding: str = "utf-8",
    quoting: bool = True,
    batch_bytes: int = 64 << 20,
) -> Iterator[RawTable]:
    """Read a CSV/TSV or Parquet file in batches, for files too big for memory.

    Each batch is a :class:`RawTable` whose row numbers are those of the file, so the
    validation functions name the exact row of a bad value as with
    :func:`read_table_file`. Blank lines are refused unless only blank lines follow.

    Args:
        path: The file.
        columns: Keep only these columns (all when None).
        delimiter: Field delimiter; "" guesses it.
        encoding: Text encoding of delimited files.
        quoting: Whether double quotes delimit fields.
        batch_bytes: About how many bytes of the file one batch holds.

    Raises:
        DataError: Missing, empty, undecodable or malformed file.
    """
    path = Path(path)
    _check_file(path)
    if detect_format(path) == "parquet":
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as e:
            raise DataError(f"not a readable Parquet file: {e}", file=path) from None
        if parquet.metadata.num_rows == 0:
            raise DataError("the file has no rows", file=path, row=1)
        row = 1
        per_row = max(parquet.metadata.serialized_size // max(parquet.metadata.num_rows, 1), 16)
        for batch in parquet.iter_batches(
            batch_size=max(batch_bytes // per_row, 1024), columns=columns
        ):
            yield RawTable(pa.Table.from_batches([batch]), path, row)
            row += batch.num_rows
        return
    delimiter, header = prepare_csv(path, delimiter, encoding, quoting)
    clean = [c.lstrip("\ufeff").strip() for c in header]
    row, first_blank, seen = 2, None, 0
    try:
        reader = pacsv.open_csv(
            path, **csv_options(header, delimiter, encoding, quoting, batch_bytes)
        )
        for batch in reader:
            table = pa.Table.from_batches([batch]).rename_columns(clean)
            if columns is not None:
                table = table.select(columns)
            mask = blank_rows(pa.Table.from_batches([batch])).to_numpy(zero_copy_only=False)
            if first_blank is not None and not mask.all():
                raise DataError("a blank line; remove it", file=path, row=first_blank)
            if mask.any():
                blank_at = int(np.argmax(mask))
                if not mask[blank_at:].all():
                    raise DataError("a blank line; remove it", file=path, row=row + blank_at)
                first_blank = row + blank_at
                table = table.slice(0, blank_at)
            if table.num_rows:
                seen += table.num_rows
                yield RawTable(table, path, row)
            row += batch.num_rows
    except pa.ArrowInvalid as e:
        raise locate_parse_error(path, header, delimiter, encoding, quoting, e) from None
    if seen == 0:
        raise DataError("the file has a header but no data rows", file=path, row=2)


def read_table_file(
    path: Path,
    *,
    delimiter: str = "",
    encoding: str = "utf-8",
    quoting: bool = True,
) -> RawTable:
    """Read a CSV/TSV or Parquet file whole.

    CSV columns are read as text (nothing is guessed or silently converted), so that
    validation can name the exact row of a bad value.

    Args:
        path: The file; ``.parquet``/``.pq`` are Parquet, anything else delimited text.
        delimiter: Field delimiter; "" guesses from the suffix, then from the content.
        encoding: Text encoding of delimited files.
        quoting: Whether double quotes delimit fields (off for RecBole's atomic files).

    Raises:
        DataError: Missing, empty, undecodable or malformed file.
    """
    path = Path(path)
    _check_file(path)
    if detect_format(path) == "parquet":
        return _read_parquet(path)
    delimiter, header = prepare_csv(path, delimiter, encoding, quoting)

    try:
        table = pacsv.read_csv(path, **csv_options(header, delimiter, encoding, quoting))
    except pa.ArrowInvalid as e:
        raise locate_parse_error(path, header, delimiter, encoding, quoting, e) from None
    blank = blank_rows(table)
    if pc.any(blank).as_py():
        # Trailing blank lines are harmless; a blank line inside the data is refused
        # (skipping it would shift the row numbers of every later error).
        mask = blank.to_numpy(zero_copy_only=False)
        last = len(mask) - int(np.argmin(mask[::-1])) if not mask.all() else 0
        if mask[:last].any():
            row = int(np.flatnonzero(mask[:last])[0]) + 2
            raise DataError("a blank line; remove it", file=path, row=row)
        table = table.slice(0, last)
    if table.num_rows == 0:
        raise DataError("the file has a header but no data rows", file=path, row=2)
    # Excel and others write a byte-order mark; it is not part of the first column name.
    table = table.rename_columns([c.lstrip("\ufeff").strip() for c in table.column_names])
    return RawTable(table=table, file=path, first_row=2)


def _read_parquet(path: Path) -> RawTable:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"not a readable Parquet file: {e}", file=path) from None
    if table.num_rows == 0:
        raise DataError("the file has no rows", file=path, row=1)
    return RawTable(table=table, file=path, first_row=1)
