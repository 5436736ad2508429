"""Delimited text files (CSV/TSV): checking their encoding, finding the delimiter and
header, Arrow's options for reading them as text, and the exact row of a parse error."""

from __future__ import annotations

import codecs
import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from personasim.errors import DataError

__all__ = ["blank_rows", "csv_options", "locate_parse_error", "prepare_csv"]

_TAB_SUFFIXES = {".tsv", ".tab", ".inter", ".item", ".user"}


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


def csv_options(
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


def blank_rows(table: pa.Table | pa.RecordBatch) -> pa.Array:
    """True where every field of a row is empty (a blank line)."""
    blank = pc.equal(table.column(0), "")
    for name in table.column_names[1:]:
        blank = pc.and_(blank, pc.equal(table.column(name), ""))
    return blank


def prepare_csv(
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


def locate_parse_error(
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
