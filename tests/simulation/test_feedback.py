"""The feedback study's measures: Gini of exposure, coverage, genre entropy, the drift of
users' histories, and the sentence that says whether a recommender narrows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from personasim.simulation.feedback import (
    change_intervals,
    exposure_measures,
    gini,
    history_drift,
    loop_trend,
)

GENRES = {"a": ["Drama"], "b": ["Comedy"], "c": ["Drama", "Comedy"], "d": ["Horror"]}
POPULARITY = {"a": 1.0, "b": 0.75, "c": 0.5, "d": 0.25}


def test_gini_is_zero_for_equal_exposure_and_near_one_for_one_item():
    assert gini([3, 3, 3, 3]) == pytest.approx(0.0)
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)  # (n - 1) / n for one item of n
    assert gini([1, 2, 3, 4]) == pytest.approx(0.25)
    assert math.isnan(gini([0, 0]))


def test_exposure_counts_the_catalogue_items_never_listed():
    lists = pd.DataFrame({"user_id": ["u", "u", "v", "v"], "item_id": ["a", "b", "a", "c"]})
    got = exposure_measures(lists, ["a", "b", "c", "d"], GENRES, POPULARITY)
    assert got["coverage"] == pytest.approx(0.75)
    assert got["gini_exposure"] == pytest.approx(gini([2, 1, 1, 0]))
    assert got["popularity"] == pytest.approx(np.mean([1.0, 0.75, 1.0, 0.5]))
    # u: Drama, Comedy (1 bit); v: Drama x2, Comedy (0.918 bits)
    want = (1.0 + -(2 / 3 * np.log2(2 / 3) + 1 / 3 * np.log2(1 / 3))) / 2
    assert got["genre_entropy"] == pytest.approx(want)


def test_history_drift_is_zero_until_the_genres_move():
    start = {"u": ["a", "b"], "v": ["a"]}
    assert history_drift(start, start, GENRES) == 0.0
    same_mix = {"u": ["a", "b", "c"], "v": ["a", "a"]}
    assert history_drift(start, same_mix, GENRES) == pytest.approx(0.0, abs=1e-12)
    moved = {"u": ["a", "b", "d", "d"], "v": ["a"]}
    drift = history_drift(start, moved, GENRES)
    assert 0 < drift < 1
    assert history_drift(start, {"u": ["a", "b", "d", "d", "d", "d"], "v": ["a"]}, GENRES) > drift


def _rounds(entropy: list[float], coverage: list[float]) -> pd.DataFrame:
    n = len(entropy)
    return pd.DataFrame(
        {
            "recommender": "itemknn",
            "round": range(n),
            "genre_entropy": entropy,
            "coverage": coverage,
            "gini_exposure": np.linspace(0.8, 0.9, n),
            "popularity": 0.8,
            "history_drift": np.linspace(0, 0.01, n),
            "watch_rate": 0.5,
        }
    )


@pytest.mark.parametrize(
    ("entropy", "coverage", "trend"),
    [
        ([2.5, 2.4, 2.2], [0.30, 0.28, 0.25], "narrows"),
        ([2.5, 2.6, 2.8], [0.30, 0.31, 0.30], "broadens"),
        ([2.5, 2.51, 2.49], [0.30, 0.301, 0.299], "stays"),
        ([2.5, 2.4, 2.2], [0.30, 0.33, 0.40], "mixed"),
    ],
)
def test_the_trend_reads_the_lists_first_and_last_rounds(entropy, coverage, trend):
    got = loop_trend(_rounds(entropy, coverage))
    assert got["trend"] == trend
    assert got["sentence"].startswith("itemknn ")
    assert f"{entropy[0]:.2f} -> {entropy[-1]:.2f} bits" in got["sentence"]
    assert got["first"]["coverage"] == coverage[0] and got["last"]["coverage"] == coverage[-1]


def _lists(per_user: dict[str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(u, i) for u, items in per_user.items() for i in items], columns=["user_id", "item_id"]
    )


def test_intervals_of_a_clear_narrowing_exclude_zero():
    users = [f"u{k}" for k in range(30)]
    first = _lists({u: ["a", "b", "d"] for u in users})  # three genres each
    last = _lists({u: ["a", "a", "a"] for u in users})  # one
    got = change_intervals(first, last, 4, GENRES, rounds=300, seed=1)
    low, high = got["genre_entropy"]
    assert high < 0 and low == pytest.approx(high)  # every user lost the same
    assert got["coverage"][1] < 0  # 3 items listed, then 1
    assert loop_trend(_rounds([2.5, 1.0], [0.75, 0.25]), got)["trend"] == "narrows"


def test_a_change_within_the_noise_of_the_users_is_no_trend():
    rng = np.random.default_rng(0)
    catalogue = list(GENRES)
    users = [f"u{k}" for k in range(12)]
    first = _lists({u: list(rng.choice(catalogue, 3)) for u in users})
    last = _lists({u: list(rng.choice(catalogue, 3)) for u in users})
    got = change_intervals(first, last, 4, GENRES, rounds=300, seed=1)
    assert got["genre_entropy"][0] < 0 < got["genre_entropy"][1]
    # a 10% fall that the tolerance alone would call narrowing
    rounds = _rounds([2.5, 2.25], [0.30, 0.30])
    assert loop_trend(rounds)["trend"] == "narrows"
    trend = loop_trend(rounds, {"genre_entropy": got["genre_entropy"]})
    assert trend["trend"] == "stays" and "(95% " in trend["sentence"]
