"""The feedback rounds: each recommender retrained on what the agents took, again and again.

Round 0 is the first round's sessions and top-k lists; each later round adds the items
the agents watched in the previous one to the recommender's training data (stamped
after the log's last time), retrains it, ranks again and runs the sessions again.
Every round is measured as :mod:`personasim.simulation.feedback` describes, on its
sessions and its top-k lists (whose length does not depend on how long the agents
stayed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from personasim.config import SimulateConfig
from personasim.simulation.experiment import ranked_pages, sample_users
from personasim.simulation.feedback import change_intervals, exposure_measures, history_drift
from personasim.simulation.measures import session_metrics
from personasim.simulation.recommenders import Recommender
from personasim.simulation.sessions import SessionLog
from personasim.simulation.summary import RATING_MEASURES, rounded

__all__ = ["FeedbackContext", "RoundSessions", "feedback_rounds"]

RoundSessions = Callable[[str, int, dict[str, list[list[str]]]], SessionLog]
"""``(recommender, round, pages) -> its sessions`` (from a checkpoint when there)."""


@dataclass
class FeedbackContext:
    """What the feedback rounds share with the first round."""

    training: pd.DataFrame
    """The recommenders' training log (``user_id, item_id, rating, timestamp``)."""
    history: dict[str, list[str]]
    """Each simulated user's training items."""
    genres: dict[str, list[str]]
    """Each item's genres."""
    popularity: dict[str, float]
    """Each item's popularity percentile in the training log."""
    novelty: dict[str, float]
    """Each item's novelty."""
    catalogue: int
    """The number of items in the training log."""


def feedback_rounds(
    context: FeedbackContext,
    recommenders: dict[str, Recommender],
    logs: dict[str, SessionLog],
    first_top: dict[str, dict[str, list[str]]],
    users: list[str],
    simulate: RoundSessions,
    config: SimulateConfig,
    *,
    seed: int,
    bootstrap_rounds: int,
    rates: bool,
) -> tuple[pd.DataFrame, list[pd.DataFrame], dict[str, Any]]:
    """The feedback study: rounds of adding what the agents watched, retraining,
    ranking and simulating again.

    Args:
        context: What the rounds share with the first round.
        recommenders: The fitted recommenders (refitted here, round after round).
        logs: Each recommender's first-round sessions.
        first_top: Each recommender's first-round top-k list per user.
        users: The simulated users (``feedback_users`` of them take part).
        simulate: Runs one recommender's sessions in one round.
        config: The `[simulate]` section.
        seed: The run's seed.
        bootstrap_rounds: Resamples of the change intervals.
        rates: Whether the agents rate (else the rating measures are left out).

    Returns:
        One row per recommender and round, the events (``user_id, watched``) of the
        rounds after the first, and per recommender the 95% intervals of the change
        of its lists from the first round to the last.
    """
    ctx = context
    cfg = config
    loop_users = sample_users(users, cfg.feedback_users, seed, "feedback")
    chosen = set(loop_users)
    start = {u: list(ctx.history[u]) for u in loop_users}
    catalogue = sorted(ctx.training["item_id"].astype(str).unique())
    rows = []
    later: list[pd.DataFrame] = []
    spread: dict[str, Any] = {}
    last_time = int(ctx.training["timestamp"].max())
    for name, recommender in recommenders.items():
        log = SessionLog(
            logs[name].events[logs[name].events["user_id"].isin(chosen)],
            logs[name].sessions[logs[name].sessions["user_id"].isin(chosen)],
        )
        added = ctx.training
        user_history = {u: list(start[u]) for u in loop_users}
        for round_ in range(cfg.feedback_rounds + 1):
            t0 = time.perf_counter()
            if round_:
                took = log.events[log.events["watched"]]
                new = pd.DataFrame(
                    {
                        "user_id": took["user_id"].astype(str),
                        "item_id": took["item_id"].astype(str),
                        "rating": took["rating"].astype(float),
                        "timestamp": last_time + round_,
                    }
                )
                added = pd.concat([added, new], ignore_index=True)
                for user, item in zip(new["user_id"], new["item_id"], strict=True):
                    user_history[user].append(item)
                recommender.fit(added, seed=seed)
                pages, top = ranked_pages(recommender, loop_users, user_history, cfg)
                log = simulate(name, round_, pages)
                later.append(log.events[["user_id", "watched"]])
            else:
                top = {u: first_top[name][u] for u in loop_users}
            listed = pd.DataFrame(
                [(u, i) for u, items in top.items() for i in items],
                columns=["user_id", "item_id"],
            )
            if round_ == 0:
                first_listed = listed
            session = session_metrics(
                log.events, log.sessions, catalogue=ctx.catalogue, novelty=ctx.novelty
            )
            session.pop("coverage")  # of the lists instead, below
            if not rates:
                for measure in RATING_MEASURES:
                    session.pop(measure, None)
            rows.append(
                {
                    "recommender": name,
                    "round": round_,
                    **rounded(session),
                    **rounded(exposure_measures(listed, catalogue, ctx.genres, ctx.popularity)),
                    "history_drift": round(history_drift(start, user_history, ctx.genres), 6),
                    "items_added": int(len(added) - len(ctx.training)),
                    "seconds": round(time.perf_counter() - t0, 2),
                }
            )
        spread[name] = change_intervals(
            first_listed,
            listed,
            len(catalogue),
            ctx.genres,
            rounds=bootstrap_rounds,
            seed=seed,
        )
    return pd.DataFrame(rows), later, spread
