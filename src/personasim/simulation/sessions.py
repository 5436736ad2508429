"""Sessions with Agent4Rec's semantics: pages of items, watch, rate, continue or exit.

For every simulated user the recommender's ranking is cut into pages of
``page_size`` items (items of the user's history and repeats are dropped first, so an
item is never shown twice in a session). On each page the agent

1. decides, per item, whether it would watch it: P(watch) from the agent, then a seeded
   draw ("sample") or ``P(watch) >= watch_threshold`` ("threshold");
2. rates each watched item: a draw from its rating distribution ("sample") or the most
   likely rating ("threshold"); a rating at or above ``like_threshold`` is a like;
3. continues to the next page with probability

       P(continue) = patience[activity] x (1 - w + w x satisfaction)

   where ``patience`` is set per activity level (low, medium, high; the profile's
   activity trait), ``satisfaction`` is the share of the page's items the agent watched
   and liked, and ``w`` is ``satisfaction_weight``: an active user who liked what it saw
   stays longest. "sample" draws the decision, "threshold" continues when
   ``P(continue) >= 0.5``. A session also ends after ``max_pages`` pages or when the
   recommender has nothing left to show.

Draws are common random numbers: the uniform behind a decision is seeded by the run
seed, the session label (the feedback round, not the recommender), the user, the page,
the position on it and what is decided (watch, rating, continue), so two recommenders
that show a user the same item at the same point of a session draw the same number for
it, identical lists give identical sessions, and a difference between recommenders is
not the noise of different draws. Results do not depend on batching or on which other
users run. A rating is drawn by inverting the cumulative rating distribution at its
uniform.
Users are advanced page by page together: each page of every active user goes to the
agents in one call, which scores them in mixed-persona batches; then the watched items
are rated. With ``one_pass=True``, agents with a ``page_scores`` method
(:class:`~personasim.agents.UserAgent`) answer both questions of every shown item in one
pass over each user's profile instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from personasim.config import SimulateConfig
from personasim.rating_scale import RatingScale
from personasim.simulation.recommenders import stable_seed

__all__ = [
    "EVENT_COLUMNS",
    "SESSION_COLUMNS",
    "SessionLog",
    "SimulatedUsers",
    "continue_probability",
    "pages_of",
    "run_sessions",
]

logger = logging.getLogger(__name__)

EVENT_COLUMNS = [
    "user_id",
    "page",
    "position",
    "item_id",
    "p_watch",
    "watched",
    "rating",
    "liked",
]
"""One row per item shown: page and position from 1; rating NaN when not watched."""

SESSION_COLUMNS = ["user_id", "pages", "exit", "shown", "watched", "liked"]
"""One row per session; exit is "left" (the agent chose to), "max_pages" or
"no_items" (the recommender ran out)."""


class SimulatedUsers(Protocol):
    """The agents' side of a session (:class:`~personasim.agents.UserAgent` is one)."""

    def watch_probabilities(
        self, requests: Sequence[tuple[str, Sequence[str]]]
    ) -> list[np.ndarray]:
        """P(watch) of each item, per ``(user_id, item_ids)`` request."""

    def rating_distributions(
        self, requests: Sequence[tuple[str, Sequence[str]]]
    ) -> list[dict[str, np.ndarray]]:
        """Per request a dict whose ``probs`` is [n, 5] over ratings 1..5."""

    # Optional (UserAgent has them): ``remember(user_id, item_ids)``, told what a user
    # watched on each page, and ``forget_sessions()``, called before and after the
    # sessions; agents that read a session's watches (the stacked watch prior) use them.


@dataclass
class SessionLog:
    """What happened in the sessions of one recommender."""

    events: pd.DataFrame
    """One row per item shown (:data:`EVENT_COLUMNS`)."""
    sessions: pd.DataFrame
    """One row per user (:data:`SESSION_COLUMNS`)."""


def _page_answers(
    agents: SimulatedUsers, shown: list[tuple[str, list[str]]], one_pass: bool
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """P(watch) of every shown item, and its rating distribution when the agents can
    answer both questions in one pass (``page_scores``, as UserAgent can)."""
    page_scores = getattr(agents, "page_scores", None) if one_pass else None
    if page_scores is None:
        return agents.watch_probabilities(shown), None
    answers = page_scores(shown)
    return [w for w, _ in answers], [d["probs"] for _, d in answers]


@contextmanager
def _session_memory(
    agents: SimulatedUsers, on: bool
) -> Iterator[Callable[[str, list[str]], None] | None]:
    """The agents' ``remember`` while `on` (None otherwise, or when they have none);
    their sessions are forgotten before and after."""
    forget = getattr(agents, "forget_sessions", None)
    if forget is not None:
        forget()
    try:
        yield getattr(agents, "remember", None) if on else None
    finally:
        if forget is not None:
            forget()


def pages_of(
    ranking: Sequence[str], history: set[str], page_size: int, max_pages: int
) -> list[list[str]]:
    """Cut a ranking into pages, dropping history items and repeats."""
    seen: set[str] = set()
    kept: list[str] = []
    limit = page_size * max_pages
    for item in ranking:
        if item in history or item in seen:
            continue
        seen.add(item)
        kept.append(item)
        if len(kept) == limit:
            break
    return [kept[i : i + page_size] for i in range(0, len(kept), page_size)]


def continue_probability(activity_level: int, satisfaction: float, config: SimulateConfig) -> float:
    """P(continue) after a page (see the module docstring).

    Args:
        activity_level: 1 (low), 2 (medium) or 3 (high); other values are clipped.
        satisfaction: Share of the page's items watched and liked (watched, in a log
            without ratings), in [0, 1].
        config: The simulation settings (patience, satisfaction_weight).
    """
    level = min(max(int(activity_level), 1), 3)
    w = config.satisfaction_weight
    return float(config.patience[level - 1] * (1.0 - w + w * satisfaction))


def run_sessions(
    agents: SimulatedUsers,
    pages: dict[str, list[list[str]]],
    activity: dict[str, int],
    config: SimulateConfig,
    *,
    seed: int,
    label: str,
    advance: Callable[[float], None] | None = None,
    one_pass: bool = False,
    scale: RatingScale | None = None,
    rates: bool = True,
) -> SessionLog:
    """Simulate one session per user, all users advancing page by page together.

    Args:
        agents: Scores watch and rating decisions.
        pages: Per user, the pages the recommender would show (:func:`pages_of`).
        activity: Per user, the activity level 1..3 (missing: medium).
        config: Decision mode, thresholds, patience.
        seed: The run seed.
        label: Names the session set in the seeds (e.g. "round0"): the same label gives
            every recommender the same draws.
        advance: Called with the number of items scored after each page.
        one_pass: Ask agents that have ``page_scores`` both questions of every shown
            item in one pass (rates skipped items too; measured slower when few items
            are watched, see benchmarks/simulate_sessions.py), instead of rating only
            the watched ones.
        scale: The rating scale the agents' distributions are over (1-5 when None):
            the ratings drawn, and the likes when ``like_threshold`` is unset.
        rates: False for agents of a log without ratings: nothing is rated or liked
            (ratings NaN), and a page's satisfaction is the share of it watched.

    Returns:
        The events and one row per session.
    """
    scale = scale or RatingScale()
    levels = scale.levels
    likes_from = config.likes_from(scale)
    with _session_memory(agents, config.session_recency) as remember:
        users = list(pages)

        def draws(user: str, page: int, what: str, n: int) -> np.ndarray:
            return np.random.default_rng(stable_seed(seed, label, user, page, what)).random(n)

        sample = config.decisions == "sample"
        events: list[tuple] = []
        state = {u: {"pages": 0, "shown": 0, "watched": 0, "liked": 0, "exit": ""} for u in users}
        active = [u for u in users if pages[u]]
        for u in users:
            if not pages[u]:
                state[u]["exit"] = "no_items"
        page = 0
        while active:
            shown = [(u, pages[u][page]) for u in active]
            watch, page_probs = _page_answers(agents, shown, one_pass and rates)
            watched_items: dict[str, list[int]] = {}
            for (u, items), p in zip(shown, watch, strict=True):
                drawn = draws(u, page, "watch", len(items)) if sample else None
                decided = drawn < p if drawn is not None else p >= config.watch_threshold
                watched_items[u] = [k for k in range(len(items)) if decided[k]]
                if remember is not None and watched_items[u]:
                    remember(u, [items[k] for k in watched_items[u]])
            if not rates:  # a log without ratings: watches only
                rating_probs = {}
            elif page_probs is None:  # rate only what was watched
                to_rate = [(u, [items[k] for k in watched_items[u]]) for u, items in shown]
                to_rate = [r for r in to_rate if r[1]]
                answers = agents.rating_distributions(to_rate) if to_rate else []
                rating_probs = {u: d["probs"] for (u, _), d in zip(to_rate, answers, strict=True)}
            else:
                rating_probs = {
                    u: np.asarray(probs)[watched_items[u]]
                    for (u, _), probs in zip(shown, page_probs, strict=True)
                    if watched_items[u]
                }
            ratings: dict[str, np.ndarray] = {}
            page_items = dict(shown)
            for u, probs in rating_probs.items():
                probs = np.asarray(probs, dtype=float)
                if probs.shape[1] != len(levels):
                    raise ValueError(
                        f"the agents answer on {probs.shape[1]} ratings, {scale} has "
                        f"{len(levels)}: pass the run's scale"
                    )
                if sample:
                    uniforms = draws(u, page, "rating", len(page_items[u]))[watched_items[u]]
                    cumulative = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
                    picked = (cumulative < uniforms[:, None]).sum(axis=1)
                    ratings[u] = levels[np.minimum(picked, probs.shape[1] - 1)]
                else:
                    ratings[u] = levels[probs.argmax(axis=1)]
            still = []
            for (u, items), p in zip(shown, watch, strict=True):
                got = (
                    dict(zip(watched_items[u], ratings.get(u, []), strict=True))
                    if rates
                    else dict.fromkeys(watched_items[u], np.nan)
                )
                liked = 0
                for k, item in enumerate(items):
                    rating = got.get(k, np.nan)
                    is_liked = bool(k in got and rating >= likes_from)
                    liked += is_liked
                    events.append(
                        (u, page + 1, k + 1, item, float(p[k]), k in got, rating, is_liked)
                    )
                s = state[u]
                s["pages"] = page + 1
                s["shown"] += len(items)
                s["watched"] += len(got)
                s["liked"] += liked
                satisfied = (liked if rates else len(got)) / len(items)
                p_continue = continue_probability(activity.get(u, 2), satisfied, config)
                stays = (
                    draws(u, page, "continue", 1)[0] < p_continue if sample else p_continue >= 0.5
                )
                if not stays:
                    s["exit"] = "left"
                elif page + 1 >= config.max_pages:
                    s["exit"] = "max_pages"
                elif page + 1 >= len(pages[u]):
                    s["exit"] = "no_items"
                else:
                    still.append(u)
            if advance is not None:
                advance(sum(len(items) for _, items in shown))
            active = still
            page += 1
        event_frame = pd.DataFrame(events, columns=EVENT_COLUMNS)
        event_frame["watched"] = event_frame["watched"].astype(bool)
        event_frame["liked"] = event_frame["liked"].astype(bool)
        event_frame["rating"] = event_frame["rating"].astype(float)
        session_frame = pd.DataFrame(
            [
                (u, s["pages"], s["exit"], s["shown"], s["watched"], s["liked"])
                for u, s in state.items()
            ],
            columns=SESSION_COLUMNS,
        )
        return SessionLog(events=event_frame, sessions=session_frame)
