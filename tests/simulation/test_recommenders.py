"""The LensKit recommenders and plug-ins: fitted, ranked, deterministic, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personasim.config import CFConfig, SimulateConfig
from personasim.errors import ConfigError
from personasim.simulation import BUILTIN_RECOMMENDERS, create_recommender


@pytest.fixture(scope="module")
def training(small_log):
    return small_log.ratings.astype({"user_id": str, "item_id": str})


@pytest.mark.parametrize("name", BUILTIN_RECOMMENDERS)
def test_builtin_recommenders_rank_unrated_items_deterministically(training, name):
    cfg, cf = SimulateConfig(), CFConfig(implicit_mf_epochs=3)
    history = training.loc[training["user_id"] == training["user_id"].iloc[0], "item_id"].tolist()
    user = training["user_id"].iloc[0]
    first = create_recommender(name, cfg, cf)
    first.fit(training, seed=3)
    ranked = first.recommend(user, history, 10)
    assert len(ranked) == 10 and len(set(ranked)) == 10
    assert not set(ranked) & set(history)
    assert set(ranked) <= set(training["item_id"])
    again = create_recommender(name, cfg, cf)
    again.fit(training, seed=3)
    assert again.recommend(user, history, 10) == ranked


def test_popular_ranks_by_number_of_ratings(training):
    rec = create_recommender("popular", SimulateConfig())
    rec.fit(training, seed=0)
    counts = training.groupby("item_id").size()
    ranked = rec.recommend("nobody-new", [], 5)
    assert [counts[i] for i in ranked] == sorted(counts, reverse=True)[:5]


def test_random_orders_differ_by_user_and_seed(training):
    rec = create_recommender("random", SimulateConfig())
    rec.fit(training, seed=0)
    users = training["user_id"].unique()[:2]
    assert rec.recommend(users[0], [], 10) != rec.recommend(users[1], [], 10)
    other = create_recommender("random", SimulateConfig())
    other.fit(training, seed=1)
    assert other.recommend(users[0], [], 10) != rec.recommend(users[0], [], 10)


def test_plugin_from_module_object(training):
    cfg = SimulateConfig(plugins={"recent": "personasim.testing.recommenders:RecentlyPopular"})
    rec = create_recommender("recent", cfg)
    rec.fit(training, seed=0)
    ranked = rec.recommend("u", ["x"], 3)
    assert len(ranked) == 3 and all(isinstance(i, str) for i in ranked)


def test_a_plain_function_is_a_recommender():
    cfg = SimulateConfig(plugins={"fixed": "tests.simulation.test_recommenders:fixed_list"})
    rec = create_recommender("fixed", cfg)
    rec.fit(pd.DataFrame(columns=["user_id", "item_id", "rating", "timestamp"]), seed=0)
    assert rec.recommend("u", [], 2) == ["1", "2"]


def fixed_list(user_id, history, n):
    return [1, 2, 3][:n]


def returns_text(user_id, history, n):
    return "not a list"


def fails(user_id, history, n):
    raise RuntimeError("model not loaded")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "expected 'module:object'"),
        ("no_such_module_xyz:thing", "cannot import no_such_module_xyz"),
        ("personasim.testing.recommenders:Nope", "has no 'Nope'"),
        ("personasim.testing.recommenders:__doc__", "not callable"),
    ],
)
def test_bad_plugins_are_refused_clearly(spec, message):
    with pytest.raises(ConfigError, match=message):
        create_recommender("mine", SimulateConfig(plugins={"mine": spec}))


@pytest.mark.parametrize(
    ("target", "message"),
    [("returns_text", "returned str"), ("fails", "failed for user 'u': RuntimeError")],
)
def test_misbehaving_plugins_name_the_plugin_and_user(target, message):
    rec = create_recommender(
        "mine", SimulateConfig(plugins={"mine": f"tests.simulation.test_recommenders:{target}"})
    )
    with pytest.raises(ConfigError, match=message):
        rec.recommend("u", [], 3)


def test_unknown_recommender_lists_the_available_ones():
    available = "available: bpr, itemknn, mf, popular, random, sasrec, unpopular, userknn"
    with pytest.raises(ConfigError, match=available):
        create_recommender("lightgcn", SimulateConfig())


@pytest.mark.parametrize("name", ["popular", "mf", "bpr", "sasrec", "itemknn", "random"])
def test_lists_asked_for_many_users_at_once_are_the_lists_asked_one_by_one(training, name):
    """The batched lists hold the items LensKit's per-user lists hold, in the same order
    up to ties (compared by the reference scorer's scores, position by position)."""
    from lenskit.data import ItemList, RecQuery

    from personasim.simulation.batched_lists import recommend_many

    rec = create_recommender(name, SimulateConfig(), CFConfig(implicit_mf_epochs=3))
    rec.fit(training, seed=3)
    history = training.groupby("user_id")["item_id"].agg(list)
    users = [*history.index[:20], "a new user"]
    histories = [*history.iloc[:20], list(history.iloc[0][:3])]
    many = recommend_many(rec, users, histories, 15)
    for user, seen, got in zip(users, histories, many, strict=True):
        expected = rec.recommend(user, seen, 15)
        assert not set(got) & set(seen) and len(got) == len(set(got)) == len(expected)
        if name == "random":  # the same generator per user and the same draw
            assert got == expected
            continue
        scorer = rec._pipeline.component("scorer")
        if name == "popular":
            score = dict(zip(scorer.items_.ids(), scorer.item_scores_, strict=True))
            assert [score[i] for i in got] == [score[i] for i in expected]
            continue
        query = RecQuery(user_id=user, history_items=ItemList(item_ids=np.array(seen, object)))
        both = ItemList(item_ids=np.array(got + expected, dtype=object))
        scores = scorer(query=query, items=both).scores()
        np.testing.assert_allclose(scores[: len(got)], scores[len(got) :], rtol=1e-5, atol=1e-6)
