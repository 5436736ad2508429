"""Fidelity beyond one number: intervals, paired comparison, groups, distributions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance

from personasim.evaluation.bootstrap import (
    mean_interval,
    paired_rmse_difference,
    rmse_mae_intervals,
)
from personasim.evaluation.fidelity import (
    distribution_distance,
    group_metrics,
    rating_histograms,
)
from personasim.evaluation.metrics import parse_rating


def _predictions(noise: float, seed: int, users: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.integers(1, 6, size=users * 10).astype(float)
    return pd.DataFrame(
        {
            "user_id": np.repeat([f"u{k}" for k in range(users)], 10),
            "item_id": np.tile([f"i{k}" for k in range(10)], users),
            "rating": truth,
            "predicted": truth + rng.normal(0, noise, size=truth.size),
        }
    )


def test_interval_covers_the_estimate_and_narrows_with_more_users():
    small_r, small_m = rmse_mae_intervals(_predictions(0.8, 0, users=20), seed=1)
    large_r, _ = rmse_mae_intervals(_predictions(0.8, 0, users=400), seed=1)
    assert small_r.low < small_r.estimate < small_r.high
    assert small_m.low < small_m.estimate < small_m.high
    assert large_r.high - large_r.low < small_r.high - small_r.low
    assert large_r.low < 0.8 < large_r.high


def test_paired_difference_tells_a_better_model_from_noise():
    good, bad = _predictions(0.5, 0), _predictions(0.5, 0)
    bad["predicted"] = bad["rating"] + np.random.default_rng(9).normal(0, 1.0, len(bad))
    diff, shared = paired_rmse_difference(good, bad, seed=0)
    assert shared == len(good) and diff.high < 0
    same, _ = paired_rmse_difference(good, good.assign(predicted=good.predicted + 1e-9), seed=0)
    assert abs(same.estimate) < 1e-6 and same.high - same.low < 1e-6
    assert np.isnan(mean_interval(np.array([np.nan, np.nan])).estimate)
    ones = mean_interval(np.array([1.0, np.nan, 1.0]))
    assert (ones.estimate, ones.low, ones.high) == (1.0, 1.0, 1.0)


def test_groups_and_histograms():
    preds = _predictions(0.3, 2).assign(model="m", valid=True)
    groups = pd.DataFrame(
        {"user_id": [f"u{k}" for k in range(40)], "persona": ["p0"] * 30 + ["p1"] * 10}
    )
    table = group_metrics(preds.assign(persona="stale"), groups)
    assert list(table.group) == ["p0", "p1"] and list(table.n) == [300, 100]
    hist = rating_histograms(preds, (1.0, 5.0))["m"]
    assert sum(hist["true"]) == pytest.approx(1) and sum(hist["predicted"]) == pytest.approx(1)
    far = {"values": [1, 2, 3, 4, 5], "true": [1, 0, 0, 0, 0], "predicted": [0, 0, 0, 0, 1]}
    assert distribution_distance(far)["wasserstein"] == pytest.approx(4.0)
    assert distribution_distance(hist)["wasserstein"] == pytest.approx(
        wasserstein_distance([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], hist["true"], hist["predicted"])
    )
    assert distribution_distance({**far, "predicted": far["true"]})["kl"] == pytest.approx(0)
    # KL(true || predicted) with 1e-3 added to every bin, from its definition
    p = (np.array(far["true"]) + 1e-3) / (1 + 5e-3)
    q = (np.array(far["predicted"]) + 1e-3) / (1 + 5e-3)
    assert distribution_distance(far)["kl"] == pytest.approx(np.sum(p * np.log(p / q)), abs=1e-6)


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("4", 4.0),
        ("I would rate it 4/5.", 4.0),
        ("3.5 stars", 3.5),
        ("Four stars!", 4.0),
        ("I'd rate Heat (1995) a 4 out of 5", 4.0),
        ("I'd rate Stranger Than Paradise (1984", None),
        ("10/10, a masterpiece", None),
        ("The viewer would enjoy this movie.", None),
        ("", None),
    ],
)
def test_free_text_answers_are_parsed(text, rating):
    assert parse_rating(text) == rating
