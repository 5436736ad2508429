"""Classical rating-prediction baselines, fitted and scored with LensKit.

- ``global_mean``: the mean training rating (LensKit ``BiasScorer`` with no entities);
- ``item_bias``: global mean plus a damped item bias;
- ``user_item_bias``: global mean plus damped user and item biases;
- ``biased_mf``: biased matrix factorisation trained by ALS (``BiasedMFScorer``);
- ``user_genre``: the user's damped offset and its damped offsets per genre, averaged
  over the item's genres (:mod:`personasim.cf.genre`; it predicts items nobody rated);
- ``item_knn``: item-item kNN on explicit ratings (``ItemKNNScorer``: the item mean
  plus the similarity-weighted mean-centred ratings of the user's nearest rated items).

A prediction LensKit cannot make (an item absent from the training data, for MF) falls
back to the user+item bias prediction, and is counted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from personasim.cf.dataset import training_dataset
from personasim.cf.fitted import FittedModels
from personasim.cf.genre import UserGenreScorer
from personasim.config import CFConfig, part_settings

__all__ = [
    "PARTIAL_BASELINES",
    "BaselinePredictions",
    "fit_baseline",
    "predict_baseline",
    "training_dataset",
]

PARTIAL_BASELINES = ("biased_mf", "item_knn")
"""Baselines that cannot score every pair: an item they never saw, or (item-kNN) no
rated neighbour. The user+item bias model fills in."""

logger = logging.getLogger(__name__)


def _scorer(name: str, config: CFConfig) -> Any:
    from lenskit.als import BiasedMFScorer
    from lenskit.basic import BiasScorer
    from lenskit.knn import ItemKNNScorer

    damping = config.bias_damping
    if name == "global_mean":
        return BiasScorer(entities=set(), damping=damping)
    if name == "item_bias":
        return BiasScorer(entities={"item"}, damping=damping)
    if name == "user_item_bias":
        return BiasScorer(entities={"user", "item"}, damping=damping)
    if name == "biased_mf":
        return BiasedMFScorer(
            embedding_size=config.mf_embedding_size,
            epochs=config.mf_epochs,
            regularization=config.mf_regularization,
            damping=damping,
        )
    if name == "item_knn":
        return ItemKNNScorer(max_nbrs=config.knn_neighbours, feedback="explicit")
    raise ValueError(f"unknown baseline {name!r}")


@dataclass
class _WithHistory:
    """A scorer that reads the user's ratings from the query (item-kNN), called like the
    others: with a user id, its ratings looked up in the training dataset."""

    scorer: Any
    dataset: Any

    def __call__(self, user: Any, items: Any) -> Any:
        from lenskit.data import ItemList, RecQuery

        history = self.dataset.user_row(user) if user in self.dataset.users else None
        if history is None:
            return ItemList(items, scores=np.nan)
        return self.scorer(RecQuery(user_id=user, history_items=history), items)


def fit_baseline(
    name: str,
    config: CFConfig,
    dataset: Any,
    seed: int,
    genres: Mapping[str, Sequence[str]] | None = None,
    models: FittedModels | None = None,
) -> Any:
    """Fit one baseline on a LensKit dataset, deterministically for a seed.

    Args:
        name: A baseline name (:data:`~personasim.config.BaselineName`).
        config: Its hyper-parameters (`[cf]`).
        dataset: The training data.
        seed: The seed of randomly initialised models.
        genres: Item id -> genres; "user_genre" needs them.
        models: The run's fitted models on the same training data: the LensKit model is
            read from there when a stage already fitted it, and kept there otherwise.

    Returns:
        A callable ``(user_id, ItemList) -> ItemList`` with scores (NaN where the model
        cannot predict).
    """
    from lenskit.training import TrainingOptions

    if name == "user_genre":
        if genres is None:
            raise ValueError("the user_genre baseline needs the items' genres")
        return UserGenreScorer(dataset, genres, config.bias_damping)

    def train() -> Any:
        scorer = _scorer(name, config)
        scorer.train(dataset, TrainingOptions(rng=seed))
        return scorer

    ratings = part_settings(config, "ratings")
    scorer = train() if models is None else models.get(name, ratings, seed, train)
    if name == "item_knn":
        return _WithHistory(scorer, dataset)
    return scorer


@dataclass
class BaselinePredictions:
    """Predicted ratings aligned with the test rows, and how many fell back."""

    predicted: np.ndarray
    fallbacks: int


def predict_baseline(
    scorer: Any,
    test: pd.DataFrame,
    *,
    fallback: Any | None = None,
    scale: tuple[float, float] | None = None,
) -> BaselinePredictions:
    """Score every test pair with a fitted LensKit scorer.

    Args:
        scorer: A fitted LensKit scorer.
        test: ``user_id, item_id`` rows to score.
        fallback: A fitted scorer for the pairs `scorer` leaves unscored.
        scale: Clip predictions to this range when given.
    """
    from lenskit.data import ItemList

    predicted = np.full(len(test), np.nan)
    positions = np.arange(len(test))
    for user, rows in test.groupby("user_id", sort=False).indices.items():
        items = ItemList(test["item_id"].to_numpy()[rows])
        scores = scorer(user, items).scores()
        predicted[positions[rows]] = np.nan if scores is None else scores
    missing = np.isnan(predicted)
    if missing.any() and fallback is not None:
        sub = test[missing]
        predicted[missing] = predict_baseline(fallback, sub).predicted
    if scale is not None:
        predicted = np.clip(predicted, *scale)
    return BaselinePredictions(predicted=predicted, fallbacks=int(missing.sum()))
