"""Repeated ratings of one item by one user: refused with the row of the repeat, or the
latest of each kept (``data.duplicates = "keep_last"``)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from personasim.data.raw_table import RawTable
from personasim.data.sources import LogSpec
from personasim.errors import DataError

__all__ = ["resolve_duplicates"]

logger = logging.getLogger(__name__)


def _pair_keys(frame: pd.DataFrame) -> np.ndarray:
    """One int64 per (user, item) pair: hashing two ints is much cheaper than two strings."""
    users = pd.factorize(frame["user_id"])[0].astype("int64")
    items, item_ids = pd.factorize(frame["item_id"])
    return users * len(item_ids) + items


def resolve_duplicates(frame: pd.DataFrame, raw: RawTable, spec: LogSpec) -> pd.DataFrame:
    """`frame` without repeated (user, item) pairs, as `spec.duplicates` says.

    Raises:
        DataError: A repeat, with its row, unless the latest of each is kept.
    """
    keys = pd.Series(_pair_keys(frame))
    if not keys.duplicated().any():
        return frame
    if spec.duplicates == "keep_last":
        kept = frame.sort_values(["timestamp", "row"]).drop_duplicates(
            ["user_id", "item_id"], keep="last"
        )
        logger.warning(
            "%s: %d repeated ratings of the same item by the same user; kept the latest of each",
            raw.file,
            len(frame) - len(kept),
        )
        return kept.sort_values("row")
    later = keys.duplicated(keep="first")
    i = int(np.flatnonzero(later.to_numpy())[0])
    user, item = frame.iloc[i]["user_id"], frame.iloc[i]["item_id"]
    same = frame[(frame.user_id == user) & (frame.item_id == item)]
    first_row = int(same["row"].iloc[0])
    raise DataError(
        f"user {user!r} rated item {item!r} again (first in row {first_row}); remove the "
        'duplicate or set data.duplicates = "keep_last"',
        file=raw.file,
        row=raw.row_number(i),
        column=spec.columns.item,
    )
