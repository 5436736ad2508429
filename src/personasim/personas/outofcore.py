"""Taste features of millions of users, out of core.

DuckDB reduces the train ratings to one row of features per user in one grouped scan
(per genre: the summed deviation from the user's mean and the count; the rating mean
and spread; the mean log train count; the mean year), so the personas stage never holds
the ratings in memory; the result is :func:`~personasim.personas.features.taste_features`
of the same ratings, column for column (a test checks it).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from personasim.config import ScaleConfig
from personasim.data.sql import duckdb_connection, sql_literal
from personasim.personas.features import SHRINKAGE

__all__ = ["taste_features_out_of_core"]


def _name(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def taste_features_out_of_core(
    interactions: Path,
    items: Path,
    *,
    scale: ScaleConfig,
    scratch: Path,
    shrinkage: float = SHRINKAGE,
) -> pd.DataFrame:
    """Taste features of every user with train ratings in `interactions`.

    Args:
        interactions: The ingest stage's ``interactions.parquet``.
        items: Its ``items.parquet`` (``genres``, ``train_count``, ``year``).
        scale: DuckDB's memory limit.
        scratch: Where DuckDB spills.
        shrinkage: Pseudo-ratings that shrink each genre's rating lift towards 0.

    Returns:
        The frame :func:`~personasim.personas.features.taste_features` returns.
    """
    with duckdb_connection(scale, scratch) as con:
        con.execute(f"CREATE TEMP VIEW items AS SELECT * FROM read_parquet({sql_literal(items)})")
        columns = {row[0] for row in con.execute("DESCRIBE items").fetchall()}
        genres = [
            row[0]
            for row in con.execute(
                "SELECT DISTINCT g FROM (SELECT unnest(genres) AS g FROM items) "
                "WHERE g IS NOT NULL ORDER BY g"
            ).fetchall()
        ]
        con.execute(
            "CREATE TEMP VIEW rated AS SELECT r.user_id, r.rating::DOUBLE AS rating, "
            "r.rating - avg(r.rating) OVER (PARTITION BY r.user_id) AS dev, i.* EXCLUDE "
            f"(item_id) FROM read_parquet({sql_literal(interactions)}) r JOIN items i "
            "USING (item_id) WHERE r.split = 'train'"
        )
        parts = []
        for genre in genres:
            has = f"list_contains(genres, {sql_literal(genre)})"
            parts.append(
                f"coalesce(sum(dev) FILTER ({has}), 0) / "
                f"(count(*) FILTER ({has}) + {float(shrinkage)!r}) AS {_name('lift:' + genre)}"
            )
        for genre in genres:
            has = f"list_contains(genres, {sql_literal(genre)})"
            parts.append(
                f"(count(*) FILTER ({has}))::DOUBLE / count(*) AS {_name('share:' + genre)}"
            )
        parts += ["avg(rating) AS rating_mean", "stddev_pop(rating) AS rating_spread"]
        if "train_count" in columns:
            parts.append("avg(ln(1 + greatest(train_count, 0))) AS popularity")
        if "year" in columns:
            parts.append("avg(year) AS era")
        frame = con.sql(
            f"SELECT user_id, {', '.join(parts)} FROM rated GROUP BY user_id ORDER BY user_id"
        ).df()
    frame["user_id"] = frame["user_id"].astype(str)
    return frame.set_index("user_id").astype("float64")
