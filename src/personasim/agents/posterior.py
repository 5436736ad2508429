"""The agents' answers: the language model's answer scores combined with the priors.

The rating distribution is ``softmax(w * log p_LM(digit) + log-prior(digit))`` over the
digits of the scale's levels and P(watch) ``sigmoid(w * (log p_LM(yes) - log p_LM(no)) +
prior log-odds)``, with ``w`` the adapter's LM weight
(:mod:`personasim.agents.calibration`). Each is computed on one of two paths that agree
in exact arithmetic: at ``w = 1`` (an adapter as trained, and wherever no weight
applies) the prior is added to the model's kept log-probabilities in float32 and they are
renormalised; at any other weight the formula is taken in float64 over the answers
alone. They differ in the last bits, and the runs' numbers were made with both, so both
stay.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from personasim.agents.answers import (
    AnswerScores,
    answer_distribution,
    with_prior,
    with_watch_prior,
)
from personasim.agents.calibration import weighted_digit_probs, weighted_watch_probs
from personasim.agents.prior import prior_logits
from personasim.config import AgentConfig
from personasim.rating_scale import RatingScale

__all__ = ["rating_answer", "watch_answer"]


def rating_answer(
    lp: AnswerScores,
    priors: np.ndarray | None,
    weight: float,
    config: AgentConfig,
    scale: RatingScale,
) -> dict[str, np.ndarray]:
    """The rating distribution of each answer from its kept log-probabilities.

    Args:
        lp: The answers' scores, whose first ``len(scale.levels)`` columns are the digits.
        priors: ``[n]`` the CF prior's ratings, whose Gaussian log-prior
            (:func:`~personasim.agents.prior.prior_logits`) is added to the digits; None
            for no prior.
        weight: The adapter's LM weight (1 where the prior is not used).
        config: The agents' settings (the prior's width and centre).
        scale: The rating scale.

    Returns:
        ``probs`` [n, levels], ``expected`` [n], ``argmax`` [n], ``digit_mass`` [n] (the
        model's own probability on the digits, before the prior) and ``greedy_is_digit``
        [n] (whether free greedy decoding would start with a rating, prior included).
    """
    import torch

    offsets = None
    if priors is not None:
        offsets = prior_logits(
            torch.tensor(priors, dtype=torch.float32),
            config.prior_sigma,
            config.prior_centre,
            scale,
        )
    levels = scale.levels
    digits = list(range(len(levels)))  # the digits' columns of the kept answers
    adjusted = with_prior(lp.log_probs, digits, offsets)
    if weight == 1.0:
        probs, _ = answer_distribution(adjusted, [[c] for c in digits])
    else:
        probs = torch.from_numpy(
            weighted_digit_probs(
                lp.log_probs[:, digits].double().numpy(),
                None if offsets is None else offsets.double().numpy(),
                weight,
            )
        )
    # the language model's own mass on the digits, before the prior moves it
    mass = lp.log_probs[:, digits].exp().sum(dim=-1)
    probs_np = probs.double().numpy()
    # greedy decoding says a digit when one beats every other token, prior included
    shift = adjusted[:, -1] - lp.log_probs[:, -1]  # the renormalisation
    others = torch.maximum(adjusted[:, len(levels) : -1].amax(dim=-1), lp.rest_max + shift)
    return {
        "probs": probs_np,
        "expected": probs_np @ levels,
        "argmax": levels[probs_np.argmax(axis=1)],
        "digit_mass": mass.double().numpy(),
        "greedy_is_digit": (adjusted[:, digits].amax(dim=-1) >= others).numpy(),
    }


def watch_answer(
    lp: AnswerScores,
    yes: Sequence[int],
    no: Sequence[int],
    odds: np.ndarray | None,
    weight: float,
) -> np.ndarray:
    """P("yes") of each answer from its kept log-probabilities.

    Args:
        lp: The answers' scores.
        yes: The columns of the "yes" spellings.
        no: The columns of the "no" spellings.
        odds: ``[n]`` the watch prior's log-odds (taken in float32, the model's
            precision), or None.
        weight: The adapter's watch LM weight (1 where there are no log-odds).
    """
    import torch

    if odds is not None:
        odds = torch.tensor(odds, dtype=torch.float32)
    if weight != 1.0:
        margin = torch.logsumexp(lp.log_probs[:, yes], dim=-1) - torch.logsumexp(
            lp.log_probs[:, no], dim=-1
        )
        return weighted_watch_probs(margin.double().numpy(), odds.double().numpy(), weight)
    adjusted = with_watch_prior(lp.log_probs, yes, no, odds)
    probs, _ = answer_distribution(adjusted, [yes, no])
    return probs[:, 0].double().numpy()
