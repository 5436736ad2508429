"""Synthetic logs with known structure, for tests and examples.

Users belong to latent personas; each persona likes some genres and dislikes others, so
ratings carry a signal that models (and later, clustering) can recover.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["SyntheticLog", "synthetic_log", "write_large_log"]

GENRES = ("Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Animation")


@dataclass
class SyntheticLog:
    """A generated log: ratings, items, users and each user's true persona."""

    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame

    def write_csv(self, folder: Path) -> tuple[Path, Path, Path]:
        """Write ``ratings.csv``, ``items.csv`` and ``users.csv``; return their paths.

        Column names are those of the default mapping (`user_id`, `item_id`, `rating`,
        `timestamp`; items: `title`, `year`, `genres` separated by "|").
        """
        folder.mkdir(parents=True, exist_ok=True)
        paths = folder / "ratings.csv", folder / "items.csv", folder / "users.csv"
        self.ratings.to_csv(paths[0], index=False)
        items = self.items.assign(genres=self.items["genres"].map("|".join))
        items.to_csv(paths[1], index=False)
        self.users.to_csv(paths[2], index=False)
        return paths


def synthetic_log(
    n_users: int = 60,
    n_items: int = 120,
    *,
    ratings_per_user: tuple[int, int] = (20, 40),
    n_personas: int = 3,
    noise: float = 0.5,
    seed: int = 0,
) -> SyntheticLog:
    """Generate a log whose ratings follow latent personas.

    Args:
        n_users: Users.
        n_items: Items (each with one to three genres, a year and a quality).
        ratings_per_user: Inclusive range of each user's number of ratings.
        n_personas: Latent personas; each favours two genres and dislikes one.
        noise: Standard deviation of the rating noise.
        seed: Seed of everything.
    """
    rng = np.random.default_rng(seed)
    genres = np.array(GENRES)
    item_genres = [
        sorted(rng.choice(genres, size=rng.integers(1, 4), replace=False).tolist())
        for _ in range(n_items)
    ]
    quality = rng.normal(0.0, 0.5, n_items)
    popularity = rng.zipf(1.6, n_items).astype(float)
    popularity /= popularity.sum()
    likes = [rng.choice(genres, size=2, replace=False) for _ in range(n_personas)]
    dislikes = [rng.choice([g for g in genres if g not in liked]) for liked in likes]
    persona = rng.integers(0, n_personas, n_users)

    rows = []
    for u in range(n_users):
        n = int(rng.integers(ratings_per_user[0], ratings_per_user[1] + 1))
        n = min(n, n_items)
        chosen = rng.choice(n_items, size=n, replace=False, p=popularity)
        start = 900_000_000 + int(rng.integers(0, 10_000_000))
        times = start + np.sort(rng.integers(0, 5_000_000, n))
        p = persona[u]
        for i, t in zip(chosen, times, strict=True):
            affinity = sum(g in likes[p] for g in item_genres[i]) - 1.5 * (
                dislikes[p] in item_genres[i]
            )
            score = 3.3 + quality[i] + 0.7 * affinity + rng.normal(0.0, noise)
            rows.append((f"u{u}", f"i{i}", float(np.clip(np.rint(score), 1, 5)), int(t)))
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n_items)],
            "title": [f"Movie {i}" for i in range(n_items)],
            "year": rng.integers(1950, 2020, n_items),
            "genres": item_genres,
        }
    )
    users = pd.DataFrame(
        {
            "user_id": [f"u{u}" for u in range(n_users)],
            "age": rng.integers(18, 70, n_users).astype(str),
            "persona": [f"p{k}" for k in persona],
        }
    )
    return SyntheticLog(ratings=ratings, items=items, users=users)


def write_large_log(
    folder: Path,
    n_users: int,
    *,
    n_items: int = 3000,
    ratings_per_user: tuple[int, int] = (50, 150),
    n_personas: int = 8,
    noise: float = 0.5,
    seed: int = 0,
    chunk_users: int = 5000,
) -> tuple[Path, Path, Path]:
    """Write a log of any size, chunk by chunk, in bounded memory.

    The same model as :func:`synthetic_log`, vectorised: each latent persona likes two
    genres and dislikes one; a user picks a number of distinct items (uniform in
    `ratings_per_user`, 100 on average by default) with
    probability growing with popularity and with the persona's affinity, and rates them
    3.3 + quality + 0.7 x affinity + noise (rounded, clipped to 1-5). The true persona of
    every user is in ``personas.parquet`` (``user_id, persona``) to check clustering
    against; it is not a user attribute of the log.

    Args:
        folder: Where ``ratings.parquet``, ``items.csv`` and ``personas.parquet`` go.
        n_users: Users (1,000,000 users are about 100M rows, 0.6 GB of Parquet).
        n_items: Items.
        ratings_per_user: Inclusive range of each user's number of ratings.
        n_personas: Latent personas.
        noise: Standard deviation of the rating noise.
        seed: Seed of everything (the log depends on it and on `chunk_users`).
        chunk_users: Users generated at a time (memory is about 8 x chunk x items bytes).

    Returns:
        The paths of the ratings, items and true-persona files.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from personasim.workspace import atomic_path

    low, high = ratings_per_user
    if not 1 <= low <= high <= n_items:
        raise ValueError("ratings_per_user must be 1 <= low <= high <= n_items")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_genres = len(GENRES)
    member = np.zeros((n_items, n_genres), dtype=bool)
    for i in range(n_items):
        member[i, rng.choice(n_genres, size=rng.integers(1, 4), replace=False)] = True
    quality = rng.normal(0.0, 0.5, n_items)
    log_popularity = np.log(rng.zipf(1.6, n_items).astype(float))
    affinity = np.zeros((n_personas, n_items))
    for p in range(n_personas):
        liked = rng.choice(n_genres, size=2, replace=False)
        disliked = rng.choice([g for g in range(n_genres) if g not in liked])
        affinity[p] = member[:, liked].sum(axis=1) - 1.5 * member[:, disliked]
    persona = rng.integers(0, n_personas, n_users)

    item_ids = pa.array([f"i{i}" for i in range(n_items)])
    paths = folder / "ratings.parquet", folder / "items.csv", folder / "personas.parquet"
    schema = pa.schema(
        [
            ("user_id", pa.dictionary(pa.int32(), pa.string())),
            ("item_id", pa.dictionary(pa.int32(), pa.string())),
            ("rating", pa.float64()),
            ("timestamp", pa.int64()),
        ]
    )
    k = high
    with atomic_path(paths[0]) as tmp, pq.ParquetWriter(tmp, schema, compression="zstd") as out:
        for start in range(0, n_users, chunk_users):
            users = np.arange(start, min(start + chunk_users, n_users))
            taste = affinity[persona[users]]
            # Gumbel top-k: k distinct items drawn with weights exp(keys).
            keys = log_popularity + 0.5 * taste + rng.gumbel(size=(len(users), n_items))
            chosen = np.argpartition(-keys, k - 1, axis=1)[:, :k]
            # Each user keeps the first n of its k drawn items (a uniform subset of them).
            keep = np.arange(k)[None, :] < rng.integers(low, high + 1, len(users))[:, None]
            rows = np.take_along_axis(taste, chosen, axis=1)
            score = 3.3 + quality[chosen] + 0.7 * rows + rng.normal(0.0, noise, chosen.shape)
            begin = 900_000_000 + rng.integers(0, 10_000_000, len(users))
            times = begin[:, None] + np.sort(rng.integers(0, 5_000_000, chosen.shape), axis=1)
            owner = np.broadcast_to(np.arange(len(users), dtype="int32")[:, None], keep.shape)
            names = pa.array([f"u{u}" for u in users])
            table = pa.table(
                [
                    pa.DictionaryArray.from_arrays(pa.array(owner[keep]), names),
                    pa.DictionaryArray.from_arrays(
                        pa.array(chosen[keep].astype("int32")), item_ids
                    ),
                    pa.array(np.clip(np.rint(score[keep]), 1, 5)),
                    pa.array(times[keep].astype("int64")),
                ],
                schema=schema,
            )
            out.write_table(table)
    items = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n_items)],
            "title": [f"Movie {i}" for i in range(n_items)],
            "year": rng.integers(1950, 2020, n_items),
            "genres": ["|".join(np.array(GENRES)[row]) for row in member],
        }
    )
    with atomic_path(paths[1]) as tmp:
        items.to_csv(tmp, index=False)
    users_table = pa.table(
        {
            "user_id": [f"u{u}" for u in range(n_users)],
            "persona": pa.DictionaryArray.from_arrays(
                pa.array(persona.astype("int32")), pa.array([f"p{p}" for p in range(n_personas)])
            ),
        }
    )
    with atomic_path(paths[2]) as tmp:
        pq.write_table(users_table, tmp, compression="zstd")
    return paths
