"""Rating metrics against hand-computed values and LensKit's reference implementation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personasim.evaluation.metrics import mae, rating_metrics, rmse, urr


def test_hand_computed_values():
    truth = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([2.0, 2.0, 1.0, 4.0])
    assert rmse(truth, pred) == pytest.approx(np.sqrt((1 + 0 + 4 + 0) / 4))
    assert mae(truth, pred) == pytest.approx(3 / 4)
    assert urr(np.array([True, False, True, True])) == pytest.approx(0.25)
    assert np.isnan(rmse(np.array([]), np.array([])))


def test_agree_with_lenskit_reference():
    from lenskit.data import ItemList
    from lenskit.metrics import MAE, RMSE

    rng = np.random.default_rng(0)
    truth = rng.integers(1, 6, 50).astype(float)
    pred = np.clip(truth + rng.normal(0, 0.8, 50), 1, 5)
    items = np.arange(50)
    predictions = ItemList(item_ids=items, scores=pred)
    test = ItemList(item_ids=items, rating=truth)
    assert rmse(truth, pred) == pytest.approx(RMSE().measure_list(predictions, test))
    assert mae(truth, pred) == pytest.approx(MAE().measure_list(predictions, test))


def test_rating_metrics_skip_invalid_answers_but_count_them():
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "b", "b"],
            "rating": [4.0, 2.0, 5.0, 1.0],
            "predicted": [4.0, 3.0, np.nan, 1.0],
            "valid": [True, True, False, True],
        }
    )
    m = rating_metrics(frame)
    assert m["n"] == 4 and m["n_users"] == 2
    assert m["urr"] == pytest.approx(0.25)
    assert m["rmse"] == pytest.approx(np.sqrt(1 / 3))
    assert m["mae"] == pytest.approx(1 / 3)
