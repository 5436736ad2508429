"""Item metadata of a log: titles, years and genres, from the log's own columns or from
an items file, validated."""

from __future__ import annotations

import logging
import re
from dataclasses import replace

import numpy as np
import pandas as pd

from personasim.config import ColumnMap
from personasim.data.raw_table import RawTable
from personasim.data.reading import read_table_file
from personasim.data.sources import LogSpec
from personasim.data.validation import object_array, parse_ids, parse_years
from personasim.errors import ColumnError, DataError

__all__ = [
    "OPTIONAL_ITEM_COLUMNS",
    "YEAR_IN_TITLE",
    "item_meta_columns",
    "item_table",
    "items_from_log",
    "read_items_file",
    "with_present_item_columns",
]

logger = logging.getLogger(__name__)

YEAR_IN_TITLE = re.compile(r"\((\d{4})\)\s*$")
"""A title's trailing year, as MovieLens writes it: "Heat (1995)"."""

OPTIONAL_ITEM_COLUMNS = ("title", "year", "genres")
"""The item metadata columns of ``data.columns``; a log or items file may lack them."""


def with_present_item_columns(spec: LogSpec, raw: RawTable) -> LogSpec:
    """Drop the optional item columns that are left at their default name and absent.

    A column named explicitly (not the default) must exist; `require_columns` says so.
    """
    defaults = ColumnMap()
    cols = spec.columns
    unset = {
        key: ""
        for key in OPTIONAL_ITEM_COLUMNS
        if getattr(cols, key) == getattr(defaults, key) and getattr(cols, key) not in raw.columns
    }
    if not unset:
        return spec
    return replace(spec, columns=cols.model_copy(update=unset))


def item_meta_columns(spec: LogSpec) -> list[tuple[str, str]]:
    """``(config key, column)`` of the item metadata columns `spec` maps."""
    cols = spec.columns
    return [(k, getattr(cols, k)) for k in OPTIONAL_ITEM_COLUMNS if getattr(cols, k)]


def _split_genres(values: pd.Series, separator: str) -> list[list[str]]:
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append([])
        else:
            out.append([g.strip() for g in str(v).split(separator) if g.strip()])
    return out


def item_table(raw: RawTable, ids: np.ndarray, spec: LogSpec) -> pd.DataFrame:
    """Item metadata from the mapped columns of `raw`, one row per position of `ids`."""
    cols = spec.columns
    n = len(ids)
    items = pd.DataFrame({"item_id": ids})
    if cols.title:
        items["title"] = raw.frame[cols.title].astype("string").str.strip().to_numpy()
    else:
        items["title"] = pd.array([None] * n, dtype="string")
    from_title = pd.to_numeric(
        items["title"].str.extract(YEAR_IN_TITLE, expand=False), errors="coerce"
    ).astype("Int32")
    if cols.year:
        years, bad = parse_years(raw, cols.year, spec.missing_markers)
        items["year"] = pd.Series(years).fillna(from_title).to_numpy()
        unrecovered = bad & items["year"].isna().to_numpy()
        if unrecovered.any():
            i = int(np.flatnonzero(unrecovered)[0])
            logger.warning(
                "%s, row %d, column %r: %r is not a year; %d such value(s) read as unknown",
                raw.file,
                raw.row_number(i),
                cols.year,
                raw.frame[cols.year].iloc[i],
                int(unrecovered.sum()),
            )
    else:
        items["year"] = from_title
    items["genres"] = (
        _split_genres(raw.frame[cols.genres], spec.genres_separator)
        if cols.genres
        else [[] for _ in range(n)]
    )
    return items


def read_items_file(spec: LogSpec) -> pd.DataFrame:
    """The items file of `spec`: ``item_id, title, year, genres``, one row per item.

    Raises:
        DataError: An item is listed twice, or a value is bad (with file, row, column).
        ColumnError: The file has none of the title, year and genres columns (the item
            metadata would be lost without a word).
    """
    assert spec.items_path is not None
    raw = read_table_file(
        spec.items_path, delimiter=spec.delimiter, encoding=spec.encoding, quoting=spec.quoting
    )
    found = with_present_item_columns(spec, raw)
    absent = [
        getattr(spec.columns, key)
        for key in OPTIONAL_ITEM_COLUMNS
        if getattr(spec.columns, key) and not getattr(found.columns, key)
    ]
    has = ", ".join(raw.columns)
    mapped = sum(bool(getattr(spec.columns, key)) for key in OPTIONAL_ITEM_COLUMNS)
    if absent and len(absent) == mapped:
        raise ColumnError(
            f"the items file has none of the columns {', '.join(absent)} (it has: {has}): "
            "map them with --title-col, --year-col and --genres-col (data.columns), or "
            'set the ones it lacks to "" to ingest items without them',
            file=raw.file,
            row=1,
        )
    if absent:
        logger.warning(
            "%s has no column %s (it has: %s): the items have none (map it with data.columns)",
            raw.file,
            " or ".join(absent),
            has,
        )
    spec = found
    raw.require_columns([("item", spec.columns.item), *item_meta_columns(spec)])
    ids = object_array(parse_ids(raw, spec.columns.item))
    dup = pd.Series(ids).duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(
            f"item {ids[i]!r} is listed twice in the items file",
            file=raw.file,
            row=raw.row_number(i),
            column=spec.columns.item,
        )
    return item_table(raw, ids, spec).reset_index(drop=True)


def items_from_log(spec: LogSpec, raw: RawTable, log: pd.DataFrame) -> pd.DataFrame:
    """The item table from the log's own columns: the first row of each item."""
    first = ~pd.Series(log["item_id"].to_numpy()).duplicated().to_numpy()
    positions = (log["row"].to_numpy() - raw.first_row)[first]
    sub = raw.take(positions)
    items = item_table(sub, log["item_id"].to_numpy()[first], spec)
    return items.reset_index(drop=True)
