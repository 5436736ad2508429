"""Ask a recommender for many users' lists at once, and cut a row of scores to its top N.

:func:`recommend_many` takes a recommender's own ``recommend_many`` where it has one (the
LensKit recommenders, :mod:`personasim.simulation.lenskit_recommender`, score a batch of
users in one product) and asks user by user otherwise; either way each list is cut to `n`
items the user has not seen. :func:`top_positions` is the cut of one row of scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from personasim.simulation.recommenders import Recommender

__all__ = ["recommend_many", "top_positions"]


def top_positions(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the `n` highest scores, best first (NaN never; ties: first position
    first)."""
    valid = np.flatnonzero(~np.isnan(scores))
    if n < len(valid):
        valid = valid[np.argpartition(-scores[valid], n - 1)[:n]] if n > 0 else valid[:0]
    return valid[np.lexsort((valid, -scores[valid]))]


def recommend_many(
    recommender: Recommender, users: Sequence[str], histories: Sequence[Sequence[str]], n: int
) -> list[list[str]]:
    """Up to `n` new items for each user (none of their history), best first: batched
    where the recommender has ``recommend_many``, else one ``recommend`` per user."""
    many = getattr(recommender, "recommend_many", None)
    if callable(many):
        lists = many(list(users), [list(h) for h in histories], n)
    else:
        lists = [
            recommender.recommend(u, h, n + len(h)) for u, h in zip(users, histories, strict=True)
        ]
    out = []
    for ranking, history in zip(lists, histories, strict=True):
        seen = set(history)
        out.append([i for i in ranking if i not in seen][:n])
    return out
