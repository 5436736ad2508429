"""The collaborative prior: what a classical CF model predicts for a user and an item.

The agents are given the prediction of a LensKit model (user+item bias, biased MF,
explicit item-kNN, or a stack of the three) fitted on the training data. For the
agents' own training examples the prior must not have seen the rating it is asked
about (it would be a perfect hint at training time and an ordinary one at test time),
so those priors are predicted out of fold: the sampled users' train ratings are split
in K folds and each fold is predicted by a model fitted without it. Everything else
(test pairs, candidates) uses a model fitted on all the training data. The user+item bias
and biased MF priors are kept as their model's factors (:class:`~personasim.cf.factors.
ScoreFactors`: (users + items) x factors numbers, each pair computed when it is asked
for); item-kNN and the blend as a dense user x item matrix of the simulated users,
scored by LensKit itself.

The prediction enters the answer as a Gaussian log-prior over the scale's levels whose
expectation is the prediction (:func:`prior_logits`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personasim.cf.batch_scores import score_factors
from personasim.cf.explicit import PARTIAL_BASELINES, fit_baseline, training_dataset
from personasim.cf.factors import ScoreFactors
from personasim.config import EvaluateConfig
from personasim.data.tables import read_parquet, write_parquet
from personasim.rating_scale import RatingScale
from personasim.workspace import atomic_path

__all__ = [
    "BLEND_PARTS",
    "PRIOR_FILES",
    "CFPrior",
    "FittedPrior",
    "fit_prior",
    "fit_prior_matrix",
    "out_of_fold_priors",
    "prior_logits",
]

BLEND_PARTS = ("user_item_bias", "biased_mf", "item_knn")
"""The rating baselines the "blend" prior stacks."""

PRIOR_FILES = ("prior.npy", "prior_factors.npz")
"""Where a prior's table is saved: the dense matrix, or the model's factors."""

_UNSEEN_ITEM = "\x00personasim-unseen-item"
"""An item id no training data holds, scored to learn each user's fallback."""


def _gaussian_mean(centre: np.ndarray, sigma: float, levels: np.ndarray) -> np.ndarray:
    """Expectation over the levels of ``exp(-(v - centre)^2 / 2 sigma^2)``, normalised."""
    logits = -((levels[None, :] - centre[:, None]) ** 2) / (2 * sigma**2)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (weights @ levels) / weights.sum(axis=1)


def mean_centres(
    priors: np.ndarray, sigma: float, levels: np.ndarray, *, iterations: int = 60
) -> np.ndarray:
    """The centre of the Gaussian over `levels` whose expectation is each prior rating.

    The expectation grows monotonically with the centre (it is an exponential family in
    centre / sigma^2) from the lowest level to the highest, so bisection finds it;
    priors are held 1e-3 of the range inside the ends, which no finite centre reaches.
    """
    low, high = float(levels[0]), float(levels[-1])
    inside = 1e-3 * (high - low) / 4
    target = np.clip(np.asarray(priors, dtype="float64"), low + inside, high - inside)
    reach = (high - low) * 5.0 + 40.0 * sigma**2  # beyond: the expectation is at an end
    lo = np.full_like(target, low - reach)
    hi = np.full_like(target, high + reach)
    for _ in range(iterations):
        mid = (lo + hi) / 2
        below = _gaussian_mean(mid, sigma, levels) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return (lo + hi) / 2


def prior_logits(
    priors: Any, sigma: float, centre: str = "mean", scale: RatingScale | None = None
) -> Any:
    """Gaussian log-prior over the rating levels for each prior rating ``[n] -> [n, levels]``.

    Args:
        priors: A torch tensor of CF predictions.
        sigma: The Gaussian's width in stars of a 1-5 scale (multiplied by the scale's
            :attr:`~RatingScale.span`: 1.8 rating points on 1-10 for 0.8).
        centre: "mean": the prior alone (softmax of these logits) has the CF prediction
            as its expectation; "mode": its peak is at the CF prediction, which the
            truncation at 1 and 5 pulls towards the middle (4.70 gives 4.48 at 0.8).
        scale: The rating scale (1-5 when None).
    """
    import torch

    scale = scale or RatingScale()
    width = sigma * scale.span
    values = priors.detach().cpu().double().numpy()
    if centre == "mean":
        values = mean_centres(values, width, scale.levels)
    elif centre != "mode":
        raise ValueError(f"unknown prior centre {centre!r}")
    mu = torch.tensor(values, dtype=torch.float32, device=priors.device)
    levels = torch.tensor(scale.levels, dtype=torch.float32, device=priors.device)
    return -((levels[None, :] - mu[:, None]) ** 2) / (2 * width**2)


@dataclass
class CFPrior:
    """CF predictions for the simulated users over the catalogue.

    Attributes:
        users: User ids (rows).
        items: Item ids (columns).
        matrix: ``[users, items]`` predicted ratings, clipped to the scale: a dense
            matrix, or the factors of the model's table (clipped when read).
        fallback: Prediction for an item outside the matrix, by item (its train mean).
        global_mean: Prediction when nothing is known of the user or the item.
        user_fallback: Prediction for an item outside the matrix, by user (the model's
            prediction for an item it never saw: the user's mean offset).
    """

    users: list[str]
    items: list[str]
    matrix: np.ndarray | ScoreFactors
    fallback: dict[str, float]
    global_mean: float
    user_fallback: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._u = {u: i for i, u in enumerate(self.users)}
        self._i = {it: i for i, it in enumerate(self.items)}

    def predict(self, user: str, items: list[str]) -> np.ndarray:
        """Prior ratings of `items` for `user`; an item outside the matrix (not in the
        catalogue) gets the user's fallback, else its train mean, else the global mean."""
        row = self._u.get(user)
        columns = np.array([self._i.get(item, -1) for item in items], dtype=np.int64)
        inside = columns >= 0 if row is not None else np.zeros(len(items), dtype=bool)
        out = np.empty(len(items), dtype="float64")
        if inside.any():
            cols = columns[inside]
            if isinstance(self.matrix, ScoreFactors):
                out[inside] = self.matrix.cells(np.full(len(cols), row), cols)
            else:
                out[inside] = self.matrix[row, cols]
        for j in np.flatnonzero(~inside):
            if user in self.user_fallback:
                out[j] = self.user_fallback[user]
            else:
                out[j] = self.fallback.get(items[j], self.global_mean)
        return out

    def dense(self) -> np.ndarray:
        """The whole ``[users, items]`` table (a copy when kept as factors)."""
        if isinstance(self.matrix, ScoreFactors):
            return self.matrix.dense()
        return self.matrix

    @staticmethod
    def saved_in(folder: Path) -> bool:
        """Whether `folder` holds a saved prior."""
        return any((folder / name).is_file() for name in PRIOR_FILES)

    def save(self, folder: Path) -> None:
        """Write the table (``prior.npy``, or ``prior_factors.npz`` for factors; no
        pickles) and ``prior.json`` (ids and fallbacks)."""
        dense, factors = (folder / name for name in PRIOR_FILES)
        if isinstance(self.matrix, ScoreFactors):
            with atomic_path(factors) as tmp, tmp.open("wb") as f:
                np.savez(f, **self.matrix.arrays())
            dense.unlink(missing_ok=True)
        else:
            with atomic_path(dense) as tmp, tmp.open("wb") as f:
                np.save(f, self.matrix.astype("float32"), allow_pickle=False)
            factors.unlink(missing_ok=True)
        meta = {
            "users": self.users,
            "items": self.items,
            "global_mean": self.global_mean,
            "user_fallback": [self.user_fallback.get(u) for u in self.users],
        }
        with atomic_path(folder / "prior.json") as tmp:
            tmp.write_text(json.dumps(meta))
        write_parquet(
            pd.DataFrame(
                {"item_id": list(self.fallback), "fallback": list(self.fallback.values())}
            ),
            folder / "prior_fallback.parquet",
        )

    @classmethod
    def load(cls, folder: Path) -> CFPrior:
        """Read what :meth:`save` wrote."""
        meta = json.loads((folder / "prior.json").read_text())
        dense, factors = (folder / name for name in PRIOR_FILES)
        matrix: np.ndarray | ScoreFactors
        if factors.is_file():
            with np.load(factors, allow_pickle=False) as data:
                matrix = ScoreFactors.from_arrays(data)
        else:
            matrix = np.load(dense, allow_pickle=False)
        fb = read_parquet(folder / "prior_fallback.parquet")
        by_user = meta.get("user_fallback") or [None] * len(meta["users"])
        return cls(
            meta["users"],
            meta["items"],
            matrix,
            dict(zip(fb["item_id"], fb["fallback"], strict=True)),
            meta["global_mean"],
            {u: v for u, v in zip(meta["users"], by_user, strict=True) if v is not None},
        )


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
    config: EvaluateConfig,
    train: pd.DataFrame,
    others: pd.DataFrame,
    users: list[str],
    items: pd.DataFrame,
    scale: tuple[float, float],
    seed: int,
) -> FittedPrior:
    """Fit the prior model `kind` (a rating baseline, or "blend") for `users`.

    The blend is a non-negative least-squares stack (scikit-learn ``LinearRegression``
    with ``positive=True``) of its parts' out-of-fold predictions of `train`; its few
    weights are fitted on the same out-of-fold predictions they are then applied to.
    """
    parts = prior_parts(kind)
    training = pd.concat([train, others], ignore_index=True)
    matrices = [fit_prior_matrix(p, config, training, users, items, scale, seed) for p in parts]
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
    config: EvaluateConfig,
    training: pd.DataFrame,
    users: list[str],
    items: pd.DataFrame,
    scale: tuple[float, float],
    seed: int,
) -> CFPrior:
    """Fit one rating baseline on all training data and score the users x catalogue
    (kept as the model's factors for the user+item bias and biased MF).

    Pairs the model cannot score (MF on an item nobody rated, item-kNN without a rated
    neighbour) get the user+item bias prediction, which for an item nobody rated is the
    user's mean offset: that is also each user's fallback for items outside the
    catalogue.
    """
    dataset = training_dataset(training)
    scorer = fit_baseline(kind, config, dataset, seed)
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
        bias = _scores(fit_baseline("user_item_bias", config, dataset, seed), users, columns)
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
    config: EvaluateConfig,
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
