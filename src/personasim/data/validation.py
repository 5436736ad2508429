"""Turning raw columns into typed ones, refusing bad values with their exact location."""

from __future__ import annotations

import numpy as np
import pandas as pd

from personasim.data.reading import RawTable
from personasim.errors import DataError

__all__ = ["MISSING_MARKERS", "parse_ids", "parse_ratings", "parse_timestamps", "parse_years"]


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def parse_ids(raw: RawTable, column: str) -> np.ndarray:
    """An id column as stripped strings.

    Raises:
        DataError: An id is empty or missing.
    """
    values = raw.frame[column]
    if values.dtype.kind == "f":
        # Parquet float ids (1.0): ids are labels, so print them without the ".0".
        missing = values.isna().to_numpy()
        if missing.any():
            i = _first_bad(missing)
            raise DataError(
                "the id is missing", file=raw.file, row=raw.row_number(i), column=column
            )
        if (values % 1 == 0).all():
            values = values.astype("int64")
    text = values.astype("string").str.strip()
    empty = (text.isna() | (text == "")).to_numpy()
    if empty.any():
        i = _first_bad(empty)
        raise DataError("the id is empty", file=raw.file, row=raw.row_number(i), column=column)
    return text.to_numpy(dtype=object)


def parse_ratings(raw: RawTable, column: str, scale: tuple[float, float]) -> np.ndarray:
    """A rating column as float64, every value a number on `scale`.

    Raises:
        DataError: A value is missing, not a number, or outside the scale.
    """
    values = raw.frame[column]
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isfinite(numbers)
    if bad.any():
        i = _first_bad(bad)
        shown = values.iloc[i]
        what = "the rating is missing" if _is_blank(shown) else f"{shown!r} is not a number"
        raise DataError(what, file=raw.file, row=raw.row_number(i), column=column)
    low, high = scale
    out = (numbers < low) | (numbers > high)
    if out.any():
        i = _first_bad(out)
        raise DataError(
            f"rating {numbers[i]:g} is outside the rating scale [{low:g}, {high:g}] "
            "(data.rating_scale)",
            file=raw.file,
            row=raw.row_number(i),
            column=column,
        )
    return numbers


def _is_blank(value: object) -> bool:
    return (
        value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == ""
    )


def parse_timestamps(raw: RawTable, column: str) -> np.ndarray:
    """A time column as int64 epoch seconds.

    Accepts whole numbers (taken as epoch seconds, as in MovieLens) or ISO-8601 dates
    and times (converted to UTC epoch seconds).

    Raises:
        DataError: A value is missing, fractional, or not a time.
    """
    values = raw.frame[column]
    if values.dtype.kind == "M":  # Parquet timestamps
        series = pd.to_datetime(values, utc=True)
        missing = series.isna().to_numpy()
        if missing.any():
            i = _first_bad(missing)
            raise DataError(
                "the time is missing", file=raw.file, row=raw.row_number(i), column=column
            )
        return (series.astype("int64") // 10**9).to_numpy(dtype="int64")
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    numeric = np.isfinite(numbers)
    if numeric.all():
        frac = numbers % 1 != 0
        if frac.any():
            i = _first_bad(frac)
            raise DataError(
                f"{values.iloc[i]!r} is not a whole number of seconds; timestamps are epoch "
                "seconds or ISO-8601 dates",
                file=raw.file,
                row=raw.row_number(i),
                column=column,
            )
        return numbers.astype("int64")
    if numeric.any():
        # A mix: the non-numeric ones are the odd ones out.
        i = _first_bad(~numeric)
        shown = values.iloc[i]
        what = "the time is missing" if _is_blank(shown) else f"{shown!r} is not a time"
        raise DataError(
            f"{what} (other rows hold epoch seconds)",
            file=raw.file,
            row=raw.row_number(i),
            column=column,
        )
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = _first_bad(bad)
        shown = values.iloc[i]
        what = "the time is missing" if _is_blank(shown) else f"{shown!r} is not a time"
        raise DataError(
            f"{what}; timestamps are epoch seconds or ISO-8601 dates",
            file=raw.file,
            row=raw.row_number(i),
            column=column,
        )
    return (parsed.astype("int64") // 10**9).to_numpy(dtype="int64")


MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none", "unknown", "-", "?"})
"""Values of optional metadata columns that mean "unknown" (compared lower-case)."""


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
