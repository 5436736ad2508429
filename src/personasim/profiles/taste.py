"""A user's taste in numbers, and its rendering as text without a model.

The statistics feed the prompts (so that a small model gets the facts right), the
profile's fact lines, and the ``template`` backend, which writes the same kind of text
deterministically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from personasim.profiles.traits import LEVEL_NAMES
from personasim.rating_scale import RatingScale

__all__ = [
    "render_profile",
    "render_rationale",
    "render_taste",
    "render_traits",
    "taste_line",
    "taste_from_stats",
    "taste_of",
]

_MIN_GENRE_COUNT = 2
_SHRINK = 3.0


def _decade(year: Any) -> int | None:
    if year is None or (isinstance(year, float) and math.isnan(year)) or pd.isna(year):
        return None
    return int(year) // 10 * 10


def taste_of(history: pd.DataFrame, scale: RatingScale | None = None) -> dict[str, Any]:
    """Statistics of a user's ratings.

    Args:
        history: ``rating, genres, year, train_mean_rating`` of the ratings read so far.
        scale: The log's rating scale (1-5 when None): what counts as high and low.

    Returns:
        A JSON-ready dict: ``n, mean_rating, share_high, share_low, vs_average,
        liked_genres, disliked_genres, top_genres, decades, scale``.
    """
    scale = scale or RatingScale()
    ratings = history["rating"].to_numpy(dtype="float64")
    rated = bool(np.isfinite(ratings).any())  # a click log has none
    if not rated:
        ratings = np.zeros(len(ratings))
    genres: dict[str, tuple[int, float]] = {}
    for names, r in zip(history["genres"], ratings, strict=True):
        for g in names:
            count, total = genres.get(g, (0, 0.0))
            genres[g] = (count + 1, total + float(r))
    decades: dict[int, int] = {}
    for year in history["year"]:
        d = _decade(year)
        if d is not None:
            decades[d] = decades.get(d, 0) + 1
    gaps = (history["rating"] - history["train_mean_rating"]).dropna()
    return taste_from_stats(
        n=len(ratings),
        rating_sum=float(ratings.sum()),
        n_high=int((ratings >= scale.high_from).sum()),
        n_low=int((ratings <= scale.low_to).sum()),
        gap_sum=float(gaps.sum()),
        gap_count=len(gaps),
        genres=genres,
        decades=decades,
        scale=scale,
        rated=rated,
    )


def taste_from_stats(
    *,
    n: int,
    rating_sum: float,
    n_high: int,
    n_low: int,
    gap_sum: float,
    gap_count: int,
    genres: Mapping[str, tuple[int, float]],
    decades: Mapping[int, int],
    scale: RatingScale | None = None,
    rated: bool = True,
) -> dict[str, Any]:
    """:func:`taste_of` from sums and counts, so that huge logs can be aggregated out of
    core (by DuckDB) and only the sums reach Python.

    Args:
        n: Ratings.
        rating_sum: Their sum.
        n_high: High ratings (:attr:`RatingScale.high_from` or more: 4 on 1-5).
        n_low: Low ratings (:attr:`RatingScale.low_to` or less: 2 on 1-5).
        gap_sum: Sum of (rating - item's train mean) over the items that have a mean.
        gap_count: How many items have a mean.
        genres: Genre -> (ratings, sum of ratings).
        decades: Decade (1990 for the 1990s) -> ratings of items of known year.
        scale: The log's rating scale (1-5 when None), kept in the dict for the texts.
        rated: False for a log without ratings: only the genres and decades watched,
            no liked or disliked genres, no rating habits (``"rated": False``).
    """
    mean = rating_sum / n if n else 0.0
    scored = []
    for g, (count, total) in genres.items():
        if count >= _MIN_GENRE_COUNT:
            lift = (total / count - mean) * count / (count + _SHRINK)
            scored.append((lift, count, g))
    liked = [g for lift, _, g in sorted(scored, key=lambda t: (-t[0], -t[1], t[2])) if lift > 0.1]
    disliked = [
        g for lift, _, g in sorted(scored, key=lambda t: (t[0], -t[1], t[2])) if lift < -0.1
    ]
    top = sorted(genres, key=lambda g: (-genres[g][0], g))
    named = {f"{d}s": c for d, c in decades.items()}
    total_known = sum(named.values()) or 1
    eras = [d for d in sorted(named, key=lambda d: (-named[d], d)) if named[d] / total_known >= 0.2]
    taste = {
        "n": n,
        "mean_rating": round(mean, 2),
        "share_high": round(n_high / n if n else 0.0, 2),
        "share_low": round(n_low / n if n else 0.0, 2),
        "vs_average": round(gap_sum / gap_count, 2) if gap_count else 0.0,
        "liked_genres": liked[:3],
        "disliked_genres": disliked[:2],
        "top_genres": top[:3],
        "decades": eras[:2],
        "scale": (scale or RatingScale()).as_list(),
    }
    if not rated:
        taste.update(
            rated=False,
            mean_rating=None,
            share_high=None,
            share_low=None,
            vs_average=None,
            liked_genres=[],
            disliked_genres=[],
        )
    return taste


def _scale_of(taste: Mapping[str, Any]) -> RatingScale:
    """The rating scale a taste was computed on (1-5 for tastes written before it was
    recorded)."""
    return RatingScale(*taste.get("scale", (1.0, 5.0, 1.0)))


def taste_line(taste: Mapping[str, Any]) -> str:
    """A verb phrase for prompts: "likes Comedy, Drama and dislikes Horror"."""
    if not taste.get("rated", True):
        top = taste["top_genres"]
        return f"watches mostly {', '.join(top)}" if top else "watches all kinds of movies"
    liked = taste["liked_genres"] or taste["top_genres"]
    parts = [f"likes {', '.join(liked)}" if liked else "watches all kinds of movies"]
    if taste["disliked_genres"]:
        parts.append(f"dislikes {', '.join(taste['disliked_genres'])}")
    return " and ".join(parts)


def _habit(taste: Mapping[str, Any]) -> str:
    gap = taste["vs_average"]
    if gap >= 0.25:
        kind = f"generous: {gap:.1f} above the average opinion"
    elif gap <= -0.25:
        kind = f"harsh: {-gap:.1f} below the average opinion"
    else:
        kind = "close to the average opinion"
    scale = _scale_of(taste)
    high = scale.levels_text(scale.levels[scale.levels >= scale.high_from])
    low = scale.levels_text(scale.levels[scale.levels <= scale.low_to])
    return (
        f"Rates {taste['mean_rating']:.1f}/{scale.high:g} on average ({kind}); {high} stars "
        f"for {taste['share_high']:.0%} of movies, {low} for {taste['share_low']:.0%}."
    )


def render_taste(taste: Mapping[str, Any]) -> str:
    """The taste as a short paragraph (the ``template`` backend's profile)."""
    sentences = []
    if taste["liked_genres"]:
        sentences.append(f"Enjoys {', '.join(taste['liked_genres'])} movies most.")
    elif taste["top_genres"]:
        sentences.append(f"Mostly watches {', '.join(taste['top_genres'])} movies.")
    if taste["disliked_genres"]:
        sentences.append(f"Tends to dislike {', '.join(taste['disliked_genres'])}.")
    if taste["decades"]:
        sentences.append(f"Watches mostly movies from the {' and '.join(taste['decades'])}.")
    if taste.get("rated", True):
        sentences.append(_habit(taste))
    return " ".join(sentences)


def render_traits(row: Mapping[str, Any], rated: bool = True) -> str:
    """The three traits as a sentence each, with their raw values (`rated`: False for a
    log without ratings, whose conformity is the popularity of what the user watches)."""
    if rated:
        activity = f"{int(row['activity_count'])} ratings"
        conformity = f"mean squared gap to the average rating {row['conformity_gap']:.2f}"
    else:
        activity = f"{int(row['activity_count'])} movies watched"
        share = 1.0 - float(row["conformity_gap"])
        conformity = f"the movies they watch are more popular than {share:.0%} of the catalogue"
    return (
        f"Activity: {LEVEL_NAMES[int(row['activity'])]} ({activity}). "
        f"Conformity: {LEVEL_NAMES[int(row['conformity'])]} ({conformity}). "
        f"Diversity: {LEVEL_NAMES[int(row['diversity'])]} ({int(row['diversity_genres'])} "
        "genres make up 80% of what they watch)."
    )


def render_profile(context: Mapping[str, Any]) -> str:
    """The ``template`` backend's profile of a profile request: its taste, rendered."""
    return render_taste(context["taste"])


def render_rationale(context: Mapping[str, Any]) -> str:
    """A one-sentence reason for a rating, from the taste and the item (no model)."""
    item = context["item"]
    taste = context["taste"]
    scale = _scale_of(taste)
    rating = float(context["rating"])
    genres = item["genres"]
    if math.isnan(rating):  # a log without ratings: why they watched it
        label = ", ".join(genres[:2]) or "movie"
        common = [g for g in genres if g in taste["top_genres"]]
        if common:
            return f"Watched ({label}): {common[0]} is one of the genres they watch most."
        return f"Watched ({label})."
    rated = f"Rated {scale.out_of(rating)}"
    liked = [g for g in genres if g in taste["liked_genres"]]
    disliked = [g for g in genres if g in taste["disliked_genres"]]
    label = ", ".join(genres[:2]) or "movie"
    if rating >= scale.high_from and liked:
        return f"{rated}: a {liked[0]} movie, a genre they love."
    if rating <= scale.low_to and disliked:
        return f"{rated}: {disliked[0]} is a genre they tend to dislike."
    mean = item.get("mean_rating")
    if mean is not None and not (isinstance(mean, float) and math.isnan(mean)):
        near = 0.5 * scale.span
        relation = "above" if rating > mean + near else "below" if rating < mean - near else "near"
        return f"{rated} ({label}), {relation} its {mean:.1f} average."
    return f"{rated} ({label})."
