"""Rankings exported from any system, simulated as one more recommender.

A team evaluates its production model's lists without writing Python: a CSV/TSV or
Parquet file of ``user_id, item_id, rank`` rows (rank 1 is shown first) becomes a
recommender whose list for a user is that user's items by rank. Bad files get the usual
errors naming the file, row and column; a user the file does not rank gets no list.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from personasim.data.reading import read_table_file
from personasim.data.validation import parse_ids
from personasim.errors import DataError

__all__ = ["RANKING_COLUMNS", "RankingsRecommender", "read_rankings"]

RANKING_COLUMNS = ("user_id", "item_id", "rank")


def read_rankings(path: str | Path) -> pd.DataFrame:
    """Read and check a rankings file.

    Returns:
        ``user_id, item_id, rank`` (ids as strings), sorted by user and rank.

    Raises:
        DataError: The file is missing or malformed, a column is missing, an id is
            empty, a rank is not a positive number, or a user ranks an item twice
            (each names the file, the row and the column).
    """
    raw = read_table_file(Path(path))
    raw.require_columns(
        [(column, column) for column in RANKING_COLUMNS],
        fix=f"a rankings file needs the columns {', '.join(RANKING_COLUMNS)}",
    )
    users = parse_ids(raw, "user_id").to_numpy(zero_copy_only=False).astype(str)
    items = parse_ids(raw, "item_id").to_numpy(zero_copy_only=False).astype(str)
    ranks = pd.to_numeric(pd.Series(raw.column("rank").to_pylist()), errors="coerce")
    bad = ~np.isfinite(ranks.to_numpy(dtype="float64")) | (ranks.to_numpy() <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        shown = raw.column("rank")[i].as_py()
        raise DataError(
            f"{shown!r} is not a positive rank",
            file=raw.file,
            row=raw.row_number(i),
            column="rank",
        )
    frame = pd.DataFrame({"user_id": users, "item_id": items, "rank": ranks.to_numpy()})
    twice = frame.duplicated(["user_id", "item_id"])
    if twice.any():
        i = int(np.flatnonzero(twice.to_numpy())[0])
        raise DataError(
            f"user {users[i]!r} ranks item {items[i]!r} twice",
            file=raw.file,
            row=raw.row_number(i),
            column="item_id",
        )
    return frame.sort_values(["user_id", "rank", "item_id"], kind="stable").reset_index(drop=True)


class RankingsRecommender:
    """A recommender whose lists are read from a rankings file."""

    def __init__(self, name: str, path: str | Path) -> None:
        self.name = name
        self.path = Path(path)
        frame = read_rankings(self.path)
        self._lists = frame.groupby("user_id", sort=False)["item_id"].agg(list).to_dict()

    def fit(self, training: pd.DataFrame, *, seed: int) -> None:
        """Nothing to fit: the lists are given."""

    def recommend(self, user_id: str, history: Sequence[str], n: int) -> list[str]:
        """The user's first `n` ranked items that are not in `history`."""
        seen = set(history)
        return [i for i in self._lists.get(str(user_id), []) if i not in seen][:n]
