"""Reading tabular files (CSV/TSV and Parquet) with exact locations for every error."""

from __future__ import annotations

import codecs
import csv
import difflib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from personasim.errors import ColumnError, DataError

__all__ = ["RawTable", "detect_format", "iter_table_file", "read_table_file"]

logger = logging.getLogger(__name__)

_TAB_SUFFIXES = {".tsv", ".tab", ".inter", ".item", ".user"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}
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


def detect_format(path: Path) -> str:
    """ "parquet" or "csv", from the file name."""
    return "parquet" if path.suffix.lower() in _PARQUET_SUFFIXES else "csv"


def _check_decodes(path: Path, encoding: str, delimiter: str) -> None:
    """Stream-decode a text file; on failure, name the row and column of the bad byte."""
    decoder = codecs.getincrementaldecoder(encoding)()
    lines_before = 0
    tail = b""  # bytes of the current (unfinished) line, to find the column
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                start = max(e.start, 0)
                head = chunk[:start]
                row = lines_before + head.count(b"\n") + 1
                line_start = head.rfind(b"\n")
                line_bytes = (tail + head) if line_start < 0 else head[line_start + 1 :]
                column = _column_at(path, line_bytes, delimiter, encoding)
                bad = chunk[start : start + 1].hex()
                raise DataError(
                    f"not valid {encoding} text (byte 0x{bad}); convert the file or set "
                    f'data.encoding (e.g. "latin-1")',
                    file=path,
                    row=row,
                    column=column,
                ) from None
            lines_before += chunk.count(b"\n")
            last_nl = chunk.rfind(b"\n")
            tail = (tail + chunk) if last_nl < 0 else chunk[last_nl + 1 :]
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise DataError(
                f"not valid {encoding} text: the file ends inside a character",
                file=path,
                row=lines_before + 1,
            ) from None


def _column_at(path: Path, line_prefix: bytes, delimiter: str, encoding: str) -> str | None:
    """The header name of the column in which `line_prefix` ends."""
    index = line_prefix.count(delimiter.encode())
    try:
        with path.open("r", encoding=encoding, errors="replace", newline="") as f:
            header = next(csv.reader(f, delimiter=delimiter))
    except (StopIteration, csv.Error):
        return None
    return header[index] if index < len(header) else None


def _guess_delimiter(path: Path, encoding: str) -> str:
    if path.suffix.lower() == ".csv":
        return ","
    if path.suffix.lower() in _TAB_SUFFIXES:
        return "\t"
    with path.open("r", encoding=encoding, errors="replace", newline="") as f:
        sample = f.read(64 * 1024)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
    except csv.Error:
        return ","


def _read_header(path: Path, delimiter: str, encoding: str, quoting: bool) -> list[str]:
    with path.open("r", encoding=encoding, newline="") as f:
        reader = csv.reader(
            f, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE
        )
        header = next(reader, None)
    if not header or all(not h.strip() for h in header):
        raise DataError(
            "the first row is empty; a header row naming the columns is needed", file=path, row=1
        )
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError("the header names this column twice", file=path, row=1, column=name)
        seen.add(name)
    return header


def _csv_options(
    header: list[str], delimiter: str, encoding: str, quoting: bool, block_size: int | None = None
) -> dict[str, object]:
    """Arrow's CSV options: every column as text, nothing skipped or converted."""
    read = pacsv.ReadOptions(encoding=encoding, column_names=header, skip_rows=1)
    if block_size:
        read.block_size = block_size
    return {
        "read_options": read,
        "parse_options": pacsv.ParseOptions(
            delimiter=delimiter,
            quote_char='"' if quoting else False,
            # Blank lines are refused rather than skipped: skipping them would
            # shift every later row number in error messages.
            ignore_empty_lines=False,
        ),
        "convert_options": pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    }


def _blank_rows(table: pa.Table | pa.RecordBatch) -> pa.Array:
    """True where every field of a row is empty (a blank line)."""
    blank = pc.equal(table.column(0), "")
    for name in table.column_names[1:]:
        blank = pc.and_(blank, pc.equal(table.column(name), ""))
    return blank


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError("file not found", file=path, exit_code=2)
    if path.is_dir():
        raise DataError("is a folder, expected a file", file=path, exit_code=2)
    if path.stat().st_size == 0:
        raise DataError("the file is empty", file=path, row=1)


def _prepare_csv(
    path: Path, delimiter: str, encoding: str, quoting: bool = True
) -> tuple[str, list[str]]:
    """Check the encoding of a delimited file; return its delimiter and header."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(
            f"unknown text encoding {encoding!r} (data.encoding)", exit_code=2
        ) from None
    delimiter = delimiter or _guess_delimiter(path, encoding)
    _check_decodes(path, encoding, delimiter)
    return delimiter, _read_header(path, delimiter, encoding, quoting)


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
    delimiter, header = _prepare_csv(path, delimiter, encoding, quoting)
    clean = [c.lstrip("\ufeff").strip() for c in header]
    row, first_blank, seen = 2, None, 0
    try:
        reader = pacsv.open_csv(
            path, **_csv_options(header, delimiter, encoding, quoting, batch_bytes)
        )
        for batch in reader:
            table = pa.Table.from_batches([batch]).rename_columns(clean)
            if columns is not None:
                table = table.select(columns)
            mask = _blank_rows(pa.Table.from_batches([batch])).to_numpy(zero_copy_only=False)
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
        raise _locate_parse_error(path, header, delimiter, encoding, quoting, e) from None
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
    delimiter, header = _prepare_csv(path, delimiter, encoding, quoting)

    try:
        table = pacsv.read_csv(path, **_csv_options(header, delimiter, encoding, quoting))
    except pa.ArrowInvalid as e:
        raise _locate_parse_error(path, header, delimiter, encoding, quoting, e) from None
    blank = _blank_rows(table)
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


def _locate_parse_error(
    path: Path, header: list[str], delimiter: str, encoding: str, quoting: bool, error: Exception
) -> DataError:
    """Find the row Arrow could not parse (only on the error path: a second, slow read)."""
    with path.open("r", encoding=encoding, newline="") as f:
        reader = csv.reader(
            f, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE
        )
        next(reader, None)
        try:
            for fields in reader:
                if not fields:
                    return DataError("a blank line; remove it", file=path, row=reader.line_num)
                if len(fields) != len(header):
                    return DataError(
                        f"expected {len(header)} fields (as in the header), found {len(fields)}; "
                        f"check the delimiter ({delimiter!r}) and quoting",
                        file=path,
                        row=reader.line_num,
                    )
        except csv.Error as e:
            return DataError(f"cannot parse: {e}", file=path, row=reader.line_num)
    return DataError(f"cannot parse: {error}", file=path)


def _read_parquet(path: Path) -> RawTable:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"not a readable Parquet file: {e}", file=path) from None
    if table.num_rows == 0:
        raise DataError("the file has no rows", file=path, row=1)
    return RawTable(table=table, file=path, first_row=1)
