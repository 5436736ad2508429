"""The vectors that are clustered into personas, in blocks.

- ``taste``: what the train part says about a user's taste, per genre the rating lift
  (mean rating in the genre minus the user's mean rating, shrunk towards 0 by
  `shrinkage` pseudo-ratings) and the share of the user's ratings; the rating mean and
  spread; the appetite for popular items (mean log train count of the items rated); the
  era (mean release year);
- ``traits``: the profile's raw traits (activity as log(1 + count), conformity gap,
  genre diversity);
- ``embedding``: the sentence embedding of the profile text.

Each column of ``taste`` and ``traits`` is standardised (scikit-learn's
``StandardScaler``); then every block is multiplied so that its total variance is 1, and
by the square root of its weight: a block counts in the distances by its weight, whatever
its number of columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "FEATURE_BLOCKS",
    "SHRINKAGE",
    "TRAIT_COLUMNS",
    "BlockScaler",
    "FeatureSpace",
    "taste_features",
    "trait_features",
]

FEATURE_BLOCKS = ("taste", "traits", "embedding")
"""The feature blocks, in the order their columns are stacked."""

TRAIT_COLUMNS = ("activity_count", "conformity_gap", "diversity_genres")
"""Raw trait columns of the profiles used by the "traits" block."""

SHRINKAGE = 5.0
"""Pseudo-ratings at the user's mean that shrink a genre's rating lift: a genre rated
once says little about the user's taste for it."""


def taste_features(
    ratings: pd.DataFrame, items: pd.DataFrame, *, shrinkage: float = SHRINKAGE
) -> pd.DataFrame:
    """Taste features of users from their ratings.

    Args:
        ratings: ``user_id, item_id, rating`` rows (a train part, or a new user's history).
        items: The run's items: ``item_id, genres`` (lists), and ``train_count`` and
            ``year`` when present.
        shrinkage: Pseudo-ratings that shrink each genre's rating lift towards 0.

    Returns:
        One row per user (index ``user_id``, sorted): ``lift:<genre>`` and
        ``share:<genre>`` for every genre of `items`, ``rating_mean``, ``rating_spread``,
        ``popularity`` (when `items` has ``train_count``) and ``era`` (when it has
        ``year``; NaN for a user none of whose items has a year). A log without ratings
        has no ``lift:`` or rating columns.
    """
    rated = ratings[["user_id", "item_id", "rating"]].astype({"user_id": str, "item_id": str})
    rated = rated.assign(rating=rated["rating"].astype("float64"))
    by_user = rated.groupby("user_id", sort=True)["rating"]
    stats = pd.DataFrame({"rating_mean": by_user.mean(), "rating_spread": by_user.std(ddof=0)})
    listed = items["genres"].map(
        lambda gs: list(gs) if isinstance(gs, list | tuple | np.ndarray) else []
    )
    genres = sorted({g for gs in listed for g in gs})
    catalogue = items.assign(item_id=items["item_id"].astype(str), genres=listed)
    catalogue = catalogue.set_index("item_id")
    deviation = rated.assign(dev=rated["rating"] - by_user.transform("mean"))
    exploded = deviation.merge(
        catalogue["genres"].explode().dropna().rename("genre").reset_index(), on="item_id"
    )
    per_genre = exploded.groupby(["user_id", "genre"])["dev"].agg(["sum", "count"])
    lift = (per_genre["sum"] / (per_genre["count"] + shrinkage)).unstack(fill_value=0.0)
    share = per_genre["count"].unstack(fill_value=0.0).div(by_user.size(), axis=0)
    blocks = [
        lift.reindex(index=stats.index, columns=genres, fill_value=0.0).add_prefix("lift:"),
        share.reindex(index=stats.index, columns=genres, fill_value=0.0).add_prefix("share:"),
        stats,
    ]
    if rated["rating"].isna().all():  # a log without ratings: what they watch, not how
        blocks = blocks[1:2]
    if "train_count" in catalogue:
        counts = np.log1p(catalogue["train_count"].astype("float64").clip(lower=0))
        blocks.append(
            rated.assign(p=rated["item_id"].map(counts).fillna(0.0))
            .groupby("user_id")["p"]
            .mean()
            .rename("popularity")
            .to_frame()
        )
    if "year" in catalogue:
        years = pd.to_numeric(catalogue["year"], errors="coerce")
        blocks.append(
            rated.assign(y=rated["item_id"].map(years))
            .groupby("user_id")["y"]
            .mean()
            .rename("era")
            .to_frame()
        )
    frame = pd.concat(blocks, axis=1).reindex(stats.index)
    return frame.fillna({"rating_spread": 0.0}) if "rating_spread" in frame else frame


def trait_features(profiles: pd.DataFrame) -> pd.DataFrame:
    """The traits block's values of profiled users (indexed by ``user_id`` when the
    frame has it): activity as log(1 + count), the conformity gap and the genre
    diversity."""
    frame = profiles[list(TRAIT_COLUMNS)].apply(pd.to_numeric).astype("float64")
    if "user_id" in profiles:
        frame.index = pd.Index(profiles["user_id"].astype(str), name="user_id")
    return frame.assign(activity_count=np.log1p(frame["activity_count"].clip(lower=0)))


@dataclass
class BlockScaler:
    """How one block's columns become unit-variance features.

    Attributes:
        columns: The block's column names (empty for the embedding, whose columns are
            the embedding dimensions).
        means: Mean of each column (0 for the embedding).
        stds: Standard deviation of each column (1 for the embedding).
        scale: Multiplier of the standardised block so that its total variance is 1.
    """

    columns: list[str]
    means: list[float]
    stds: list[float]
    scale: float

    @classmethod
    def fit(cls, values: np.ndarray | pd.DataFrame, standardise: bool) -> BlockScaler:
        """Fit on the clustered users' values of this block."""
        columns = list(values.columns) if isinstance(values, pd.DataFrame) else []
        matrix = np.asarray(values, dtype="float64")
        means, stds = np.zeros(matrix.shape[1]), np.ones(matrix.shape[1])
        if standardise:
            from sklearn.preprocessing import StandardScaler

            fitted = StandardScaler().fit(matrix)  # NaN (an unknown era) is ignored
            means, stds = fitted.mean_, fitted.scale_  # scale_ is 1 for constant columns
        scaler = cls(columns, means.tolist(), stds.tolist(), 1.0)
        variance = float(scaler.transform(values).var(axis=0).sum())
        scaler.scale = 1.0 / np.sqrt(variance) if variance > 0 else 1.0
        return scaler

    def transform(self, values: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Unit-variance features; a column `values` lacks (or a NaN) counts as the mean."""
        if self.columns:
            frame = pd.DataFrame(values).reindex(columns=self.columns)
            matrix = frame.to_numpy(dtype="float64")
        else:
            matrix = np.asarray(values, dtype="float64")
        means, stds = np.asarray(self.means), np.asarray(self.stds)
        return self.scale * (np.where(np.isnan(matrix), means, matrix) - means) / stds


@dataclass
class FeatureSpace:
    """The blocks and weights the personas were clustered on; fitted on the clustered
    users and reused for new users so that they land in the same space.

    Attributes:
        weights: Weight of each block clustered on (blocks with weight 0 are left out).
        blocks: The scaler of every block that was available when fitting (also those
            with weight 0, so that a new user known only by them can still be placed).
    """

    weights: dict[str, float]
    blocks: dict[str, BlockScaler] = field(default_factory=dict)

    @classmethod
    def fit(
        cls, values: Mapping[str, np.ndarray | pd.DataFrame], weights: Mapping[str, float]
    ) -> FeatureSpace:
        """Fit the scalers of every block in `values` (rows aligned across blocks).

        Raises:
            ValueError: A weighted block is missing from `values`, or no block has weight.
        """
        used = {b: float(w) for b, w in weights.items() if w > 0}
        if not used:
            raise ValueError("no feature block has a positive weight")
        missing = sorted(set(used) - set(values))
        if missing:
            raise ValueError(f"feature blocks {missing} are weighted but have no values")
        blocks = {
            b: BlockScaler.fit(v, standardise=b != "embedding")
            for b, v in values.items()
            if b in FEATURE_BLOCKS
        }
        return cls(used, blocks)

    def unit(self, values: Mapping[str, np.ndarray | pd.DataFrame]) -> dict[str, np.ndarray]:
        """Each known block of `values` as unit-variance features (no weights)."""
        return {b: self.blocks[b].transform(v) for b, v in values.items() if b in self.blocks}

    def transform(self, values: Mapping[str, np.ndarray | pd.DataFrame]) -> np.ndarray:
        """The matrix that is clustered: the weighted blocks, stacked.

        Raises:
            ValueError: A weighted block is missing from `values`.
        """
        missing = [b for b in self.weights if b not in values]
        if missing:
            raise ValueError(f"these personas were clustered on {missing}; their values are needed")
        unit = self.unit({b: values[b] for b in self.weights})
        return np.hstack([np.sqrt(self.weights[b]) * unit[b] for b in _ordered(self.weights)])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "weights": self.weights,
            "blocks": {
                b: {"columns": s.columns, "means": s.means, "stds": s.stds, "scale": s.scale}
                for b, s in self.blocks.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpace:
        """The inverse of :meth:`to_dict`."""
        return cls(dict(data["weights"]), {b: BlockScaler(**s) for b, s in data["blocks"].items()})


def _ordered(blocks: Mapping[str, Any]) -> list[str]:
    return [b for b in FEATURE_BLOCKS if b in blocks]
