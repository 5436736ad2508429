"""Simulated metrics, offline ranking metrics and rank agreement, on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau, spearmanr

from personasim.simulation import (
    item_novelty,
    list_drift,
    offline_metrics,
    per_user_agreement,
    rank_agreement,
    session_metrics,
)


def _events():
    return pd.DataFrame(
        {
            "user_id": ["u", "u", "u", "u", "v", "v"],
            "item_id": ["a", "b", "c", "d", "a", "e"],
            "watched": [True, True, False, False, True, False],
            "rating": [5.0, 2.0, np.nan, np.nan, 4.0, np.nan],
            "liked": [True, False, False, False, True, False],
        }
    )


def test_session_metrics_by_hand():
    sessions = pd.DataFrame({"user_id": ["u", "v"], "pages": [2, 1], "liked": [1, 1]})
    novelty = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "e": 5.0}
    m = session_metrics(_events(), sessions, catalogue=10, novelty=novelty)
    assert m["users"] == 2 and m["shown"] == 6
    assert m["watch_rate"] == pytest.approx(3 / 6)
    assert m["like_rate"] == pytest.approx(2 / 6)
    assert m["likes"] == pytest.approx(1.0)
    assert m["mean_rating"] == pytest.approx(11 / 3)
    assert m["exit_page"] == pytest.approx(1.5)
    assert m["coverage"] == pytest.approx(5 / 10)
    assert m["novelty"] == pytest.approx((1 + 2 + 3 + 4 + 1 + 5) / 6)


def test_novelty_is_self_information():
    novelty = item_novelty({"hit": 50, "rare": 1, "unseen": 0}, n_users=100)
    assert novelty["hit"] == pytest.approx(1.0)
    assert novelty["rare"] == pytest.approx(math.log2(100))
    assert novelty["unseen"] == novelty["rare"]


def test_offline_metrics_match_the_textbook_definitions():
    test = pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["b", "z", "q"]})
    got = offline_metrics({"u": ["a", "b", "c"], "v": ["x", "y", "w"]}, test, k=3)
    u = got.set_index("user_id").loc["u"]
    # DCG: b at rank 2 -> 1/log2(3); ideal: two relevant items at ranks 1, 2
    assert u["ndcg"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert u["recall"] == pytest.approx(0.5) and u["hits"] == 1
    v = got.set_index("user_id").loc["v"]
    assert v["ndcg"] == 0 and v["recall"] == 0


def test_only_the_first_k_items_count():
    test = pd.DataFrame({"user_id": ["u"], "item_id": ["c"]})
    got = offline_metrics({"u": ["a", "b", "c"]}, test, k=2)
    assert got.loc[0, "ndcg"] == 0 and got.loc[0, "hits"] == 0


def test_rank_agreement_matches_scipy():
    a = {"r": 0.1, "p": 0.5, "k": 0.9, "m": 0.3}
    b = {"r": 1.0, "p": 3.0, "k": 2.0, "m": 4.0}
    got = rank_agreement(a, b)
    names = list(a)
    assert got["kendall_tau"] == pytest.approx(
        kendalltau([a[n] for n in names], [b[n] for n in names]).statistic
    )
    assert got["spearman"] == pytest.approx(
        spearmanr([a[n] for n in names], [b[n] for n in names]).statistic
    )
    assert rank_agreement(a, a)["kendall_tau"] == pytest.approx(1.0)
    assert rank_agreement(a, {n: -v for n, v in a.items()})["spearman"] == pytest.approx(-1.0)
    assert math.isnan(rank_agreement(a, dict.fromkeys(a, 1.0))["kendall_tau"])


def test_per_user_agreement_skips_constant_users():
    simulated = pd.DataFrame({"x": [1.0, 0.0], "y": [2.0, 0.0]}, index=["u", "v"])
    offline = pd.DataFrame({"x": [0.1, 0.2], "y": [0.3, 0.1]}, index=["u", "v"])
    got = per_user_agreement(simulated, offline).set_index("user_id")
    assert got.loc["u", "kendall_tau"] == pytest.approx(1.0)
    assert math.isnan(got.loc["v", "kendall_tau"])


def test_list_drift_entropy_and_popularity():
    events = pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["a", "b", "a"]})
    genres = {"a": ["Drama"], "b": ["Comedy"]}
    got = list_drift(events, genres, {"a": 1.0, "b": 0.5})
    assert got["genre_entropy"] == pytest.approx((1.0 + 0.0) / 2)
    assert got["genres_per_user"] == pytest.approx(1.5)
    assert got["popularity"] == pytest.approx(2.5 / 3)
    assert got["coverage_items"] == 2


def test_offline_metrics_are_lenskits_on_many_lists():
    """The vectorised metrics against LensKit's RunAnalysis, list by list."""
    from lenskit.data import ItemList, ItemListCollection
    from lenskit.metrics import NDCG, LogRankWeight, Recall, RunAnalysis

    rng = np.random.default_rng(0)
    catalogue = [f"i{j}" for j in range(40)]
    users = [f"u{j}" for j in range(60)]
    recommended = {
        u: list(rng.choice(catalogue, rng.integers(0, 15), replace=False)) for u in users
    }
    rows = [
        (u, i)
        for u in users[:55]
        for i in rng.choice(catalogue, rng.integers(1, 20), replace=False)
    ]
    test = pd.DataFrame(rows, columns=["user_id", "item_id"])
    got = offline_metrics(recommended, test, k=10).set_index("user_id")
    truth = test.groupby("user_id")["item_id"].agg(list)
    kept = [u for u in users if u in truth.index]
    analysis = RunAnalysis()
    analysis.add_metric(NDCG(10, weight=LogRankWeight(offset=1)), "ndcg")
    analysis.add_metric(Recall(10), "recall")
    expected = analysis.compute(
        ItemListCollection.from_dict(
            {u: ItemList(recommended[u][:10], ordered=True) for u in kept}, key="user_id"
        ),
        ItemListCollection.from_dict({u: ItemList(truth[u]) for u in kept}, key="user_id"),
    ).list_metrics()
    expected.index = expected.index.astype(str)
    assert list(got.index) == kept
    np.testing.assert_allclose(got["ndcg"], expected.loc[kept, "ndcg"], atol=1e-12)
    np.testing.assert_allclose(got["recall"], expected.loc[kept, "recall"], atol=1e-12)


def test_per_user_agreement_is_scipys_per_user():
    """The vectorised per-user tau-b and rho against rank_agreement (scipy) user by user,
    with ties, constant users and unscored recommenders."""
    rng = np.random.default_rng(1)
    users = [f"u{j}" for j in range(200)]
    names = ["a", "b", "c", "d", "e"]
    simulated = pd.DataFrame(rng.integers(0, 4, (200, 5)).astype(float), users, names)
    offline = pd.DataFrame(rng.integers(0, 3, (200, 5)).astype(float), users, names)
    offline.iloc[:20] = 0.0  # constant: undefined
    simulated.iloc[20:30, 1] = np.nan  # one recommender unscored
    got = per_user_agreement(simulated, offline).set_index("user_id")
    for user in users:
        expected = rank_agreement(simulated.loc[user].to_dict(), offline.loc[user].to_dict())
        for ours, theirs in (("kendall_tau", "kendall_tau"), ("spearman", "spearman")):
            np.testing.assert_allclose(got.loc[user, ours], expected[theirs], atol=1e-12)
    assert got["kendall_tau"].notna().sum() > 100
