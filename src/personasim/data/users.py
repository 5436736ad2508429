"""User attributes of a log, from the log's own columns or from a users file, validated."""

from __future__ import annotations

import numpy as np
import pandas as pd

from personasim.data.raw_table import RawTable
from personasim.data.reading import read_table_file
from personasim.data.sources import LogSpec
from personasim.data.validation import object_array, parse_ids
from personasim.errors import DataError

__all__ = ["read_users_file", "users_from_log"]


def _user_table(
    raw: RawTable, ids: np.ndarray, spec: LogSpec, attributes: list[str]
) -> pd.DataFrame:
    users = pd.DataFrame({"user_id": ids})
    for col in attributes:
        name = spec.attribute_names.get(col, col)
        values = raw.frame[col].astype("string").str.strip()
        decode = spec.attribute_decoders.get(name)
        if decode is not None:
            values = values.map(lambda v, d=decode: d(v) if isinstance(v, str) else v)
        users[name] = values.astype("string").to_numpy()
    return users


def read_users_file(spec: LogSpec) -> pd.DataFrame:
    """The users file of `spec`: ``user_id`` plus attribute columns, one row per user.

    Raises:
        DataError: A user is listed twice (with file, row and column).
    """
    assert spec.users_path is not None
    raw = read_table_file(
        spec.users_path, delimiter=spec.delimiter, encoding=spec.encoding, quoting=spec.quoting
    )
    attributes = list(spec.columns.user_attributes) or [
        c for c in raw.frame.columns if c != spec.columns.user
    ]
    raw.require_columns(
        [("user", spec.columns.user), *[("user_attributes", a) for a in attributes]]
    )
    ids = object_array(parse_ids(raw, spec.columns.user))
    dup = pd.Series(ids).duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(
            f"user {ids[i]!r} is listed twice in the users file",
            file=raw.file,
            row=raw.row_number(i),
            column=spec.columns.user,
        )
    return _user_table(raw, ids, spec, attributes)


def users_from_log(spec: LogSpec, raw: RawTable, log: pd.DataFrame) -> pd.DataFrame:
    """The user table from the log's own columns: the first row of each user."""
    first = ~pd.Series(log["user_id"].to_numpy()).duplicated().to_numpy()
    positions = (log["row"].to_numpy() - raw.first_row)[first]
    sub = raw.take(positions)
    return _user_table(sub, log["user_id"].to_numpy()[first], spec, spec.columns.user_attributes)
