"""Synthetic logs with known structure, for tests and examples.

Users belong to latent personas; each persona likes some genres and dislikes others, so
ratings carry a signal that models (and later, clustering) can recover.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["SyntheticLog", "synthetic_log"]

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
