"""The collaborative prior: what a classical CF model predicts for a user and an item.

The agents are given the prediction of a LensKit model (user+item bias, biased MF,
explicit item-kNN, or a stack of the three) fitted on the training data
(:mod:`personasim.agents.prior_fitting` fits it). The user+item bias and biased MF priors
are kept as their model's factors (:class:`~personasim.cf.factors.ScoreFactors`:
(users + items) x factors numbers, each pair computed when it is asked for); item-kNN and
the blend as a dense user x item matrix of the simulated users, scored by LensKit itself.

The prediction enters the answer as a Gaussian log-prior over the scale's levels whose
expectation is the prediction (:func:`prior_logits`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personasim.cf.factors import ScoreFactors
from personasim.data.tables import read_parquet, write_parquet
from personasim.rating_scale import RatingScale
from personasim.run_folder import ADAPTERS
from personasim.workspace import atomic_path

__all__ = ["CFPrior", "prior_logits"]

_TABLES = (ADAPTERS.prior_dense, ADAPTERS.prior_factors)
"""Where a prior's table is saved: the dense matrix, or the model's factors."""


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
        return any(file.under(folder).is_file() for file in _TABLES)

    def save(self, folder: Path) -> None:
        """Write the table (``prior.npy``, or ``prior_factors.npz`` for factors; no
        pickles) and ``prior.json`` (ids and fallbacks)."""
        dense, factors = (file.under(folder) for file in _TABLES)
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
        with atomic_path(ADAPTERS.prior_meta.under(folder)) as tmp:
            tmp.write_text(json.dumps(meta))
        write_parquet(
            pd.DataFrame(
                {"item_id": list(self.fallback), "fallback": list(self.fallback.values())}
            ),
            ADAPTERS.prior_fallback.under(folder),
        )

    @classmethod
    def load(cls, folder: Path) -> CFPrior:
        """Read what :meth:`save` wrote."""
        meta = json.loads(ADAPTERS.prior_meta.under(folder).read_text())
        dense, factors = (file.under(folder) for file in _TABLES)
        matrix: np.ndarray | ScoreFactors
        if factors.is_file():
            with np.load(factors, allow_pickle=False) as data:
                matrix = ScoreFactors.from_arrays(data)
        else:
            matrix = np.load(dense, allow_pickle=False)
        fb = read_parquet(ADAPTERS.prior_fallback.under(folder))
        by_user = meta.get("user_fallback") or [None] * len(meta["users"])
        return cls(
            meta["users"],
            meta["items"],
            matrix,
            dict(zip(fb["item_id"], fb["fallback"], strict=True)),
            meta["global_mean"],
            {u: v for u, v in zip(meta["users"], by_user, strict=True) if v is not None},
        )
