"""Ratings of a table of user-item pairs: one request per user, the answers as columns.

The evaluation scores ``user_id, item_id`` frames
(:meth:`~personasim.agents.agent.UserAgent.predict_pairs`); :func:`pair_predictions`
groups a frame's pairs by user into the agents' ``(user_id, item_ids)`` requests and
writes their rating distributions back beside the pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["pair_predictions"]

Requests = list[tuple[str, list[str]]]
Answers = Mapping[str, Sequence[Mapping[str, np.ndarray]]]


def pair_predictions(
    pairs: pd.DataFrame,
    answer: Callable[[Requests], Answers],
) -> dict[str, pd.DataFrame]:
    """The pairs with each mode's ratings of them.

    Args:
        pairs: ``user_id, item_id`` pairs (any other columns are kept).
        answer: The agents' rating distributions of ``(user_id, item_ids)`` requests,
            per mode (as :meth:`~personasim.agents.agent.UserAgent.
            rating_distributions_by_mode` gives them).

    Returns:
        Per mode, a copy of `pairs` with ``predicted`` (expectation), ``argmax``,
        ``digit_mass`` and ``greedy_is_digit``.
    """
    groups = list(pairs.groupby("user_id", sort=False).indices.items())
    results = answer([(u, pairs["item_id"].to_numpy()[idx].tolist()) for u, idx in groups])
    out = {}
    for mode, per_user in results.items():
        frame = pairs.copy()
        for column in ("predicted", "argmax", "digit_mass"):
            frame[column] = np.nan
        greedy = np.zeros(len(frame), dtype=bool)
        for (_, idx), result in zip(groups, per_user, strict=True):
            frame.iloc[idx, frame.columns.get_loc("predicted")] = result["expected"]
            frame.iloc[idx, frame.columns.get_loc("argmax")] = result["argmax"]
            frame.iloc[idx, frame.columns.get_loc("digit_mass")] = result["digit_mass"]
            greedy[idx] = result["greedy_is_digit"]
        frame["greedy_is_digit"] = greedy
        out[mode] = frame
    return out
