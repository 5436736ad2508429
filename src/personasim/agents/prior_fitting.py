"""Fitting the collaborative prior of a run: the full-data table and out-of-fold predictions.

The agents' prior (:class:`~personasim.agents.prior.CFPrior`) is a LensKit model (user+item
bias, biased MF, explicit item-kNN, or a stack of the three) fitted on the training data.
For the agents' own training examples the prior must not have seen the rating it is asked
about (it would be a perfect hint at training time and an ordinary one at test time), so
those priors are predicted out of fold: the sampled users' train ratings are split in K
folds and each fold is predicted by a model fitted without it. Everything else (test
pairs, candidates) uses a model fitted on all the training data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from personasim.agents.prior import CFPrior
from personasim.cf.batch_scores import score_factors
from personasim.cf.explicit import PARTIAL_BASELINES, fit_baseline, training_dataset
from personasim.cf.fitted import FittedModels
from personasim.config import CFConfig

__all__ = [
    "BLEND_PARTS",
    "FittedPrior",
    "fit_prior",
    "fit_prior_matrix",
    "out_of_fold_priors",
    "prior_parts",
]

BLEND_PARTS = ("user_item_bias", "biased_mf", "item_knn")
"""The rating baselines the "blend" prior stacks."""

_UNSEEN_ITEM = "\x00personasim-unseen-item"
"""An item id no training data holds, scored to learn each user's fallback."""


def _scores(scorer, users: list[str], items: list[str]) -> np.ndarray:  # noqa: ANN001
    from lenskit.data import ItemList

    matrix = np.empty((len(users), len(items)), dtype="float64")
    candidates = ItemList(items)
    for r, user in enumerate(users):
        scores = scorer(user, candidates).scores()
        matrix[r] = np.nan if scores is None else scores
    return matrix


def prior_parts(kind: str) -> tuple[str, ...]:
    """The rating baselines a prior model is made of (the blend's parts, or itself)."""
    return BLEND_PARTS if kind == "blend" else (kind,)


@dataclass
class FittedPrior:
    """A prior fitted for one run: the full-data matrix and the out-of-fold predictions.

    Attributes:
        prior: Predictions over the simulated users x catalogue (all training data).
        out_of_fold: One prediction per train row of the sampled users, by models that
            did not see it.
        weights: The blend's intercept and weight per part (``None`` for one model).
    """

    prior: CFPrior
    out_of_fold: np.ndarray
    weights: dict[str, float] | None = None


def fit_prior(
    kind: str,
    config: CFConfig,
    train: pd.DataFrame,
    others: pd.DataFrame,
    users: list[str],
    items: pd.DataFrame,
    scale: tuple[float, float],
    seed: int,
    models_folder: Path | None = None,
) -> FittedPrior:
    """Fit the prior model `kind` (a rating baseline, or "blend") for `users`.

    The blend is a non-negative least-squares stack (scikit-learn ``LinearRegression``
    with ``positive=True``) of its parts' out-of-fold predictions of `train`; its few
    weights are fitted on the same out-of-fold predictions they are then applied to.
    The models fitted on all training data are kept in `models_folder` (the run's fitted
    models, which the baselines of `evaluate` read instead of fitting them again).
    """
    parts = prior_parts(kind)
    training = pd.concat([train, others], ignore_index=True)
    models = FittedModels(models_folder, training)
    matrices = [
        fit_prior_matrix(p, config, training, users, items, scale, seed, models) for p in parts
    ]
    folds = out_of_fold_priors(parts, config, train, others, scale, seed)
    if kind != "blend":
        return FittedPrior(matrices[0], folds[kind])
    from sklearn.linear_model import LinearRegression

    stacked = np.column_stack([folds[p] for p in parts])
    model = LinearRegression(positive=True).fit(stacked, train["rating"].to_numpy("float64"))
    blended = model.intercept_ + np.tensordot(
        model.coef_, np.stack([m.dense() for m in matrices]), axes=1
    )
    first = matrices[0]
    unseen = np.column_stack([[m.user_fallback[u] for u in first.users] for m in matrices])
    by_user = np.clip(model.intercept_ + unseen @ model.coef_, *scale)
    prior = CFPrior(
        first.users,
        first.items,
        np.clip(blended, *scale),
        first.fallback,
        first.global_mean,
        dict(zip(first.users, map(float, by_user), strict=True)),
    )
    weights = {"intercept": float(model.intercept_)}
    weights.update({p: float(w) for p, w in zip(parts, model.coef_, strict=True)})
    return FittedPrior(prior, np.clip(model.predict(stacked), *scale), weights)


def fit_prior_matrix(
    kind: str,
    config: CFConfig,
    training: pd.DataFrame,
    users: list[str],
    items: pd.DataFrame,
    scale: tuple[float, float],
    seed: int,
    models: FittedModels | None = None,
) -> CFPrior:
    """Fit one rating baseline on all training data and score the users x catalogue
    (kept as the model's factors for the user+item bias and biased MF).

    Pairs the model cannot score (MF on an item nobody rated, item-kNN without a rated
    neighbour) get the user+item bias prediction, which for an item nobody rated is the
    user's mean offset: that is also each user's fallback for items outside the
    catalogue.
    """
    dataset = training_dataset(training)
    scorer = fit_baseline(kind, config, dataset, seed, models=models)
    catalogue = items["item_id"].astype(str).tolist()
    columns = [*catalogue, _UNSEEN_ITEM]
    global_mean = float(training["rating"].mean())
    means = items.set_index("item_id")["train_mean_rating"].dropna()
    fallback = {str(k): float(v) for k, v in means.items()}
    factors = score_factors(scorer, users, [[] for _ in users], catalogue)
    if factors is not None:
        # LensKit leaves unknown users and items unscored and the bias model fills them
        # in: the same as the formula with their factors and biases at 0
        factors.missing, factors.bounds = None, scale
        unseen = np.clip(factors.offset + factors.user_bias, *scale)
        by_user = dict(zip(users, map(float, unseen), strict=True))
        return CFPrior(users, catalogue, factors, fallback, global_mean, by_user)
    matrix = _scores(scorer, users, columns)
    if np.isnan(matrix).any():
        bias_model = fit_baseline("user_item_bias", config, dataset, seed, models=models)
        bias = _scores(bias_model, users, columns)
        matrix = np.where(np.isnan(matrix), bias, matrix)
    matrix = np.clip(np.nan_to_num(matrix, nan=global_mean), *scale)
    return CFPrior(
        users,
        catalogue,
        matrix[:, :-1],
        fallback,
        global_mean,
        dict(zip(users, map(float, matrix[:, -1]), strict=True)),
    )


def out_of_fold_priors(
    kinds: Sequence[str],
    config: CFConfig,
    train: pd.DataFrame,
    others: pd.DataFrame,
    scale: tuple[float, float],
    seed: int,
    folds: int = 5,
) -> dict[str, np.ndarray]:
    """Predictions of the sampled users' train ratings by each baseline in `kinds`,
    each by a model fitted without it (K folds over those ratings; other users'
    ratings always included). The folds are the same for every kind.

    Returns:
        Per kind, one prediction per row of `train`, in its order.
    """
    from lenskit.data import ItemList

    rng = np.random.default_rng(seed)
    fold_of = rng.integers(0, folds, len(train))
    out = {kind: np.full(len(train), np.nan) for kind in kinds}
    cols = ["user_id", "item_id", "rating", "timestamp"]
    for fold in range(folds):
        held = fold_of == fold
        held_rows = np.flatnonzero(held)
        fit_on = pd.concat([train.loc[~held, cols], others[cols]], ignore_index=True)
        dataset = training_dataset(fit_on)
        fallback = (
            fit_baseline("user_item_bias", config, dataset, seed)
            if set(kinds) & set(PARTIAL_BASELINES)
            else None
        )
        part = train[held]
        part_users = part["user_id"].to_numpy()
        part_items = part["item_id"].to_numpy()
        user_codes, users = pd.factorize(part_users)
        item_codes, items = pd.factorize(part_items)
        groups = pd.Series(np.arange(len(part))).groupby(part_users).indices.items()
        for kind in kinds:
            scorer = fit_baseline(kind, config, dataset, seed)
            factors = score_factors(scorer, list(users), [[] for _ in users], list(items))
            if factors is not None:
                # every pair at once; unknown users and items read the bias model's
                # prediction (the formula with their pieces at 0), as the fallback gives
                factors.missing = None
                out[kind][held_rows] = factors.cells(user_codes, item_codes)
                continue
            for user, idx in groups:
                rows = held_rows[idx]
                asked = ItemList(part_items[idx])
                scores = scorer(user, asked).scores()
                if fallback is not None and (scores is None or np.isnan(scores).any()):
                    backup = fallback(user, asked).scores()
                    scores = (
                        backup if scores is None else np.where(np.isnan(scores), backup, scores)
                    )
                out[kind][rows] = scores
    mean = float(train["rating"].mean())
    return {kind: np.clip(np.nan_to_num(v, nan=mean), *scale) for kind, v in out.items()}
