"""How far an adapter's own answer is trusted over its collaborative prior (the LM weight).

The agent's rating distribution is ``softmax(w * log p_LM(digit) + log-prior(digit))``
over the digits of the scale's levels: ``w = 1`` is the trained adapter as it is,
``w = 0`` the prior alone (which, centred on its mean, reproduces the CF model). An
adapter that moves the prediction more than its evidence warrants (on ML-1M it spread
the predictions, buying MAE and costing RMSE) gets ``w < 1``. The weight is fitted per
adapter on rating examples it never trained on: the RMSE of the expected rating, a
bounded scalar search.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import softmax

from personasim.agents.modeling import AgentLM
from personasim.agents.prior import prior_logits
from personasim.config import AgentConfig

__all__ = [
    "LM_WEIGHT_BOUNDS",
    "digit_log_probs",
    "fit_lm_weight",
    "held_out_ratings",
    "weighted_digit_probs",
]

LM_WEIGHT_BOUNDS = (0.0, 2.0)
"""The interval the fitted weight is searched in (above 1: the adapter is trusted more
than it was trained to be)."""


def weighted_digit_probs(
    lm_digits: np.ndarray, offsets: np.ndarray | None, weight: float
) -> np.ndarray:
    """The distribution over the rating levels, ``softmax(weight * lm_digits + offsets)``.

    Args:
        lm_digits: ``[n, levels]`` the language model's log-probabilities of the digits
            (before the prior).
        offsets: ``[n, levels]`` the CF log-prior added to them, or None.
        weight: The LM weight.
    """
    scores = weight * np.asarray(lm_digits, dtype="float64")
    if offsets is not None:
        scores = scores + np.asarray(offsets, dtype="float64")
    return softmax(scores, axis=1)


def fit_lm_weight(
    lm_digits: np.ndarray,
    offsets: np.ndarray | None,
    truth: np.ndarray,
    levels: np.ndarray | None = None,
) -> dict[str, Any]:
    """The weight in :data:`LM_WEIGHT_BOUNDS` that minimises the RMSE of the expected
    rating on held-out examples, with the RMSE there at the weight, at 1 (the adapter as
    trained) and at 0 (the prior alone).

    Args:
        lm_digits: ``[n, levels]`` log-probabilities of the digits under the adapter.
        offsets: ``[n, levels]`` the CF log-prior of each example (None: no prior).
        truth: ``[n]`` the ratings given.
        levels: The ratings the digits stand for (1..5 when None).
    """
    stars = np.arange(1, 6, dtype="float64") if levels is None else np.asarray(levels, "float64")
    truth = np.asarray(truth, dtype="float64")

    def error(weight: float) -> float:
        expected = weighted_digit_probs(lm_digits, offsets, weight) @ stars
        return float(np.sqrt(np.mean((expected - truth) ** 2)))

    found = minimize_scalar(error, bounds=LM_WEIGHT_BOUNDS, method="bounded")
    weight = float(found.x)
    return {
        "lm_weight": round(weight, 4),
        "examples": int(len(truth)),
        "rmse": round(error(weight), 6),
        "rmse_as_trained": round(error(1.0), 6),
        "rmse_prior_alone": round(error(0.0), 6),
    }


def held_out_ratings(
    rate: pd.DataFrame, chosen: pd.Index, size: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Up to `size` of an adapter's rating examples `rate` that are not in `chosen` (the
    examples it trains on), drawn at random, in their original order."""
    pool = rate[~rate.index.isin(chosen)]
    if len(pool) <= size:
        return pool
    return pool.iloc[np.sort(rng.choice(len(pool), size=size, replace=False))]


def digit_log_probs(
    lm: AgentLM, rate: pd.DataFrame, texts: dict[str, str], config: AgentConfig, adapter: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """The language model's log-probabilities of the rating digits for rating examples
    ``rate`` (``user_id, question, prior``) under `adapter`, and the CF log-prior that
    training adds to them (None when the prior is not on the logits).

    Args:
        lm: The model holding `adapter`.
        rate: Rating examples.
        texts: Profile text per user.
        config: The `[agents]` section (prior, sigma, centre, batch size).
        adapter: The adapter to score with.
    """
    import torch

    prefixes: list[tuple[int, ...]] = []
    slot_of: dict[str, int] = {}
    items = []
    for user, question in zip(rate["user_id"].astype(str), rate["question"], strict=True):
        if user not in slot_of:
            slot_of[user] = len(prefixes)
            prefixes.append(lm.encode_prefix(texts[user]))
        items.append((slot_of[user], lm.encode_suffix(question)))
    lm.model.eval()
    with torch.inference_mode():
        scored = lm.score_cached(
            prefixes,
            [adapter] * len(prefixes),
            items,
            chunk=config.score_batch_items,
            keep=lm.digit_ids,
        )
    lm_digits = scored.log_probs[:, : len(lm.digit_ids)].double().numpy()
    offsets = None
    if "logit" in config.prior:
        priors = torch.tensor(rate["prior"].to_numpy("float32"))
        offsets = prior_logits(priors, config.prior_sigma, config.prior_centre, lm.scale)
        offsets = offsets.double().numpy()
    return lm_digits, offsets
