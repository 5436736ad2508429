"""The stacked choice model reads what a user just watched, learns from the log's own
order without seeing the part it predicts, and its features are what they say."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from personasim.cf import fit_implicit
from personasim.cf.choice import _time_split, choice_families, fit_stacked_choice
from personasim.cf.choice_features import ChoiceSettings, item_genres
from personasim.cf.choice_fitting import fit_choice_features

_DAY = 86_400


def _drifting_log(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, list[str]]]:
    """Users whose taste moves: 10 items of one genre, then 30 of another, one a day,
    each genre 20 items; the last 16 of each user are the test part. What a user takes
    next follows what they watched last, not their whole history."""
    rng = np.random.default_rng(seed)
    genres = {f"i{g}_{k}": [f"g{g}"] for g in range(8) for k in range(20)}
    rows = []
    for u in range(80):
        first, then = rng.choice(8, 2, replace=False)
        items = [f"i{first}_{k}" for k in rng.choice(20, 10, replace=False)]
        items += [f"i{then}_{k}" for k in rng.choice(20, 20, replace=False)]
        items += [f"i{rng.choice([g for g in range(8) if g != then])}_{k}" for k in range(10)]
        items = items[:10] + list(rng.permutation(items[10:30])) + items[30:]
        start = 1_000_000_000 + int(rng.integers(0, 100)) * _DAY
        for step, item in enumerate(items[:30]):
            rows.append((f"u{u}", item, 4.0, start + step * _DAY))
    log = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    order = log.groupby("user_id").cumcount()
    return log[order < 24], log[order >= 24], genres


def _auc_inside(scores: np.ndarray, pairs: pd.DataFrame) -> float:
    frame = pairs.assign(score=scores)
    aucs = [
        roc_auc_score(g["positive"], g["score"])
        for _, g in frame.groupby("user_id")
        if g["positive"].nunique() == 2
    ]
    return float(np.mean(aucs))


def _test_lists(train: pd.DataFrame, test: pd.DataFrame, genres: dict) -> pd.DataFrame:
    """Each user's test items against the unseen items of their first genre."""
    rows = []
    for user, part in test.groupby("user_id"):
        seen = set(train.loc[train.user_id == user, "item_id"])
        first = genres[train[train.user_id == user].sort_values("timestamp").item_id.iloc[0]][0]
        negatives = [i for i, g in genres.items() if g[0] == first and i not in seen]
        rows += [(user, i, True) for i in part.item_id]
        rows += [(user, i, False) for i in negatives[: len(part)]]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "positive"])


def test_the_stacked_model_follows_what_a_user_just_watched():
    train, test, genres = _drifting_log()
    empty = train.iloc[:0]
    stacked = fit_stacked_choice(train, empty, genres, seed=0, other_users=0)
    pairs = _test_lists(train, test, genres)
    whole_history = fit_implicit("itemknn", train, seed=0).score_pairs(pairs)
    stacked_auc = _auc_inside(stacked.scorer.score_pairs(pairs), pairs)
    # the whole history still leans the first genre's way; the stacked model reads
    # the user's last items (0.993 against 0.941 when written)
    assert stacked_auc > 0.97
    assert stacked_auc > _auc_inside(whole_history, pairs) + 0.03


def test_the_combiner_learns_only_from_the_later_part_of_each_users_training_rows():
    train, _, _ = _drifting_log()
    early, later = _time_split(train, 0.4)
    assert len(early) + len(later) == len(train)
    for user, mine in train.groupby("user_id"):
        cut = later.loc[later.user_id == user, "timestamp"].min()
        assert early.loc[early.user_id == user, "timestamp"].max() <= cut
        assert (later.user_id == user).sum() == int(np.floor(len(mine) * 0.4))


def test_a_left_out_family_leaves_its_features_and_an_unknown_one_is_refused():
    train, _, genres = _drifting_log()
    stacked = fit_stacked_choice(
        train, train.iloc[:0], genres, seed=0, other_users=0, exclude=["itemknn", "bpr"]
    )
    columns = stacked.report["features"]
    assert not any(c.startswith(("itemknn", "bpr")) for c in columns)
    assert "implicit_mf" in columns and "implicit_mf_percentile" in columns
    with pytest.raises(ValueError, match="unknown choice families"):
        choice_families(["gru4rec"])
    with pytest.raises(ValueError, match="every choice family"):
        choice_families(choice_families())


def test_recent_popularity_counts_the_window_before_the_users_last_rating():
    rows = [("a", "x", 1.0, 0), ("b", "x", 1.0, 5 * _DAY), ("c", "x", 1.0, 9 * _DAY)]
    rows += [("c", "y", 1.0, 20 * _DAY), ("u", "z", 1.0, 10 * _DAY)]
    log = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    features = fit_choice_features(
        log, {}, seed=0, families=["popularity", "time"], settings=ChoiceSettings(recent_days=7)
    )
    raw = features.user("u", ["x", "y", "unknown"])[:, :3]  # popularity, recent, time
    np.testing.assert_allclose(raw[0], [np.log1p(3), np.log1p(2), np.log1p(10)])
    np.testing.assert_allclose(raw[1, :2], [np.log1p(1), 0.0])  # y comes after u's now
    assert np.isnan(raw[2]).all()


def test_items_watched_in_a_session_count_as_the_most_recent_history():
    train, _, genres = _drifting_log()
    features = fit_choice_features(train, genres, seed=0, families=["itemknn"])
    user = "u0"
    seen = set(train.loc[train.user_id == user, "item_id"])
    last = features.columns.index("itemknn_last")
    mine = genres[train[train.user_id == user].sort_values("timestamp").item_id.iloc[-1]][0]
    other = next(g for g in (f"g{k}" for k in range(8)) if g != mine)
    candidates = [i for i, g in genres.items() if g[0] == other and i not in seen]
    watched, asked = candidates[:5], candidates[5:10]
    before = features.user(user, asked)[:, last]
    after = features.user(user, asked, recent=watched)[:, last]
    assert np.nanmean(after) > np.nan_to_num(before).mean()


def test_item_genres_reads_the_catalogue():
    items = pd.DataFrame(
        {"item_id": ["a", "b", "c"], "genres": [np.array(["Drama", "War"]), [], None]}
    )
    assert item_genres(items) == {"a": ["Drama", "War"]}
    assert item_genres(items.drop(columns="genres")) == {}


@pytest.fixture(scope="module")
def drifting_model():
    train, _, genres = _drifting_log()
    return train, genres, fit_stacked_choice(train, train.iloc[:0], genres, seed=0, other_users=0)


def test_a_sessions_watches_move_the_users_next_choices_their_way(drifting_model):
    train, genres, stacked = drifting_model
    user = "u0"
    seen = set(train.loc[train.user_id == user, "item_id"])
    mine = {genres[i][0] for i in seen}
    other = sorted({g[0] for g in genres.values()} - mine)[0]
    session = [i for i in sorted(genres) if genres[i][0] == other][:5]
    unseen = [i for i in sorted(genres) if i not in seen and i not in session]
    of_other = np.array([genres[i][0] == other for i in unseen])

    def rank_of_other(recent):
        scores = stacked.scorer.scores(user, unseen, recent)
        return pd.Series(scores).rank(pct=True)[of_other].mean()

    # five watches of a genre the user never took lift the genre's other items
    assert rank_of_other(session) > rank_of_other(()) + 0.2


def test_a_sessions_features_are_those_of_the_whole_computation(drifting_model):
    """The reference items' features without a session are kept per user; with one,
    only the families that read it are computed again: the same as all afresh."""
    _, _, stacked = drifting_model
    features = stacked.scorer.features
    items, recent = ["i0_1", "i3_4", "i7_19"], ["i5_0", "i5_1"]
    for session in ((), recent, ()):  # the cache is filled, used, and unchanged
        raw = features._raw("u1", items, session)
        reference = np.sort(features._raw("u1", features.reference("u1"), session), axis=0)
        expected = []
        for k in range(raw.shape[1]):
            finite = reference[:, k][np.isfinite(reference[:, k])]
            rank = np.searchsorted(finite, raw[:, k], side="right") / len(finite)
            expected.append(np.where(np.isnan(raw[:, k]), 0.0, rank))
        np.testing.assert_allclose(
            features.user("u1", items, session), np.hstack([raw, np.stack(expected, axis=1)])
        )


def test_a_logs_models_are_fitted_once_whatever_families_are_asked(monkeypatch):
    """Asked again for a log, with other families, only the scorers not fitted yet
    train; a view of fewer families computes what a fresh fit of them computes."""
    import personasim.cf.choice_fitting as cf

    train, _, genres = _drifting_log(seed=3)
    cf._FITTED.clear()  # whatever another test of this process fitted
    trained = []
    real = cf.implicit_pipeline
    monkeypatch.setattr(
        cf, "implicit_pipeline", lambda kind, settings: trained.append(kind) or real(kind, settings)
    )
    everything = fit_choice_features(train, genres, seed=0)
    assert sorted(trained) == sorted(["itemknn", "implicit_mf", "bpr", "userknn", "sasrec"])
    some = fit_choice_features(train, genres, seed=0, families=["itemknn", "genre"])
    assert len(trained) == 5  # nothing trained again
    assert some.columns == [c for c in everything.columns if c.startswith(("itemknn", "genre"))]
    items = ["i0_1", "i3_4", "i7_19"]
    cf._FITTED.clear()
    fresh = fit_choice_features(train, genres, seed=0, families=["itemknn", "genre"])
    assert trained[-1] == "itemknn"  # a cleared cache fits again
    np.testing.assert_array_equal(some.user("u1", items), fresh.user("u1", items))
    # another seed, or another log, is another fit
    fit_choice_features(train, genres, seed=1, families=["bpr"])
    fit_choice_features(train.iloc[1:], genres, seed=0, families=["bpr"])
    assert trained[-2:] == ["bpr", "bpr"]
