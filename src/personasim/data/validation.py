"""Turning raw columns into typed ones, refusing bad values with their exact location.

Valid columns take the fast path (Arrow compute kernels over the whole column); only
when a column holds a bad value is it scanned again to find the first bad row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from personasim.data.raw_table import RawTable
from personasim.errors import DataError
from personasim.rating_scale import RatingScale

__all__ = [
    "MISSING_MARKERS",
    "object_array",
    "parse_ids",
    "parse_ratings",
    "parse_timestamps",
    "parse_years",
]

MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "unknown", "-", "?"})
"""Values of optional metadata columns that mean "unknown" (compared lower-case)."""


def _first_true(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.index(pc.fill_null(mask, True), True).as_py())


def _is_blank(value: object) -> bool:
    return (
        value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == ""
    )


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column as trimmed text; whole floats (Parquet ids like 1.0) lose the ".0"."""
    if pa.types.is_floating(column.type):
        finite = pc.fill_null(pc.is_finite(column), False)
        whole = pc.equal(pc.floor(column), column)
        if pc.all(pc.and_(finite, whole)).as_py():
            column = pc.cast(column, pa.int64())
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = pc.cast(column, pa.string())
    return pc.utf8_trim_whitespace(column)


def object_array(column: pa.ChunkedArray) -> np.ndarray:
    """Arrow strings as a NumPy object array (what pandas and LensKit take as ids)."""
    return column.to_numpy(zero_copy_only=False)


def parse_ids(raw: RawTable, column: str) -> pa.ChunkedArray:
    """An id column as trimmed strings.

    Raises:
        DataError: An id is empty or missing.
    """
    text = _as_text(raw.column(column))
    empty = pc.or_kleene(pc.is_null(text), pc.equal(pc.utf8_length(text), 0))
    if pc.any(empty).as_py():
        i = _first_true(empty)
        raise DataError("the id is empty", file=raw.file, row=raw.row_number(i), column=column)
    return text


def _to_float(raw: RawTable, column: str, what: str) -> np.ndarray:
    """A column as float64, refusing missing, non-numeric and non-finite values."""
    values = raw.column(column)
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        numbers = pc.cast(values, pa.float64())
    else:
        try:
            numbers = pc.cast(pc.utf8_trim_whitespace(values), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            numbers = None
    if numbers is not None:
        bad = pc.invert(pc.fill_null(pc.is_finite(numbers), False))
        if not pc.any(bad).as_py():
            return numbers.to_numpy()
    # Slow path, only for a column with a bad value: find the first one.
    series = values.to_pandas()
    parsed = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    i = int(np.flatnonzero(~np.isfinite(parsed))[0])
    shown = series.iloc[i]
    message = f"the {what} is missing" if _is_blank(shown) else f"{shown!r} is not a number"
    raise DataError(message, file=raw.file, row=raw.row_number(i), column=column)


def parse_ratings(raw: RawTable, column: str, scale: RatingScale) -> np.ndarray:
    """A rating column as float64, every value one of `scale`'s levels.

    Raises:
        DataError: A value is missing, not a number, outside the scale or between two
            of its levels (never rounded: the message says which setting to change).
    """
    numbers = _to_float(raw, column, "rating")
    out = (numbers < scale.low) | (numbers > scale.high)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise DataError(
            f"rating {numbers[i]:g} is outside the rating scale [{scale.low:g}, "
            f"{scale.high:g}] (data.rating_scale)",
            file=raw.file,
            row=raw.row_number(i),
            column=column,
        )
    between = scale.off_level(numbers)
    if between.any():
        i = int(np.flatnonzero(between)[0])
        raise DataError(
            f"rating {numbers[i]:g} is not one of the ratings of {scale} "
            f"({', '.join(f'{v:g}' for v in scale.levels)}): set data.rating_step to the "
            "distance between two ratings of the log (0.5 for half stars), or map the "
            "ratings to levels first",
            file=raw.file,
            row=raw.row_number(i),
            column=column,
        )
    return numbers


def parse_timestamps(raw: RawTable, column: str) -> np.ndarray:
    """A time column as int64 epoch seconds.

    Accepts whole numbers (taken as epoch seconds, as in MovieLens) or ISO-8601 dates
    and times (converted to UTC epoch seconds).

    Raises:
        DataError: A value is missing, fractional, or not a time.
    """
    values = raw.column(column)
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        seconds = pc.cast(pc.cast(values, pa.timestamp("s", tz="UTC")), pa.int64())
        if seconds.null_count:
            i = _first_true(pc.is_null(seconds))
            raise DataError(
                "the time is missing", file=raw.file, row=raw.row_number(i), column=column
            )
        return seconds.to_numpy()
    if pa.types.is_integer(values.type) and not values.null_count:
        return pc.cast(values, pa.int64()).to_numpy()
    if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        text = pc.utf8_trim_whitespace(values)
        try:
            return pc.cast(text, pa.int64()).to_numpy()  # fast path: epoch seconds
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    series = values.to_pandas()
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    numeric = np.isfinite(numbers)
    if numeric.all():
        frac = numbers % 1 != 0
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            raise DataError(
                f"{series.iloc[i]!r} is not a whole number of seconds; timestamps are epoch "
                "seconds or ISO-8601 dates",
                file=raw.file,
                row=raw.row_number(i),
                column=column,
            )
        return numbers.astype("int64")
    if numeric.any():
        # A mix: the non-numeric ones are the odd ones out.
        i = int(np.flatnonzero(~numeric)[0])
        shown = series.iloc[i]
        what = "the time is missing" if _is_blank(shown) else f"{shown!r} is not a time"
        raise DataError(
            f"{what} (other rows hold epoch seconds)",
            file=raw.file,
            row=raw.row_number(i),
            column=column,
        )
    parsed = pd.to_datetime(series, errors="coerce", utc=True, format="ISO8601")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        shown = series.iloc[i]
        what = "the time is missing" if _is_blank(shown) else f"{shown!r} is not a time"
        raise DataError(
            f"{what}; timestamps are epoch seconds or ISO-8601 dates",
            file=raw.file,
            row=raw.row_number(i),
            column=column,
        )
    return (parsed.astype("int64") // 10**9).to_numpy(dtype="int64")


def parse_years(
    raw: RawTable, column: str, missing: frozenset[str] = MISSING_MARKERS
) -> tuple[pd.arrays.IntegerArray, np.ndarray]:
    """An optional release-year column as nullable Int32.

    Blank cells and the `missing` markers (e.g. "unknown") mean an unknown year. Other
    values that are not a plausible year are also unknown, and flagged: metadata is
    optional, so the caller decides whether to recover them (from a title) or warn.

    Returns:
        The years, and a mask of the rows whose value was not a year.
    """
    values = raw.frame[column]
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    blank = np.array(
        [_is_blank(v) or str(v).strip().lower() in missing for v in values], dtype=bool
    )
    finite = np.isfinite(numbers)
    bad = (~finite & ~blank) | (finite & ((numbers % 1 != 0) | (numbers < 1000) | (numbers > 3000)))
    years = pd.array(np.where(finite & ~bad, numbers, np.nan), dtype="Int32")
    return years, bad
