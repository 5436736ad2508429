"""The same question, the same answer: a user's answer about an item does not depend on
the other items or users asked with it (batch composition, packing, padding)."""

from __future__ import annotations

import numpy as np
import pytest

from personasim import UserAgent


@pytest.mark.parametrize(
    ("dtype", "stars", "watch"), [("float32", 1e-4, 1e-4), ("bfloat16", 0.05, 0.02)]
)
def test_an_answer_does_not_depend_on_its_batch(trained_run, dtype, stars, watch):
    """float32: within 1e-4; bfloat16 (rounding depends on the shapes around a row):
    within 0.05 stars and 0.02 in P(watch), the bounds docs/agents.md states."""
    agent = UserAgent.from_workdir(trained_run, mode="persona", dtype=dtype)
    users = sorted(agent.profiles)[:3]
    items = [i for i, it in agent.items.items() if it["count"] > 0][:9]
    user, item = users[0], items[4]
    alone_rate = agent.rating_distributions([(user, [item])])[0]["expected"][0]
    alone_watch = agent.watch_probabilities([(user, [item])])[0][0]
    compositions = [
        [(user, items)],  # among the user's other items
        [(user, items[::-1])],  # in another order
        [(users[1], items[:2]), (user, [item]), (users[2], items)],  # other users around it
        [(users[2], items[:7]), (user, items[3:6])],  # other lengths: other padding
    ]
    for requests in compositions:
        where = next(k for k, (u, its) in enumerate(requests) if u == user and item in its)
        column = requests[where][1].index(item)
        rate = agent.rating_distributions(requests)[where]["expected"][column]
        p = agent.watch_probabilities(requests)[where][column]
        assert abs(rate - alone_rate) <= stars, (requests, rate, alone_rate)
        assert abs(p - alone_watch) <= watch, (requests, p, alone_watch)
    assert np.isfinite(alone_rate) and 0 < alone_watch < 1
