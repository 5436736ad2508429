"""The implicit-feedback scorers score what a user watched above what they did not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from personasim.cf import IMPLICIT_SCORERS, ImplicitSettings, fit_implicit


def _split(log):
    ratings = log.ratings.astype({"user_id": str, "item_id": str})
    ratings = ratings.sort_values(["user_id", "timestamp"])
    last = ratings.groupby("user_id").tail(5)
    return ratings.drop(last.index), last


def test_popularity_is_the_training_count(small_log):
    train, _ = _split(small_log)
    scorer = fit_implicit("popularity", train, seed=0)
    items = sorted(train["item_id"].unique())[:10]
    counts = train["item_id"].value_counts()
    np.testing.assert_allclose(scorer.scores("u-unknown", items), counts[items].to_numpy())


@pytest.mark.parametrize("kind", IMPLICIT_SCORERS)
def test_held_out_items_score_above_unrated_ones(small_log, kind):
    train, held = _split(small_log)
    # 60 users: a few factors (the default 50 fit noise on so few); BPR's sampled
    # pairs need more epochs than ALS on so few ratings
    settings = ImplicitSettings(embedding_size=4, epochs=40 if kind == "bpr" else 10)
    scorer = fit_implicit(kind, train, seed=0, settings=settings)
    rng = np.random.default_rng(0)
    rated = train.groupby("user_id")["item_id"].agg(set).to_dict()
    catalogue = np.array(sorted(train["item_id"].unique()))
    rows = []
    for user, part in held.groupby("user_id"):
        seen = rated[user] | set(part["item_id"])
        unrated = [i for i in catalogue if i not in seen]
        negatives = rng.choice(unrated, size=len(part), replace=False)
        rows += [(user, i, 1) for i in part["item_id"]] + [(user, i, 0) for i in negatives]
    pairs = pd.DataFrame(rows, columns=["user_id", "item_id", "label"])
    scores = scorer.score_pairs(pairs)
    assert np.isfinite(scores).all()
    assert roc_auc_score(pairs["label"], scores) > 0.6


def test_an_unknown_kind_is_refused(small_log):
    with pytest.raises(ValueError, match="unknown implicit scorer"):
        fit_implicit("slope_one", small_log.ratings, seed=0)


@pytest.mark.parametrize("kind", ["implicit_mf", "popularity", "itemknn"])
def test_many_users_and_pairs_score_as_one_user_at_a_time(small_log, kind):
    """The batched matrix and pairs equal the per-user LensKit scores (itemknn has no
    batched form: the same per-user calls)."""
    training = small_log.ratings.astype({"user_id": str, "item_id": str})
    scorer = fit_implicit(kind, training, seed=0, settings=ImplicitSettings(epochs=3))
    users = [*sorted(training["user_id"].unique())[:9], "a user nobody knows"]
    items = [*sorted(training["item_id"].unique())[:40], "an item nobody rated"]
    expected = np.stack([scorer.scores(u, items) for u in users])
    np.testing.assert_allclose(scorer.score_many(users, items), expected, rtol=1e-4, atol=2e-4)
    pairs = training.sample(200, random_state=0)[["user_id", "item_id"]]
    one_by_one = np.concatenate(
        [scorer.scores(u, [i]) for u, i in zip(pairs["user_id"], pairs["item_id"], strict=True)]
    )
    np.testing.assert_allclose(scorer.score_pairs(pairs), one_by_one, rtol=1e-4, atol=2e-4)
