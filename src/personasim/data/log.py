"""Loading a log into typed tables: interactions, items and users, all validated.

A custom CSV/TSV/Parquet log is read here; its items and users come from
:mod:`~personasim.data.items` and :mod:`~personasim.data.users`, and a MovieLens
download from :mod:`~personasim.data.movielens`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from personasim.data.duplicates import resolve_duplicates
from personasim.data.items import (
    item_meta_columns,
    items_from_log,
    read_items_file,
    with_present_item_columns,
)
from personasim.data.movielens import read_movielens
from personasim.data.raw_table import RawTable
from personasim.data.reading import read_table_file
from personasim.data.sources import LogSpec
from personasim.data.users import read_users_file, users_from_log
from personasim.data.validation import object_array, parse_ids, parse_ratings, parse_timestamps
from personasim.errors import DataError

__all__ = ["Log", "load_log"]


@dataclass
class Log:
    """A validated interaction log.

    Attributes:
        interactions: ``user_id, item_id, rating, timestamp`` plus ``row``, the row of
            each rating in `file` (for error messages). Ids are strings.
        items: ``item_id, title, year, genres`` for every item of the log and of the
            items file.
        users: ``user_id`` plus attribute columns (strings), one row per user.
        file: The interaction file (for messages).
        user_column: Name of the user column in `file` (for messages).
        inputs: Every file read, for hashing into the manifest.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    file: Path
    user_column: str
    inputs: list[Path] = field(default_factory=list)
    timestamps_from_order: bool = False


def load_log(spec: LogSpec) -> Log:
    """Read and validate a log.

    Raises:
        DataError: With file, row and column of the first problem found.
        ColumnError: A mapped column is missing (usage error).
    """
    if spec.movielens_dir:
        interactions, items, users, inputs = read_movielens(spec)
        return Log(
            interactions=interactions,
            items=items,
            users=users,
            file=spec.path,
            user_column="user_id",
            inputs=inputs,
        )
    cols = spec.columns
    raw = read_table_file(
        spec.path, delimiter=spec.delimiter, encoding=spec.encoding, quoting=spec.quoting
    )
    needed = [("user", cols.user), ("item", cols.item)]
    if cols.rating:
        needed.append(("rating", cols.rating))
    if cols.timestamp:
        needed.append(("timestamp", cols.timestamp))
    if spec.items_path is None:
        spec = with_present_item_columns(spec, raw)
        needed += item_meta_columns(spec)
    if spec.users_path is None:
        needed += [("user_attributes", a) for a in cols.user_attributes]
    raw.require_columns(needed)

    frame = pd.DataFrame(
        {
            "user_id": object_array(parse_ids(raw, cols.user)),
            "item_id": object_array(parse_ids(raw, cols.item)),
            "rating": (
                parse_ratings(raw, cols.rating, spec.scale)
                if cols.rating
                else np.full(raw.table.num_rows, np.nan)  # a click log: no rating
            ),
        }
    )
    if cols.timestamp:
        frame["timestamp"] = parse_timestamps(raw, cols.timestamp)
    else:
        frame["timestamp"] = np.arange(len(frame), dtype="int64")
    frame["row"] = np.arange(raw.first_row, raw.first_row + len(frame), dtype="int64")
    frame = resolve_duplicates(frame, raw, spec)

    if spec.items_path is not None:
        items = _items_from_file(spec, frame, raw)
    else:
        items = items_from_log(spec, raw, frame)
    if spec.users_path is not None:
        users = _users_from_file(spec, frame, raw)
    else:
        users = users_from_log(spec, raw, frame)

    inputs = [p for p in (spec.path, spec.items_path, spec.users_path) if p is not None]
    return Log(
        interactions=frame.reset_index(drop=True),
        items=items,
        users=users,
        file=spec.path,
        user_column=cols.user,
        inputs=inputs,
        timestamps_from_order=not cols.timestamp,
    )


def _items_from_file(spec: LogSpec, log: pd.DataFrame, log_raw: RawTable) -> pd.DataFrame:
    items = read_items_file(spec)
    assert spec.items_path is not None
    known = set(items["item_id"])
    _require_known(log, "item_id", known, log_raw, spec.columns.item, spec.items_path, "item")
    return items


def _require_known(
    log: pd.DataFrame,
    key: str,
    known: set[str],
    log_raw: RawTable,
    column: str,
    mapping_file: Path,
    what: str,
) -> None:
    unknown = ~log[key].isin(known).to_numpy()
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise DataError(
            f"{what} {log[key].iloc[i]!r} is not in {mapping_file} "
            f"({int(unknown.sum())} rating(s) name {what}s missing there); check that both "
            "files use the same ids",
            file=log_raw.file,
            row=int(log["row"].iloc[i]),
            column=column,
        )


def _users_from_file(spec: LogSpec, log: pd.DataFrame, log_raw: RawTable) -> pd.DataFrame:
    users = read_users_file(spec)
    assert spec.users_path is not None
    known = set(users["user_id"])
    _require_known(log, "user_id", known, log_raw, spec.columns.user, spec.users_path, "user")
    return users[users.user_id.isin(set(log.user_id))].reset_index(drop=True)
