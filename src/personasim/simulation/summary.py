"""The simulation's verdict in numbers: each recommender's simulated and offline metrics.

The sessions of every recommender are stacked into one events and one sessions table
(with each user's persona); per recommender, and per persona, the simulated measures
(:func:`~personasim.simulation.measures.session_metrics`) are set beside how the log
judges the shown items (:func:`log_hits`) and the offline metrics; the recommenders'
orderings by each simulated and each offline metric are compared (Kendall, Spearman),
overall (:func:`rank_agreements`) and per user (:func:`user_agreement`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from personasim.config import NO_RATINGS
from personasim.simulation.measures import (
    per_user_agreement,
    rank_agreement,
    session_metrics,
    user_session_metrics,
)
from personasim.simulation.sessions import SessionLog

__all__ = [
    "LIKES_NOT_MEASURED",
    "OFFLINE_METRICS",
    "RATING_MEASURES",
    "log_hits",
    "rank_agreements",
    "recommender_metrics",
    "rounded",
    "stack_logs",
    "user_agreement",
]

OFFLINE_METRICS = ("ndcg", "recall")
"""Offline metrics per recommender (at ``offline_k``), from the held-out log."""

_AGREEMENT_SIMULATED = ("likes", "watch_rate", "like_rate", "mean_rating", "exit_page")
RATING_MEASURES = ("likes", "like_rate", "mean_rating")
"""The simulated measures a log without ratings does not have."""
LIKES_NOT_MEASURED = (
    f"likes, like rate and mean rating: {NO_RATINGS}; the agents decide only what they "
    "watch, and the verdict is the watch rate, the log-hit ratio and the offline metrics"
)


def stack_logs(
    logs: dict[str, SessionLog], persona_of: dict[str, str], round_: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every recommender's events and sessions in two tables, with persona and round."""
    events = pd.concat(
        [log.events.assign(recommender=name, round=round_) for name, log in logs.items()],
        ignore_index=True,
    )
    sessions = pd.concat(
        [log.sessions.assign(recommender=name, round=round_) for name, log in logs.items()],
        ignore_index=True,
    )
    for frame in (events, sessions):
        frame["persona"] = frame["user_id"].map(persona_of).astype("string")
    lead = ["recommender", "round", "user_id", "persona"]
    return (
        events[lead + [c for c in events.columns if c not in lead]],
        sessions[lead + [c for c in sessions.columns if c not in lead]],
    )


def log_hits(events: pd.DataFrame, test_items: set[tuple[str, str]]) -> dict[str, float]:
    """How the log judges the shown items: the share the user rated in the held-out
    period, and that share among the items the agent watched and among those it skipped."""
    in_log = np.array(
        [(u, i) in test_items for u, i in zip(events["user_id"], events["item_id"], strict=True)]
    )
    watched = events["watched"].to_numpy(bool)
    hits_watched = float(in_log[watched].mean()) if watched.any() else float("nan")
    hits_skipped = float(in_log[~watched].mean()) if (~watched).any() else float("nan")
    return {
        "log_hit_rate": float(in_log.mean()) if len(in_log) else float("nan"),
        "log_hit_rate_watched": hits_watched,
        "log_hit_rate_skipped": hits_skipped,
        # >1: the agents watch what the real user went on to rate more than what they skip
        "log_hit_ratio": hits_watched / hits_skipped if hits_skipped > 0 else float("nan"),
    }


def recommender_metrics(
    names: list[str],
    events: pd.DataFrame,
    sessions: pd.DataFrame,
    offline: pd.DataFrame,
    test_items: set[tuple[str, str]],
    *,
    catalogue: int,
    novelty: dict[str, float],
    implicit: bool,
) -> dict[str, Any]:
    """Each recommender's simulated metrics, log hits and offline metrics, and its
    simulated metrics per persona.

    Args:
        names: The recommenders, in their order.
        events: Every recommender's events (:func:`stack_logs`).
        sessions: Every recommender's sessions (:func:`stack_logs`).
        offline: The offline metrics per user and recommender.
        test_items: The ``(user, item)`` pairs of the held-out log.
        catalogue: The number of items in the training log (coverage).
        novelty: Each item's novelty.
        implicit: Whether the log has no ratings: the rating measures are left out,
            and ``not_measured`` says so.

    Returns:
        ``{"recommenders": {name: row}, "personas": {name: {persona: row}}}``, with
        ``not_measured`` when `implicit`.
    """
    metrics: dict[str, Any] = {"recommenders": {}, "personas": {}}
    for name in names:
        ev, se = (
            events[events["recommender"] == name],
            sessions[sessions["recommender"] == name],
        )
        row = session_metrics(ev, se, catalogue=catalogue, novelty=novelty)
        row.update(log_hits(ev, test_items))
        off = offline[offline["recommender"] == name]
        for metric in OFFLINE_METRICS:
            row[metric] = float(off[metric].mean())
        metrics["recommenders"][name] = rounded(row)
        metrics["personas"][name] = {
            str(p): rounded(
                session_metrics(
                    ev[ev["persona"] == p],
                    se[se["persona"] == p],
                    catalogue=catalogue,
                    novelty=novelty,
                )
            )
            for p in sorted(se["persona"].dropna().unique())
        }
    if implicit:  # no ratings: the likes of the sessions are not there to count
        for row in [metrics["recommenders"], *metrics["personas"].values()]:
            for entry in row.values():
                for measure in RATING_MEASURES:
                    entry.pop(measure, None)
        metrics["not_measured"] = {"likes": LIKES_NOT_MEASURED}
    return metrics


def rank_agreements(table: dict[str, dict[str, float]], headline: str = "likes") -> dict[str, Any]:
    """Kendall and Spearman between every simulated metric and every offline one (the
    `headline` one against nDCG first)."""
    pairs = {}
    measured = next(iter(table.values()), {})
    for simulated in [m for m in _AGREEMENT_SIMULATED if m in measured]:
        for off in OFFLINE_METRICS:
            result = rank_agreement(
                {n: row[simulated] for n, row in table.items()},
                {n: row[off] for n, row in table.items()},
            )
            pairs[f"{simulated}~{off}"] = rounded(result)
    return {
        "headline": {"simulated": headline, "offline": "ndcg", **pairs[f"{headline}~ndcg"]},
        "pairs": pairs,
    }


def user_agreement(
    events: pd.DataFrame,
    sessions: pd.DataFrame,
    offline: pd.DataFrame,
    simulated: str = "likes",
) -> pd.DataFrame:
    """Per user: do the recommenders that gave this user's agent more likes (or
    watches: `simulated`) also score a higher nDCG on this user's held-out items?"""
    per_user = []
    for name, se in sessions.groupby("recommender", sort=False):
        ev = events[events["recommender"] == name]
        per_user.append(user_session_metrics(ev, se).assign(recommender=name))
    table = pd.concat(per_user).pivot(index="user_id", columns="recommender", values=simulated)
    ndcg = offline.pivot(index="user_id", columns="recommender", values="ndcg")
    return per_user_agreement(table, ndcg)


def rounded(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with every float rounded to 6 decimals (as the metrics are written)."""
    return {
        k: (round(float(v), 6) if isinstance(v, (float, np.floating)) else v)
        for k, v in values.items()
    }
