"""The agents' watch prior of a configured kind: the stacked choice model or one implicit
scorer, fitted with the out-of-fold scores of the agents' own watch examples.

The train stage fits the agents' own prior with it, and `simulate` the priors it swaps
in to check that the ranking of recommenders does not follow the simulator's model; a
stored stacked prior gets its model back for the sessions from :func:`session_model`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from personasim.agents.watch_prior import WatchPrior, fit_watch_prior
from personasim.cf.choice import ChoiceScorer, fit_stacked_choice
from personasim.cf.choice_features import item_genres

__all__ = ["fit_choice_prior", "session_model"]


def fit_choice_prior(
    kind: str,
    train: pd.DataFrame,
    others: pd.DataFrame,
    items: pd.DataFrame,
    users: list[str],
    watch: pd.DataFrame,
    *,
    seed: int,
    exclude: Iterable[str] = (),
) -> tuple[WatchPrior, Any, dict[str, Any]]:
    """Fit the watch prior of `kind` ("stacked", or an implicit scorer's name).

    Args:
        kind: The prior.
        train: The simulated users' train ratings.
        others: The other users' ratings.
        items: The catalogue (``item_id, train_count``, and ``genres`` when known): the
            prior's columns are the items with training ratings.
        users: The simulated users (the prior's rows).
        watch: The agents' watch examples, ``user_id, item_id, target``.
        seed: Every seed.
        exclude: Feature families the stacked model leaves out.

    Returns:
        The prior, the out-of-fold log-odds of each watch example, and a report of the
        fit (the stacked model's rows, positives and features).
    """
    known = items[items["train_count"] > 0]["item_id"].astype(str).tolist()
    choice: dict[str, Any] = {}
    report: dict[str, Any] = {}
    if kind == "stacked":
        stacked = fit_stacked_choice(train, others, item_genres(items), seed=seed, exclude=exclude)
        choice = {
            "fit_scorer": stacked.on,
            "full_scorer": stacked.scorer,
            "calibration": "logistic",
        }
        report = stacked.report
    prior, odds = fit_watch_prior(
        kind, train, others, users, known, watch.reset_index(drop=True), seed=seed, **choice
    )
    if kind == "stacked":
        prior.session = stacked.scorer
    return prior, odds, report


def session_model(
    train: pd.DataFrame,
    others: pd.DataFrame,
    items: pd.DataFrame,
    *,
    seed: int,
    exclude: Iterable[str] = (),
) -> ChoiceScorer:
    """The model behind a stored stacked prior (its :attr:`~personasim.agents.
    watch_prior.WatchPrior.session`), fitted as :func:`fit_choice_prior` fits it: the
    same data, seed and families give the stored scores."""
    return fit_stacked_choice(train, others, item_genres(items), seed=seed, exclude=exclude).scorer
