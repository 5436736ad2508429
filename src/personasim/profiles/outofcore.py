"""Template profiles of millions of users, out of core.

DuckDB reduces the train ratings to a few sums per user, per (user, genre) and per
(user, decade); Python renders the text of a batch of users at a time from those sums
with the same functions as the in-memory path (:func:`taste_from_stats`,
:func:`trait_levels`), so the profiles are the same, text for text.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from personasim.config import ScaleConfig
from personasim.data.sql import duckdb_connection, sql_literal
from personasim.profiles.builder import PROFILE_COLUMNS, compose_profile
from personasim.profiles.taste import render_taste, taste_from_stats
from personasim.profiles.traits import GENRE_MASS_SHARE, trait_levels
from personasim.progress import progress
from personasim.rating_scale import RatingScale
from personasim.workspace import atomic_path

__all__ = ["template_profiles_out_of_core"]

logger = logging.getLogger(__name__)

_EXTRA = [
    "activity_count",
    "conformity_gap",
    "diversity_genres",
    "taste_facts",
    "taste_summary",
]
_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("activity", pa.int8()),
        ("conformity", pa.int8()),
        ("diversity", pa.int8()),
        ("profile_text", pa.string()),
        ("activity_count", pa.int64()),
        ("conformity_gap", pa.float64()),
        ("diversity_genres", pa.int64()),
        ("taste_facts", pa.string()),
        ("taste_summary", pa.string()),
    ]
)


def _aggregate(con: Any, interactions: Path, items: Path, ratings: RatingScale) -> pd.DataFrame:
    """Per-user sums (one scan) and the genre/decade tables; return the raw traits."""
    con.execute(
        "CREATE TEMP VIEW train AS SELECT i.user_id, i.rating, it.genres, it.year, "
        f"it.train_mean_rating AS m FROM read_parquet({sql_literal(interactions)}) i "
        f"JOIN read_parquet({sql_literal(items)}) it USING (item_id) WHERE i.split = 'train'"
    )
    con.execute(
        "CREATE TEMP TABLE user_sums AS SELECT user_id, count(*) AS n, sum(rating) AS s, "
        f"count(*) FILTER (rating >= {ratings.high_from!r}) AS hi, "
        f"count(*) FILTER (rating <= {ratings.low_to!r}) AS lo, "
        "sum(rating - m) AS gap_sum, count(rating - m) AS gap_n, "
        "avg((rating - m) * (rating - m)) AS conformity_gap FROM train GROUP BY user_id "
        "ORDER BY user_id"
    )
    con.execute(
        "CREATE TEMP TABLE genre_sums AS SELECT user_id, g AS genre, count(*) AS c, "
        "sum(rating) AS s FROM (SELECT user_id, rating, unnest(genres) AS g FROM train) "
        "GROUP BY user_id, g ORDER BY user_id"
    )
    con.execute(
        "CREATE TEMP TABLE decade_sums AS SELECT user_id, (year // 10) * 10 AS d, "
        "count(*) AS c FROM train WHERE year IS NOT NULL GROUP BY user_id, d ORDER BY user_id"
    )
    # Genres (most rated first) covering 80% of the genre mass, as diversity_count does.
    share = GENRE_MASS_SHARE - 1e-12
    return con.sql(
        "SELECT u.user_id, u.n AS activity_count, u.conformity_gap, "
        "coalesce(d.k, 0) AS diversity_genres FROM user_sums u LEFT JOIN ("
        f"SELECT user_id, count(*) FILTER (cum / total < {share!r}) + 1 AS k FROM ("
        "SELECT user_id, sum(c) OVER (PARTITION BY user_id ORDER BY c DESC ROWS UNBOUNDED "
        "PRECEDING)::DOUBLE AS cum, sum(c) OVER (PARTITION BY user_id)::DOUBLE AS total "
        "FROM genre_sums) GROUP BY user_id) d USING (user_id) ORDER BY u.user_id"
    ).df()


def _grouped(frame: pd.DataFrame, key: str, values: list[str]) -> dict[str, dict[Any, Any]]:
    out: dict[str, dict[Any, Any]] = {}
    columns = [frame[c].tolist() for c in ["user_id", key, *values]]
    for user, k, *v in zip(*columns, strict=True):
        out.setdefault(user, {})[k] = tuple(v) if len(v) > 1 else v[0]
    return out


def _render_batch(con: Any, traits: pd.DataFrame, ratings: RatingScale) -> pa.Table:
    """The profile rows of a batch of users (consecutive in user order)."""
    first, last = traits["user_id"].iloc[0], traits["user_id"].iloc[-1]
    where = "WHERE user_id BETWEEN ? AND ?"
    sums = con.execute(
        f"SELECT user_id, s, hi, lo, gap_sum, gap_n FROM user_sums {where} ORDER BY user_id",
        [first, last],
    ).df()
    genres = _grouped(
        con.execute(f"SELECT user_id, genre, c, s FROM genre_sums {where}", [first, last]).df(),
        "genre",
        ["c", "s"],
    )
    decades = _grouped(
        con.execute(f"SELECT user_id, d, c FROM decade_sums {where}", [first, last]).df(),
        "d",
        ["c"],
    )
    rows = []
    for t, s in zip(traits.to_dict("records"), sums.itertuples(index=False), strict=True):
        user = t["user_id"]
        taste = taste_from_stats(
            n=int(t["activity_count"]),
            rating_sum=float(s.s),
            n_high=int(s.hi),
            n_low=int(s.lo),
            gap_sum=float(s.gap_sum) if s.gap_n else 0.0,
            gap_count=int(s.gap_n),
            genres={g: (int(c), float(v)) for g, (c, v) in genres.get(user, {}).items()},
            decades={int(d): int(c) for d, c in decades.get(user, {}).items()},
            scale=ratings,
        )
        facts = render_taste(taste)
        rows.append(
            {
                **t,
                "taste_facts": facts,
                "taste_summary": facts,
                "profile_text": compose_profile(t, taste, facts),
            }
        )
    frame = pd.DataFrame(rows)[PROFILE_COLUMNS + _EXTRA]
    return pa.Table.from_pandas(frame, preserve_index=False).cast(_SCHEMA)


def template_profiles_out_of_core(
    interactions: Path,
    items: Path,
    out: Path,
    *,
    scale: ScaleConfig,
    scratch: Path,
    ratings: RatingScale | None = None,
) -> dict[str, Any]:
    """Write ``profiles.parquet`` (template backend) of every user of `interactions`.

    Args:
        interactions: The ingest stage's ``interactions.parquet``.
        items: Its ``items.parquet``.
        out: Where ``profiles.parquet`` goes (written atomically).
        scale: DuckDB's memory limit and the users per rendered batch.
        scratch: DuckDB's spill folder.
        ratings: The log's rating scale (1-5 when None).

    Returns:
        Users, seconds and users per second.
    """
    started = time.perf_counter()
    ratings = ratings or RatingScale()
    with duckdb_connection(scale, scratch) as con:
        with progress("aggregating train ratings", total=None):
            raw = _aggregate(con, interactions, items, ratings)
        traits = trait_levels(raw).astype({"activity": "int8", "conformity": "int8"})
        traits = traits.astype({"diversity": "int8", "diversity_genres": "int64"})
        columns = ["user_id", "activity_count", "activity", "conformity_gap", "conformity"]
        traits = traits[columns + ["diversity_genres", "diversity"]]
        size = scale.batch_users
        with (
            atomic_path(out) as tmp,
            pq.ParquetWriter(tmp, _SCHEMA, compression="zstd") as writer,
            progress("template profiles", total=len(traits), unit="users") as advance,
        ):
            for start in range(0, len(traits), size):
                batch = traits.iloc[start : start + size]
                writer.write_table(_render_batch(con, batch, ratings))
                advance(len(batch))
    seconds = time.perf_counter() - started
    logger.info("profile (out of core): %d users in %.1f s", len(traits), seconds)
    return {
        "users": len(traits),
        "seconds": round(seconds, 2),
        "users_per_s": round(len(traits) / seconds, 1) if seconds > 0 else None,
    }
