"""Taste alignment: candidate lists, threshold calibration and per-list metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from personasim.evaluation.taste import (
    best_f1_threshold,
    candidate_lists,
    list_metrics,
    positives_in_list,
)


@pytest.fixture(scope="module")
def log():
    """12 users x 30 ratings over 200 items of skewed popularity."""
    rng = np.random.default_rng(0)
    items = pd.DataFrame(
        {"item_id": [f"i{k}" for k in range(200)], "train_count": rng.zipf(1.6, 200) % 500}
    )
    rows = []
    for u in range(12):
        picks = rng.choice(200, 30, replace=False)
        for n, i in enumerate(picks):
            rows.append((f"u{u}", f"i{i}", "train" if n < 18 else "test"))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "split"]), items


def test_lists_follow_the_protocol(log):
    interactions, items = log
    built = candidate_lists(
        interactions,
        items,
        ["u0", "u1", "u2"],
        part="test",
        candidates=20,
        ratios=[1, 3, 9],
        samplers=["uniform", "popularity"],
        seed=0,
    )
    lists = built.lists
    seen = interactions.groupby("user_id")["item_id"].agg(set)
    test = interactions[interactions.split == "test"].groupby("user_id")["item_id"].agg(set)
    for (user, _sampler, ratio), one in lists.groupby(["user_id", "sampler", "ratio"]):
        pos, neg = one[one.positive], one[~one.positive]
        assert len(pos) == positives_in_list(20, ratio) and len(neg) == len(pos) * ratio
        assert len(one) <= 20 and one.item_id.is_unique
        assert set(pos.item_id) <= test[user]  # positives are held-out items
        assert not set(neg.item_id) & seen[user]  # negatives were never rated
    # Nested: the 1:9 list's positives are the first of the 1:1 list's.
    one_nine = lists[(lists.user_id == "u0") & (lists.ratio == 9) & lists.positive]
    one_one = lists[(lists.user_id == "u0") & (lists.ratio == 1) & lists.positive]
    assert set(one_nine.item_id) <= set(one_one.item_id)
    assert len(built.pairs) == len(lists[["user_id", "item_id"]].drop_duplicates())


def test_popularity_matched_negatives_are_as_popular_as_the_positives(log):
    interactions, items = log
    built = candidate_lists(
        interactions,
        items,
        [f"u{k}" for k in range(12)],
        part="test",
        candidates=20,
        ratios=[1],
        samplers=["uniform", "popularity"],
        seed=1,
    )
    count = dict(zip(items.item_id, items.train_count, strict=True))
    lists = built.lists.assign(count=built.lists.item_id.map(count))
    pos = lists[lists.positive & (lists.sampler == "popularity")]["count"].median()
    matched = lists[~lists.positive & (lists.sampler == "popularity")]["count"].median()
    uniform = lists[~lists.positive & (lists.sampler == "uniform")]["count"].median()
    assert abs(np.log1p(matched) - np.log1p(pos)) < abs(np.log1p(uniform) - np.log1p(pos))


def test_same_seed_same_lists(log):
    interactions, items = log
    kwargs = dict(part="train", candidates=10, ratios=[1, 3], samplers=["popularity"])
    a = candidate_lists(interactions, items, ["u3", "u4"], seed=5, **kwargs).lists
    b = candidate_lists(interactions, items, ["u3", "u4"], seed=5, **kwargs).lists
    c = candidate_lists(interactions, items, ["u3", "u4"], seed=6, **kwargs).lists
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def _by_hand(positive: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """The per-list metrics from their definitions: counts, and AUC as the share of
    (positive, negative) pairs ranked right (ties one half)."""
    yes = score >= threshold
    tp, fp = int((yes & positive).sum()), int((yes & ~positive).sum())
    fn, tn = int((~yes & positive).sum()), int((~yes & ~positive).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    pos, neg = score[positive], score[~positive]
    right = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    auc = right / (len(pos) * len(neg)) if len(pos) and len(neg) else float("nan")
    return {
        "accuracy": (tp + tn) / len(score),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": auc,
    }


def test_list_metrics_follow_their_definitions():
    rng = np.random.default_rng(3)
    frames = []
    for u in range(5):
        positive = np.array([True] * 4 + [False] * 12)
        score = rng.normal(size=16) + positive * 0.8
        score[3] = score[5]  # a tie
        frames.append(pd.DataFrame({"user_id": f"u{u}", "positive": positive, "score": score}))
    # a list where nothing clears the threshold, and one of a single class
    frames.append(pd.DataFrame({"user_id": "u5", "positive": [True, False], "score": [-9.0, -9.5]}))
    frames.append(pd.DataFrame({"user_id": "u6", "positive": [True, True], "score": [1.0, 0.0]}))
    scored = pd.concat(frames, ignore_index=True)
    got = list_metrics(scored, threshold=0.3).set_index("user_id")
    assert list(got.index) == [f"u{u}" for u in range(7)]
    for user, one in scored.groupby("user_id"):
        expected = _by_hand(one.positive.to_numpy(bool), one.score.to_numpy(), 0.3)
        for metric, value in expected.items():
            assert got.loc[user, metric] == pytest.approx(value, nan_ok=True), (user, metric)
    assert got.loc["u5", "precision"] == 0.0 and np.isnan(got.loc["u6", "auc"])


def test_list_metrics_equal_scikit_learns_on_every_list():
    """All lists at once against scikit-learn's metrics called on each list."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

    rng = np.random.default_rng(11)
    frames = []
    for u in range(60):
        n = int(rng.integers(1, 12))
        positive = rng.random(n) < rng.choice([0.0, 0.3, 0.7, 1.0])
        score = rng.integers(0, 4, n) / 4.0  # ties, and exactly the threshold
        frames.append(pd.DataFrame({"user_id": f"u{u:02d}", "positive": positive, "score": score}))
    scored = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=0)
    got = list_metrics(scored, threshold=0.5).set_index("user_id")
    assert list(got.index) == sorted(scored.user_id.unique())
    for user, one in scored.groupby("user_id"):
        positive, score = one.positive.to_numpy(bool), one.score.to_numpy()
        yes = score >= 0.5
        precision, recall, f1, _ = precision_recall_fscore_support(
            positive, yes, average="binary", zero_division=0.0
        )
        one_class = positive.all() or not positive.any()
        expected = {
            "accuracy": accuracy_score(positive, yes),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "auc": np.nan if one_class else roc_auc_score(positive, score),
        }
        for metric, value in expected.items():
            assert got.loc[user, metric] == pytest.approx(value, nan_ok=True), (user, metric)


def test_threshold_maximises_f1_on_calibration_lists():
    rng = np.random.default_rng(4)
    positive = rng.random(400) < 0.25
    score = rng.normal(size=400) + positive * 1.5
    best = best_f1_threshold(score, positive)
    f1_at = f1_score(positive, score >= best)
    for t in np.quantile(score, np.linspace(0.05, 0.95, 19)):
        assert f1_at >= f1_score(positive, score >= t) - 1e-12
    assert best_f1_threshold(score, np.zeros(400, bool)) == float("inf")


def test_calibration_matches_scikit_learns_reliability_curve():
    from sklearn.calibration import calibration_curve

    from personasim.evaluation.taste import calibration

    rng = np.random.default_rng(0)
    p = rng.beta(2, 3, 500)
    y = (rng.random(500) < p**1.5).astype(int)  # over-confident on purpose
    result = calibration(p, y, bins=10)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    np.testing.assert_allclose([b["observed"] for b in result["curve"]], observed, atol=1e-4)
    np.testing.assert_allclose([b["predicted"] for b in result["curve"]], predicted, atol=1e-4)
    counts = np.array([b["n"] for b in result["curve"]])
    assert counts.sum() == 500
    expected = float(np.sum(counts * np.abs(observed - predicted)) / 500)
    assert result["ece"] == pytest.approx(expected, abs=1e-4)
    assert result["ece"] > 0.03
    assert calibration(np.full(100, 0.25), np.r_[np.ones(25), np.zeros(75)])["ece"] == 0.0


def test_shown_lists_are_a_recommenders_top_unrated_items_labelled_by_the_test_part(log):
    from personasim.evaluation.taste import shown_lists

    interactions, _ = log
    asked = []

    def recommend(user, history, n):
        asked.append((user, len(history), n))
        # repeats and the user's own train items come back: the list drops them
        return history[:3] + [f"i{k}" for k in range(40)] + ["i0"]

    lists = shown_lists(interactions, {"first": recommend}, ["u0", "u1"], candidates=20)
    assert set(lists["sampler"]) == {"shown:first"} and set(lists["ratio"]) == {0}
    for user, mine in lists.groupby("user_id"):
        rows = interactions[interactions.user_id == user]
        train, test = (set(rows.loc[rows.split == s, "item_id"]) for s in ("train", "test"))
        assert len(mine) == 20 and mine["item_id"].is_unique
        assert not set(mine["item_id"]) & train
        assert mine["item_id"].tolist() == [f"i{k}" for k in range(40) if f"i{k}" not in train][:20]
        assert (mine["positive"] == mine["item_id"].isin(test)).all()
    assert asked == [("u0", 18, 20), ("u1", 18, 20)]


def test_shown_lists_are_measured_by_auc_against_the_best_baseline(log, tmp_path):
    from personasim.config import EvaluateConfig
    from personasim.evaluation.report_tables import taste_matrix
    from personasim.evaluation.taste import shown_lists
    from personasim.evaluation.taste_fidelity import WATCH_PRIOR_MODEL, taste_lists, taste_metrics

    interactions, items = log
    cfg = EvaluateConfig(taste_ratios=[1], taste_samplers=["uniform"], bootstrap_rounds=100)
    rated = set(zip(interactions.user_id, interactions.item_id, strict=True))
    shown = shown_lists(
        interactions,
        {"all": lambda u, h, n: [f"i{k}" for k in range(200)]},
        sorted(interactions.user_id.unique()),
        candidates=40,
    )
    lists = taste_lists(interactions, items, cfg, 0, shown)
    pairs = lists["pairs"]
    truth = np.array([(u, i) in rated for u, i in zip(pairs.user_id, pairs.item_id, strict=True)])
    scores = [
        pairs.assign(model="noise", score=np.random.default_rng(0).random(len(pairs))),
        pairs.assign(model=WATCH_PRIOR_MODEL, score=truth.astype(float)),
    ]
    summary = taste_metrics(lists, scores, cfg, 0, tmp_path)
    entry = summary["shown all"][WATCH_PRIOR_MODEL]
    assert entry["auc"] == 1.0 and "f1" not in entry
    assert entry["users"] == interactions.user_id.nunique()
    assert entry["vs_best_baseline"]["against"] == "noise"
    assert entry["vs_best_baseline"]["verdict"] == "better"
    kinds, _ = taste_matrix(summary, "f1")
    assert "shown all" not in kinds and "uniform 1:1" in kinds
    assert "shown all" in taste_matrix(summary, "auc")[0]
