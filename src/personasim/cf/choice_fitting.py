"""Fit the choice features on a log, keeping the fitted models of the last few logs.

:func:`fit_choice_features` reads a training log (``user_id, item_id, rating,
timestamp``) into a :class:`~personasim.cf.choice_features.ChoiceFeatures`: what the log
alone gives (histories, counts, times, genres), then the LensKit scorers of the families
asked for. The fitted features of a log are kept by content, seed and settings, so asking
again for the same log with other families trains only the scorers not fitted yet.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from cachetools import LRUCache

from personasim.cf.choice_features import (
    CHOICE_FAMILIES,
    SCORER_FAMILIES,
    ChoiceFeatures,
    ChoiceSettings,
    genre_matrix,
)
from personasim.cf.dataset import rows_digest
from personasim.cf.implicit import ImplicitSettings, implicit_pipeline

__all__ = ["fit_choice_features"]


def fit_choice_features(
    log: pd.DataFrame,
    genres: Mapping[str, Iterable[str]],
    *,
    seed: int,
    families: Sequence[str] = CHOICE_FAMILIES,
    settings: ChoiceSettings = ChoiceSettings(),  # noqa: B008 (frozen)
) -> ChoiceFeatures:
    """Fit the feature families on `log` (``user_id, item_id, rating, timestamp``).

    The models fitted on a log are kept (for the last :data:`_FITTED_LOGS` logs, by
    content, seed and settings): asked again for the same log, with the same or other
    families, only the scorers not fitted yet are trained. The stacked prior without
    one family (the simulation's leave-family-out check) then costs its combiner, not
    seven fits of every model.

    Args:
        log: The interactions the features see (every row counts as one choice).
        genres: Item id -> its genres (items without are fine).
        seed: The models' seed.
        families: The families to compute (a subset of :data:`CHOICE_FAMILIES`).
        settings: The hyper-parameters.

    Raises:
        ValueError: An unknown family.
    """
    unknown = sorted(set(families) - set(CHOICE_FAMILIES))
    if unknown:
        raise ValueError(
            f"unknown choice feature families {unknown}; known: {list(CHOICE_FAMILIES)}"
        )
    chosen = tuple(f for f in CHOICE_FAMILIES if f in families)
    frame = log[["user_id", "item_id", "rating", "timestamp"]].copy()
    frame["user_id"] = frame["user_id"].astype(str)
    frame["item_id"] = frame["item_id"].astype(str)
    frame["timestamp"] = frame["timestamp"].astype("float64")
    key = (_digest(frame, genres), seed, settings)
    fitted = _FITTED.get(key)
    if fitted is None:
        fitted = _log_features(frame, genres, settings)
        _FITTED[key] = fitted
    _train_scorers(fitted, frame, [f for f in chosen if f in SCORER_FAMILIES], seed)
    return dataclasses.replace(fitted, families=chosen)


_FITTED_LOGS = 8
"""Logs whose fitted features :func:`fit_choice_features` keeps (a stacked fit reads
seven: the earlier part, the whole log and five out-of-fold folds)."""
_FITTED: Any = LRUCache(maxsize=_FITTED_LOGS)


def _digest(frame: pd.DataFrame, genres: Mapping[str, Iterable[str]]) -> str:
    """The log's rows, in order, and the genres."""
    digest = rows_digest(frame)
    for item in sorted(genres):
        digest.update(f"{item}\x1f{'|'.join(map(str, genres[item]))}\x1e".encode())
    return digest.hexdigest()


def _log_features(
    frame: pd.DataFrame, genres: Mapping[str, Iterable[str]], settings: ChoiceSettings
) -> ChoiceFeatures:
    """What the log alone gives (histories, counts, times, genres): no scorer yet."""
    item_ids, codes = np.unique(frame["item_id"].to_numpy(), return_inverse=True)
    times = frame["timestamp"].to_numpy()
    start = float(times.min()) if len(times) else 0.0
    span = float(times.max() - start + 1.0) if len(times) else 1.0
    keys = np.sort(codes * span + (times - start))
    ordered = frame.assign(code=codes).sort_values(["user_id", "timestamp"], kind="stable")
    histories = {
        str(u): g["item_id"].to_numpy(dtype=object)
        for u, g in ordered.groupby("user_id", sort=False)
    }
    now = ordered.groupby("user_id")["timestamp"].max() - start
    return ChoiceFeatures(
        families=(),
        settings=settings,
        pipelines={},
        histories=histories,
        now={str(u): float(t) for u, t in now.items()},
        item_code={str(i): k for k, i in enumerate(item_ids)},
        item_count=np.bincount(codes, minlength=len(item_ids)).astype("float64"),
        item_first=pd.Series(times - start).groupby(codes).min().to_numpy(),
        time_keys=keys,
        time_span=span,
        item_genres=genre_matrix(item_ids, genres),
    )


def _train_scorers(
    features: ChoiceFeatures, frame: pd.DataFrame, families: Sequence[str], seed: int
) -> None:
    """Train the scorers of `families` that `features` does not have yet (in place)."""
    from personasim.cf.dataset import training_dataset, training_options

    missing = [f for f in families if f not in features.pipelines]
    if not missing:
        return
    dataset = training_dataset(frame)
    settings = features.settings
    implicit = ImplicitSettings(
        settings.neighbors, settings.embedding_size, settings.epochs, settings.sequential_epochs
    )
    for family in missing:
        pipeline = implicit_pipeline(family, implicit)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"lenskit\..*")
            pipeline.train(dataset, training_options(seed, len(frame)))
        features.pipelines[family] = pipeline
