"""How far an adapter's own answer is trusted over its collaborative prior (the LM weights).

The agent's rating distribution is ``softmax(w * log p_LM(digit) + log-prior(digit))``
over the digits of the scale's levels: ``w = 1`` is the trained adapter as it is,
``w = 0`` the prior alone (which, centred on its mean, reproduces the CF model). An
adapter that moves the prediction more than its evidence warrants (on ML-1M it spread
the predictions, buying MAE and costing RMSE) gets ``w < 1``. The weight is fitted per
adapter on rating examples it never trained on: the RMSE of the expected rating, a
bounded scalar search.

The watch answer has its own weight: ``P(yes) = sigmoid(w * (log p_LM(yes) -
log p_LM(no)) + prior log-odds)``, fitted on held-out watch examples by log loss; at
``w = 1`` it is the trained adapter's answer with the prior added, at ``w = 0`` the
watch prior alone. An adapter whose two weights are 0 answers exactly as its priors do,
which :class:`~personasim.agents.prior_agents.PriorAgents` computes without the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit, logsumexp, softmax

from personasim.agents.lm import AgentLM
from personasim.agents.prior import prior_logits
from personasim.config import AgentConfig

__all__ = [
    "LM_WEIGHT_BOUNDS",
    "answer_log_probs",
    "digit_log_probs",
    "fit_lm_weight",
    "fit_watch_lm_weight",
    "held_out_ratings",
    "watch_margins",
    "weighted_digit_probs",
    "weighted_watch_probs",
]

LM_WEIGHT_BOUNDS = (0.0, 2.0)
"""The interval the fitted weight is searched in (above 1: the adapter is trusted more
than it was trained to be)."""


def _best_weight(loss: Callable[[float], float]) -> float:
    """The weight in :data:`LM_WEIGHT_BOUNDS` of lowest `loss`, to 4 decimals: the
    bounded search's, or an end of the interval or 1 where that is as low (the search
    never evaluates the ends, and a weight of exactly 0 lets the priors answer alone)."""
    found = round(float(minimize_scalar(loss, bounds=LM_WEIGHT_BOUNDS, method="bounded").x), 4)
    return min((found, *LM_WEIGHT_BOUNDS, 1.0), key=lambda w: (loss(w), w != found))


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


def weighted_watch_probs(
    lm_margin: np.ndarray, log_odds: np.ndarray | None, weight: float
) -> np.ndarray:
    """P(yes), ``sigmoid(weight * lm_margin + log_odds)``.

    Args:
        lm_margin: ``[n]`` the language model's ``log p(yes) - log p(no)`` (each summed
            over its spellings), before the prior.
        log_odds: ``[n]`` the watch prior's log-odds, or None.
        weight: The watch LM weight.
    """
    scores = weight * np.asarray(lm_margin, dtype="float64")
    if log_odds is not None:
        scores = scores + np.asarray(log_odds, dtype="float64")
    return expit(scores)


def fit_watch_lm_weight(
    lm_margin: np.ndarray, log_odds: np.ndarray | None, truth: np.ndarray
) -> dict[str, Any]:
    """The watch weight in :data:`LM_WEIGHT_BOUNDS` of lowest log loss on held-out watch
    examples, with the log loss there, at 1 (the adapter as trained) and at 0 (the
    watch prior alone).

    Args:
        lm_margin: ``[n]`` ``log p(yes) - log p(no)`` under the adapter.
        log_odds: ``[n]`` the watch prior's (out-of-fold) log-odds of each example.
        truth: ``[n]`` 1 watched, 0 not.
    """
    truth = np.asarray(truth, dtype="float64")

    def loss(weight: float) -> float:
        p = np.clip(weighted_watch_probs(lm_margin, log_odds, weight), 1e-12, 1 - 1e-12)
        return float(-np.mean(truth * np.log(p) + (1 - truth) * np.log1p(-p)))

    weight = _best_weight(loss)
    return {
        "watch_lm_weight": weight,
        "examples": int(len(truth)),
        "log_loss": round(loss(weight), 6),
        "log_loss_as_trained": round(loss(1.0), 6),
        "log_loss_prior_alone": round(loss(0.0), 6),
    }


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

    weight = _best_weight(error)
    return {
        "lm_weight": weight,
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


def answer_log_probs(
    lm: AgentLM,
    examples: pd.DataFrame,
    texts: dict[str, str],
    config: AgentConfig,
    adapter: str,
    keep: list[int],
) -> np.ndarray:
    """``[n, len(keep)]`` the language model's log-probabilities of the tokens `keep` at
    the answer of each example (``user_id, question``) under `adapter`."""
    import torch

    prefixes: list[tuple[int, ...]] = []
    slot_of: dict[str, int] = {}
    items = []
    for user, question in zip(examples["user_id"].astype(str), examples["question"], strict=True):
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
            keep=keep,
        )
    return scored.log_probs[:, : len(keep)].double().numpy()


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

    lm_digits = answer_log_probs(lm, rate, texts, config, adapter, list(lm.digit_ids))
    offsets = None
    if "logit" in config.prior:
        priors = torch.tensor(rate["prior"].to_numpy("float32"))
        offsets = prior_logits(priors, config.prior_sigma, config.prior_centre, lm.scale)
        offsets = offsets.double().numpy()
    return lm_digits, offsets


def watch_margins(
    lm: AgentLM, watch: pd.DataFrame, texts: dict[str, str], config: AgentConfig, adapter: str
) -> np.ndarray:
    """``log p(yes) - log p(no)`` (each over its spellings) of the language model under
    `adapter` for watch examples ``watch`` (``user_id, question``)."""
    yes, no = list(lm.yes_ids), list(lm.no_ids)
    log_probs = answer_log_probs(lm, watch, texts, config, adapter, yes + no)
    return logsumexp(log_probs[:, : len(yes)], axis=1) - logsumexp(log_probs[:, len(yes) :], axis=1)
