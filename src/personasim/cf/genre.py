"""The user x genre baseline: what a user's ratings of an item's genres say about it.

It needs nothing of the item but its genres, so it predicts items no one has rated
(the new-items protocol), where the collaborative models fall back to the user's mean:

    pred(u, i) = mu + b_u + mean over the genres g of i of d_ug
    b_u  = sum over the user's ratings (r - mu) / (n_u + damping)
    d_ug = sum over the user's ratings of genre g (r - mu - b_u) / (n_ug + damping)

with mu the global mean; an item without genres gets mu + b_u, a user without ratings mu.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["UserGenreScorer"]


@dataclass
class UserGenreScorer:
    """Damped user and user x genre offsets over the global mean, read per user from a
    LensKit training dataset; called like a LensKit scorer, ``(user_id, ItemList)``."""

    dataset: Any
    genres: Mapping[str, Sequence[str]]
    damping: float

    def __post_init__(self) -> None:
        ratings = self.dataset.interaction_matrix(format="scipy", field="rating")
        self.mean = float(ratings.data.mean())

    def offsets(self, user: Any) -> tuple[float, dict[str, float]]:
        """The user's offset b_u and genre offsets d_ug (empty for an unknown user)."""
        if user not in self.dataset.users:
            return 0.0, {}
        row = self.dataset.user_row(user)
        ratings = np.asarray(row.field("rating", "numpy"), dtype="float64")
        bias = float((ratings - self.mean).sum() / (len(ratings) + self.damping))
        residual = ratings - self.mean - bias
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for item, r in zip(row.ids(), residual, strict=True):
            for genre in self.genres.get(str(item), ()):
                sums[genre] = sums.get(genre, 0.0) + float(r)
                counts[genre] = counts.get(genre, 0) + 1
        return bias, {g: sums[g] / (counts[g] + self.damping) for g in sums}

    def __call__(self, user: Any, items: Any) -> Any:
        from lenskit.data import ItemList

        bias, by_genre = self.offsets(user)
        scores = np.empty(len(items))
        for k, item in enumerate(items.ids()):
            genres = self.genres.get(str(item), ())
            scores[k] = self.mean + bias
            if genres:
                scores[k] += float(np.mean([by_genre.get(g, 0.0) for g in genres]))
        return ItemList(items, scores=scores)
