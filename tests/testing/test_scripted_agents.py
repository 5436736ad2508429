"""Scripted agents answer each (user, item) the same whatever else is asked with it,
and keep the agents' bookkeeping of users and items."""

from __future__ import annotations

import numpy as np
import pytest

from personasim.errors import ConfigError
from personasim.testing import ScriptedAgents


def test_answers_are_fixed_per_user_and_item():
    agents = ScriptedAgents({"u1": "p0", "u2": "p1"}, ["a", "b", "c"])
    alone = agents.rating_distributions([("u1", ["b"])])[0]
    together = agents.rating_distributions([("u2", ["a", "c"]), ("u1", ["a", "b"])])
    assert together[1]["expected"][1] == alone["expected"][0]
    for answer in (alone, *together):
        np.testing.assert_allclose(answer["probs"].sum(axis=1), 1.0)
        expected = answer["probs"] @ np.arange(1, 6)
        np.testing.assert_allclose(answer["expected"], expected)
        assert ((answer["expected"] >= 1) & (answer["expected"] < 5)).all()
    watch = agents.watch_probabilities([("u1", ["a", "b"]), ("u2", ["a"])])
    assert watch[0][0] == agents.watch_chance("u1", "a") != watch[1][0]
    assert agents.rate("u1", ["b"]) == [agents.expected_rating("u1", "b")]
    assert [kind for kind, _ in agents.calls] == ["rate", "rate", "watch", "rate"]


def test_users_and_items_are_kept_as_the_agents_keep_them():
    agents = ScriptedAgents({"u1": "p0", "u2": "p1", "u3": "p1"}, ["a"])
    assert agents.persona_sizes() == {"p0": 1, "p1": 2} and agents.run_users == 3
    assert agents.add_user("cold", "a profile", membership={"p0": 0.2, "p1": 0.8}) == "p1"
    assert agents.knows_user("cold") and agents.is_added("cold") and agents.run_users == 3
    assert agents.persona_sizes() == {"p0": 1, "p1": 2}
    (new,) = agents.describe_items([{"title": "A New Film", "year": 2031}])
    assert agents.knows_item(new) and agents.rate("cold", [new, "a"])
    agents.remove_user("cold")
    assert not agents.knows_user("cold")
    with pytest.raises(ConfigError, match="not a simulated user"):
        agents.rate("cold", ["a"])
    with pytest.raises(ConfigError, match="unknown item"):
        agents.rate("u1", ["zzz"])
    with pytest.raises(ConfigError, match="catalogue item"):
        agents.describe_items([{"title": "x", "item_id": "a"}])
    with pytest.raises(ConfigError, match="a simulated user of the run"):
        agents.add_user("u1", "x", persona="p0")
