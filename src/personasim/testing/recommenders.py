"""An example recommender plug-in, and scripted agents for session tests.

``RecentlyPopular`` is the documented example of a team's own recommender: a class with
``fit(training)`` and ``recommend(user_id, history, n)``. Use it with::

    [simulate]
    plugins = { recent = "personasim.testing.recommenders:RecentlyPopular" }
    recommenders = ["popular", "mf", "recent"]

or ``personasim simulate --recommender recent=personasim.testing.recommenders:RecentlyPopular``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["RecentlyPopular", "ScriptedAgents"]


class RecentlyPopular:
    """Most-rated items of the most recent part of the training log.

    Args:
        recent_share: The share of the training ratings, the most recent ones, that
            counts.
    """

    def __init__(self, recent_share: float = 0.3) -> None:
        self.recent_share = recent_share
        self.ranking: list[str] = []

    def fit(self, training: pd.DataFrame) -> None:
        """Rank items by their number of ratings in the most recent `recent_share` of
        the training ratings."""
        recent = training[
            training["timestamp"] >= training["timestamp"].quantile(1 - self.recent_share)
        ]
        self.ranking = recent["item_id"].value_counts().index.astype(str).tolist()

    def recommend(self, user_id: str, history: Sequence[str], n: int) -> list[str]:
        """The `n` most recently popular items the user has not rated."""
        seen = set(history)
        return [i for i in self.ranking if i not in seen][:n]


class ScriptedAgents:
    """Agents with fixed answers: P(watch) per item and a rating distribution per item.

    Args:
        watch: P(watch) per item id (default `default_watch`).
        rating: The rating (1..5) each item gets with probability one (default 3).
        default_watch: P(watch) of items not in `watch`.
    """

    def __init__(
        self,
        watch: dict[str, float] | None = None,
        rating: dict[str, int] | None = None,
        default_watch: float = 0.5,
    ) -> None:
        self.watch = watch or {}
        self.rating = rating or {}
        self.default_watch = default_watch
        self.calls: list[list[tuple[str, list[str]]]] = []

    def watch_probabilities(
        self, requests: Sequence[tuple[str, Sequence[str]]]
    ) -> list[np.ndarray]:
        """P(watch) of every requested item."""
        self.calls.append([(u, list(items)) for u, items in requests])
        return [
            np.array([self.watch.get(i, self.default_watch) for i in items])
            for _, items in requests
        ]

    def rating_distributions(
        self, requests: Sequence[tuple[str, Sequence[str]]]
    ) -> list[dict[str, np.ndarray]]:
        """One-hot rating distributions."""
        out = []
        for _, items in requests:
            probs = np.zeros((len(items), 5))
            for k, item in enumerate(items):
                probs[k, self.rating.get(item, 3) - 1] = 1.0
            out.append({"probs": probs})
        return out
