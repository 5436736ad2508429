"""Agent4Rec's traits: exact definitions, percentile levels, train part only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personasim.profiles.traits import compute_traits, diversity_count, level


def test_diversity_counts_genres_covering_80_percent_of_the_mass():
    # A: 5, B: 3, C: 2 -> cumulative 0.5, 0.8 -> two genres
    genres = [["A", "B"], ["A", "B"], ["A", "C"], ["A", "B"], ["A", "C"]]
    assert diversity_count(genres) == 2
    assert diversity_count([["A"]] * 4) == 1
    assert diversity_count([["A"], ["B"], ["C"], ["D"], ["E"]]) == 4  # 0.2 each: 4 reach 0.8
    assert diversity_count([]) == 0


def test_levels_cut_at_percentiles():
    values = np.arange(1, 11)  # p60 = 6.4, p90 = 9.1
    assert level(values, (60, 90)).tolist() == [1] * 6 + [2] * 3 + [3]
    assert level(values, (60, 90), reverse=True).tolist() == [3] * 6 + [2] * 3 + [1]


def _train_and_items():
    items = pd.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "genres": [["Comedy"], ["Drama", "Comedy"], ["Horror"]],
            "train_mean_rating": [4.0, 3.0, 2.0],
        }
    )
    train = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u1", "u2", "u2"],
            "item_id": ["a", "b", "c", "a", "c"],
            "rating": [5.0, 3.0, 1.0, 2.0, 4.0],
        }
    )
    return train, items


def test_raw_values_are_exact():
    train, items = _train_and_items()
    traits = compute_traits(train, items).set_index("user_id")
    assert traits.loc["u1", "activity_count"] == 3 and traits.loc["u2", "activity_count"] == 2
    # u1 gaps: (5-4)^2, (3-3)^2, (1-2)^2 -> mean 2/3; u2: (2-4)^2, (4-2)^2 -> 4
    assert traits.loc["u1", "conformity_gap"] == pytest.approx(2 / 3)
    assert traits.loc["u2", "conformity_gap"] == pytest.approx(4.0)
    # u1 genre mass: Comedy 2, Drama 1, Horror 1 -> 0.5, 0.75, 1.0 -> 3 genres
    assert traits.loc["u1", "diversity_genres"] == 3
    assert traits.loc["u2", "diversity_genres"] == 2
    # The smaller gap is the more conformist user.
    assert traits.loc["u1", "conformity"] > traits.loc["u2", "conformity"]


def test_traits_ignore_test_ratings(small_log):
    from personasim.data.splitting import split_temporal
    from personasim.data.tables import item_statistics

    users = np.array(sorted(small_log.ratings.user_id.unique()))
    split = split_temporal(small_log.ratings, users, train_fraction=0.6, include_others=False)
    items = item_statistics(small_log.items, split.training_data())
    before = compute_traits(split.train, items)
    flipped = split.interactions.copy()
    test = flipped["split"] == "test"
    flipped.loc[test, "rating"] = 6 - flipped.loc[test, "rating"]
    after = compute_traits(flipped[flipped.split == "train"], items)
    pd.testing.assert_frame_equal(before, after)
    assert set(before.columns) >= {"activity", "conformity", "diversity"}
    assert before[["activity", "conformity", "diversity"]].isin([1, 2, 3]).all().all()
