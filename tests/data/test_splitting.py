"""User selection and the per-user temporal split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personasim.data.splitting import n_train, select_users, split_temporal, withhold_items
from personasim.errors import ConfigError, DataError


def _log(counts: dict[str, int]) -> pd.DataFrame:
    rows = []
    for user, n in counts.items():
        for i in range(n):
            rows.append((user, f"i{i}", float(1 + i % 5), 100 + i))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def test_n_train_is_floor_and_robust_to_float_error():
    assert n_train(10, 0.6) == 6
    assert n_train(7, 0.6) == 4  # floor(4.2)
    assert n_train(100, 0.29) == 29  # 0.29 * 100 = 28.999999999999996 in floating point
    assert list(n_train(np.array([2, 3, 5]), 0.6)) == [1, 1, 3]


def test_select_users_respects_bounds_and_seed(small_log):
    ratings = small_log.ratings
    counts = ratings.groupby("user_id").size()
    users, n_eligible = select_users(
        ratings, n_users=10, min_ratings=25, max_ratings=35, rng=np.random.default_rng(1)
    )
    assert n_eligible == int(((counts >= 25) & (counts <= 35)).sum())
    assert len(users) == 10 and len(set(users)) == 10
    assert all(25 <= counts[u] <= 35 for u in users)
    again, _ = select_users(
        ratings.sample(frac=1, random_state=3),  # row order must not matter
        n_users=10,
        min_ratings=25,
        max_ratings=35,
        rng=np.random.default_rng(1),
    )
    assert list(again) == list(users)
    other, _ = select_users(
        ratings, n_users=10, min_ratings=25, max_ratings=35, rng=np.random.default_rng(2)
    )
    assert list(other) != list(users)


def test_select_users_zero_takes_all_and_too_many_is_a_usage_error():
    log = _log({"a": 5, "b": 8, "c": 2})
    users, n = select_users(
        log, n_users=0, min_ratings=3, max_ratings=0, rng=np.random.default_rng(0)
    )
    assert list(users) == ["a", "b"] and n == 2
    with pytest.raises(ConfigError, match="only 2 users have at least 3 ratings"):
        select_users(log, n_users=3, min_ratings=3, max_ratings=0, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="no user has between 10 and 20 ratings"):
        select_users(log, n_users=1, min_ratings=10, max_ratings=20, rng=np.random.default_rng(0))


def test_split_puts_first_floor_fraction_in_train_by_time(small_log):
    ratings = small_log.ratings
    users = np.array(sorted(ratings.user_id.unique()))[:15]
    split = split_temporal(ratings, users, train_fraction=0.6, include_others=True)
    inter = split.interactions
    assert set(inter.user_id) == set(users)
    for _, rows in inter.groupby("user_id"):
        n = len(rows)
        train, test = rows[rows.split == "train"], rows[rows.split == "test"]
        assert len(train) == int(np.floor(0.6 * n))
        assert train.timestamp.max() <= test.timestamp.min()
    # Others hold exactly the ratings of the users not sampled.
    assert set(split.others.user_id).isdisjoint(users)
    assert len(split.others) + len(inter) == len(ratings)
    assert len(split.training_data()) == len(split.train) + len(split.others)


def test_ties_in_time_are_broken_by_item_id_not_row_order():
    log = pd.DataFrame(
        {
            "user_id": ["u"] * 5,
            "item_id": ["e", "c", "a", "d", "b"],
            "rating": [1.0, 2.0, 3.0, 4.0, 5.0],
            "timestamp": [7, 7, 7, 7, 7],
        }
    )
    users = np.array(["u"])
    a = split_temporal(log, users, train_fraction=0.6, include_others=False)
    b = split_temporal(log.iloc[::-1], users, train_fraction=0.6, include_others=False)
    assert list(a.train.item_id) == ["a", "b", "c"] == list(b.train.item_id)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)


def test_excluding_others_leaves_only_sampled_train():
    log = _log({"a": 5, "b": 5, "c": 5})
    split = split_temporal(log, np.array(["a"]), train_fraction=0.6, include_others=False)
    assert split.others.empty
    assert set(split.training_data().user_id) == {"a"}


def test_too_few_ratings_for_split_names_the_user_row():
    log = _log({"a": 5, "b": 1})
    log["row"] = np.arange(2, 2 + len(log))
    with pytest.raises(DataError, match=r"log.csv, row 7, column 'uid': user 'b' has 1 rating"):
        split_temporal(
            log,
            np.array(["a", "b"]),
            train_fraction=0.6,
            include_others=False,
            file="log.csv",
            user_column="uid",
        )
    with pytest.raises(DataError, match="at least 10"):
        split_temporal(_log({"a": 9}), np.array(["a"]), train_fraction=0.1, include_others=False)


def test_withheld_items_leave_training_and_stay_in_test(small_log):
    users = np.array(sorted(small_log.ratings.user_id.unique()))[:30]
    split = split_temporal(small_log.ratings, users, train_fraction=0.6, include_others=True)
    before = split.interactions.copy()
    withheld = withhold_items(split, 0.1, np.random.default_rng(5))
    catalogue = small_log.ratings.item_id.nunique()
    assert len(withheld) == round(0.1 * catalogue) and withheld == sorted(withheld)
    # no model can learn anything of them ...
    assert not split.training_data().item_id.isin(withheld).any()
    # ... the test part is untouched, and the train part lost exactly their ratings
    pd.testing.assert_frame_equal(
        split.test.reset_index(drop=True), before[before.split == "test"].reset_index(drop=True)
    )
    kept = before[(before.split == "train") & ~before.item_id.isin(withheld)]
    pd.testing.assert_frame_equal(split.train.reset_index(drop=True), kept.reset_index(drop=True))
    assert split.test.item_id.isin(withheld).sum() > 0
    # the same seed withholds the same items
    again = split_temporal(small_log.ratings, users, train_fraction=0.6, include_others=True)
    assert withhold_items(again, 0.1, np.random.default_rng(5)) == withheld


def test_withholding_every_train_item_of_a_user_is_a_usage_error():
    ratings = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "b"],
            "item_id": ["x", "y", "y", "x"],
            "rating": [4.0, 3.0, 2.0, 5.0],
            "timestamp": [1, 2, 1, 2],
        }
    )
    split = split_temporal(ratings, np.array(["a", "b"]), train_fraction=0.5, include_others=False)
    with pytest.raises(ConfigError, match="no train rating"):
        withhold_items(split, 0.5, np.random.default_rng(0))
