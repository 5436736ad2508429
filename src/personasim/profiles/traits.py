"""Agent4Rec's social traits, from the train part only.

- activity: number of ratings; levels cut at the 60th and 90th percentile of users;
- conformity: mean squared gap between the user's ratings and the items' average
  ratings (train-only item means); cut at the 25th and 80th percentile, a small gap
  meaning high conformity. A log without ratings: 1 - the mean popularity percentile
  of the user's items (train counts), small when they watch what many watch;
- diversity: the number of genres that cover 80% of the user's genre mass (each rated
  item adds one to each of its genres); cut at the 33rd and 66th percentile.

Levels are 1 (low) to 3 (high). Percentiles are over the users being profiled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "LEVEL_NAMES",
    "compute_traits",
    "diversity_count",
    "diversity_from_counts",
    "level",
    "trait_levels",
]

LEVEL_NAMES = {1: "low", 2: "medium", 3: "high"}

ACTIVITY_CUTS = (60, 90)
CONFORMITY_CUTS = (25, 80)
DIVERSITY_CUTS = (33, 66)
GENRE_MASS_SHARE = 0.8


def level(
    values: np.ndarray,
    cuts: tuple[float, float],
    *,
    reverse: bool = False,
    reference: np.ndarray | None = None,
) -> np.ndarray:
    """1-3 levels: up to the first percentile cut is 1, up to the second 2, above 3.

    Args:
        values: The raw values to level.
        cuts: The two percentiles.
        reverse: Low values get the high level (a small conformity gap means high
            conformity).
        reference: Take the percentiles of these values instead (to level new users
            against an existing population).
    """
    values = np.asarray(values, dtype="float64")
    base = values if reference is None else np.asarray(reference, dtype="float64")
    low, high = np.percentile(base, cuts)
    levels = np.where(values <= low, 1, np.where(values <= high, 2, 3))
    return (4 - levels) if reverse else levels


def diversity_count(genres_per_item: list[list[str]], share: float = GENRE_MASS_SHARE) -> int:
    """How many genres (most frequent first) cover `share` of a user's genre mass."""
    counts: dict[str, int] = {}
    for genres in genres_per_item:
        for g in genres:
            counts[g] = counts.get(g, 0) + 1
    return diversity_from_counts(list(counts.values()), share)


def diversity_from_counts(counts: list[int], share: float = GENRE_MASS_SHARE) -> int:
    """:func:`diversity_count` from the number of rated items of each genre."""
    if not counts:
        return 0
    ordered = np.sort(np.asarray(counts, dtype="float64"))[::-1]
    cumulative = np.cumsum(ordered) / ordered.sum()
    return int(np.searchsorted(cumulative, share - 1e-12) + 1)


def compute_traits(
    train: pd.DataFrame, items: pd.DataFrame, reference: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The three traits of every user with train ratings.

    Args:
        train: ``user_id, item_id, rating`` of the train part.
        items: ``item_id, genres, train_mean_rating, train_count`` (train-only
            statistics).
        reference: Raw traits of an existing population (as returned here) whose
            percentiles cut the levels; by default the users' own.

    Returns:
        ``user_id, activity_count, activity, conformity_gap, conformity,
        diversity_genres, diversity`` sorted by user.
    """
    meta = items.set_index("item_id")
    joined = train.join(meta[["genres", "train_mean_rating"]], on="item_id")
    if joined["rating"].notna().any():
        gap = (joined["rating"] - joined["train_mean_rating"]) ** 2
    else:  # a log without ratings: conforming is watching what many watch
        popularity = meta["train_count"].rank(pct=True)
        gap = 1.0 - joined["item_id"].map(popularity)
    grouped = joined.assign(gap=gap).groupby("user_id", sort=True)
    out = pd.DataFrame(
        {
            "activity_count": grouped.size(),
            "conformity_gap": grouped["gap"].mean(),
            "diversity_genres": grouped["genres"].agg(lambda g: diversity_count(list(g))),
        }
    ).reset_index()
    return trait_levels(out, reference)


def trait_levels(raw: pd.DataFrame, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """Add the 1-3 levels to raw traits (``user_id, activity_count, conformity_gap,
    diversity_genres``), cut at the percentiles of `reference` (default: `raw`'s own)."""
    out = raw.copy()
    ref = out if reference is None else reference
    for name, raw, cuts, reverse in (
        ("activity", "activity_count", ACTIVITY_CUTS, False),
        ("conformity", "conformity_gap", CONFORMITY_CUTS, True),
        ("diversity", "diversity_genres", DIVERSITY_CUTS, False),
    ):
        out[name] = level(out[raw].to_numpy(), cuts, reverse=reverse, reference=ref[raw].to_numpy())
    columns = ["user_id", "activity_count", "activity", "conformity_gap", "conformity"]
    return out[columns + ["diversity_genres", "diversity"]].astype(
        {"activity": "int8", "conformity": "int8", "diversity": "int8"}
    )
