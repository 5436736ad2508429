"""What a simulation experiment shows: which users are simulated, and each one's pages.

A recommender's ranking of a user's unrated items gives both what the user's agent is
shown in a session (pages of ``page_size`` items, at most ``max_pages``) and the top
``offline_k`` list scored against the user's held-out items.
"""

from __future__ import annotations

import numpy as np

from personasim.config import SimulateConfig
from personasim.progress import progress
from personasim.simulation.batched_lists import recommend_many
from personasim.simulation.recommenders import Recommender
from personasim.simulation.sessions import pages_of

__all__ = ["ranked_pages", "sample_users"]

_RANKED_AT_ONCE = 1024
"""Users whose lists are asked for in one :func:`recommend_many` call."""


def sample_users(users: list[str], n: int, seed: int, purpose: str) -> list[str]:
    """All `users`, or a seeded sample of `n` of them (sorted)."""
    if not n or n >= len(users):
        return list(users)
    rng = np.random.default_rng([seed, len(purpose), sum(map(ord, purpose))])
    return sorted(rng.choice(users, size=n, replace=False).tolist())


def ranked_pages(
    recommender: Recommender,
    users: list[str],
    history: dict[str, list[str]],
    config: SimulateConfig,
) -> tuple[dict[str, list[list[str]]], dict[str, list[str]]]:
    """Each user's session pages and top-k list from one ranking.

    Args:
        recommender: A fitted recommender.
        users: The users to rank for (a batch at once where its scorer allows).
        history: Each user's items so far, which are not shown again.
        config: The `[simulate]` section (page size, pages, ``offline_k``).

    Returns:
        Per user the session pages, and the top ``offline_k`` items.
    """
    cfg = config
    need = max(cfg.page_size * cfg.max_pages, cfg.offline_k)
    pages, top = {}, {}
    with progress(f"ranking: {recommender.name}", total=len(users), unit="users") as advance:
        for start in range(0, len(users), _RANKED_AT_ONCE):
            chunk = users[start : start + _RANKED_AT_ONCE]
            lists = recommend_many(recommender, chunk, [history[u] for u in chunk], need)
            for user, ranking in zip(chunk, lists, strict=True):
                # the first `need` new, distinct items: one page of that size
                flat = next(iter(pages_of(ranking, set(), need, 1)), [])
                top[user] = flat[: cfg.offline_k]
                pages[user] = pages_of(flat, set(), cfg.page_size, cfg.max_pages)
            advance(len(chunk))
    return pages, top
