"""The good-vs-degraded ladder: a recommender's pages with a share of their items
replaced by random unseen items, to see how finely the simulation tells a worse list
from a better one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from personasim.simulation.recommenders import stable_seed

__all__ = ["degrade_pages"]


def degrade_pages(
    pages: Mapping[str, list[list[str]]],
    history: Mapping[str, Sequence[str]],
    catalogue: Sequence[str],
    share: float,
    *,
    seed: int,
) -> dict[str, list[list[str]]]:
    """Replace ``round(share x items in the session)`` of a user's items (at seeded
    positions anywhere in the session: on pages of 4, a per-page share under 12.5% would
    replace nothing) by random items the user has not rated and is not shown elsewhere
    in the session.

    Args:
        pages: Per user, the recommender's pages.
        history: Per user, the train items (never drawn).
        catalogue: The items to draw from.
        share: The share of each page replaced, in (0, 1].
        seed: The run seed (each user's draws are seeded by it, the share and the user).
    """
    items = np.asarray(sorted(catalogue), dtype=object)
    out: dict[str, list[list[str]]] = {}
    for user, mine in pages.items():
        rng = np.random.default_rng(stable_seed(seed, "ladder", share, user))
        taken = set(history.get(user, ())) | {i for page in mine for i in page}
        fresh = (str(i) for i in rng.permutation(items) if i not in taken)
        flat = [i for page in mine for i in page]
        n = int(round(share * len(flat)))
        for position in sorted(rng.choice(len(flat), n, replace=False).tolist()):
            flat[position] = next(fresh, flat[position])
        sizes = np.cumsum([0] + [len(page) for page in mine])
        out[user] = [flat[a:b] for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    return out
