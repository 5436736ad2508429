"""The collaborative prior: what a classical CF model predicts for a user and an item.

The agents are given the prediction of a LensKit model (user+item bias or biased MF)
fitted on the training data. For the agents' own training examples the prior must not
have seen the rating it is asked about (it would be a perfect hint at training time and
an ordinary one at test time), so those priors are predicted out of fold: the sampled
users' train ratings are split in K folds and each fold is predicted by a model fitted
without it. Everything else (test pairs, candidates) uses a model fitted on all the
training data. Predictions are stored as a dense user x item matrix of the simulated
users, scored by LensKit itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from personasim.cf.explicit import fit_baseline, training_dataset
from personasim.config import EvaluateConfig
from personasim.data.tables import read_parquet, write_parquet
from personasim.workspace import atomic_path

__all__ = ["CFPrior", "fit_prior_matrix", "out_of_fold_priors"]


@dataclass
class CFPrior:
    """CF predictions for the simulated users over the catalogue.

    Attributes:
        users: User ids (rows).
        items: Item ids (columns).
        matrix: ``[users, items]`` predicted ratings, clipped to the scale.
        fallback: Prediction for an item or user outside the matrix (item means).
    """

    users: list[str]
    items: list[str]
    matrix: np.ndarray
    fallback: dict[str, float]
    global_mean: float

    def __post_init__(self) -> None:
        self._u = {u: i for i, u in enumerate(self.users)}
        self._i = {it: i for i, it in enumerate(self.items)}

    def predict(self, user: str, items: list[str]) -> np.ndarray:
        """Prior ratings of `items` for `user`."""
        row = self._u.get(user)
        out = np.empty(len(items), dtype="float64")
        for j, item in enumerate(items):
            col = self._i.get(item)
            if row is not None and col is not None:
                out[j] = self.matrix[row, col]
            else:
                out[j] = self.fallback.get(item, self.global_mean)
        return out

    def save(self, folder: Path) -> None:
        """Write ``prior.npy`` (no pickles) and ``prior.json`` (ids and fallbacks)."""
        with atomic_path(folder / "prior.npy") as tmp, tmp.open("wb") as f:
            np.save(f, self.matrix.astype("float32"), allow_pickle=False)
        meta = {"users": self.users, "items": self.items, "global_mean": self.global_mean}
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
        matrix = np.load(folder / "prior.npy", allow_pickle=False)
        fb = read_parquet(folder / "prior_fallback.parquet")
        return cls(
            meta["users"],
            meta["items"],
            matrix,
            dict(zip(fb["item_id"], fb["fallback"], strict=True)),
            meta["global_mean"],
        )


def _scores(scorer, users: list[str], items: list[str]) -> np.ndarray:  # noqa: ANN001
    from lenskit.data import ItemList

    matrix = np.empty((len(users), len(items)), dtype="float64")
    candidates = ItemList(items)
    for r, user in enumerate(users):
        scores = scorer(user, candidates).scores()
        matrix[r] = np.nan if scores is None else scores
    return matrix


def fit_prior_matrix(
    kind: str,
    config: EvaluateConfig,
    training: pd.DataFrame,
    users: list[str],
    items: pd.DataFrame,
    scale: tuple[float, float],
    seed: int,
) -> CFPrior:
    """Fit the prior model on all training data and score the users x catalogue.

    Pairs the model cannot score (MF on an unseen item) get the user+item bias
    prediction; items nobody rated get the global mean.
    """
    dataset = training_dataset(training)
    scorer = fit_baseline(kind, config, dataset, seed)
    known = items[items["train_count"] > 0]["item_id"].astype(str).tolist()
    matrix = _scores(scorer, users, known)
    if np.isnan(matrix).any():
        bias = _scores(fit_baseline("user_item_bias", config, dataset, seed), users, known)
        matrix = np.where(np.isnan(matrix), bias, matrix)
    global_mean = float(training["rating"].mean())
    matrix = np.clip(np.nan_to_num(matrix, nan=global_mean), *scale)
    means = items.set_index("item_id")["train_mean_rating"].dropna()
    return CFPrior(users, known, matrix, {str(k): float(v) for k, v in means.items()}, global_mean)


def out_of_fold_priors(
    kind: str,
    config: EvaluateConfig,
    train: pd.DataFrame,
    others: pd.DataFrame,
    scale: tuple[float, float],
    seed: int,
    folds: int = 5,
) -> np.ndarray:
    """Prior predictions of the sampled users' train ratings, each by a model fitted
    without it (K folds over those ratings; other users' ratings always included).

    Returns:
        One prediction per row of `train`, in its order.
    """
    from lenskit.data import ItemList

    rng = np.random.default_rng(seed)
    fold_of = rng.integers(0, folds, len(train))
    out = np.full(len(train), np.nan)
    cols = ["user_id", "item_id", "rating", "timestamp"]
    for fold in range(folds):
        held = fold_of == fold
        fit_on = pd.concat([train.loc[~held, cols], others[cols]], ignore_index=True)
        dataset = training_dataset(fit_on)
        scorer = fit_baseline(kind, config, dataset, seed)
        fallback = (
            fit_baseline("user_item_bias", config, dataset, seed)
            if kind != "user_item_bias"
            else None
        )
        part = train[held]
        for user, idx in part.groupby("user_id").indices.items():
            rows = np.flatnonzero(held)[idx]
            items = ItemList(part["item_id"].to_numpy()[idx])
            scores = scorer(user, items).scores()
            if fallback is not None and (scores is None or np.isnan(scores).any()):
                backup = fallback(user, items).scores()
                scores = backup if scores is None else np.where(np.isnan(scores), backup, scores)
            out[rows] = scores
    mean = float(train["rating"].mean())
    return np.clip(np.nan_to_num(out, nan=mean), *scale)
