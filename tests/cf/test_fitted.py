"""A collaborative model is fitted once per run and read back by every stage that asks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personasim.cf.explicit import fit_baseline, predict_baseline, training_dataset
from personasim.cf.fitted import FittedModels, training_fingerprint
from personasim.config import CFConfig, SimulateConfig
from personasim.simulation.recommenders import create_recommender, fit_recommender


@pytest.fixture
def training() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, 40, 900).astype(str),
            "item_id": rng.integers(0, 60, 900).astype(str),
            "rating": rng.integers(1, 6, 900).astype(float),
            "timestamp": np.arange(900),
        }
    )
    return frame.drop_duplicates(["user_id", "item_id"]).reset_index(drop=True)


def test_a_model_asked_twice_is_fitted_once(tmp_path, training) -> None:
    calls = []

    def fit() -> dict[str, int]:
        calls.append(1)
        return {"fitted": len(calls)}

    models = FittedModels(tmp_path, training)
    assert models.get("mf", {"epochs": 3}, 0, fit) == {"fitted": 1}
    again = FittedModels(tmp_path, training.copy())  # another stage, the same rows
    assert again.get("mf", {"epochs": 3}, 0, fit) == {"fitted": 1}
    assert len(calls) == 1
    # other settings, seed or rows: another model
    assert again.get("mf", {"epochs": 4}, 0, fit) == {"fitted": 2}
    assert again.get("mf", {"epochs": 3}, 1, fit) == {"fitted": 3}
    other_rows = FittedModels(tmp_path, training.iloc[1:])
    assert other_rows.get("mf", {"epochs": 3}, 0, fit) == {"fitted": 4}


def test_an_unreadable_model_is_fitted_again(tmp_path, training) -> None:
    models = FittedModels(tmp_path, training)
    models.get("bias", {}, 0, lambda: 1)
    for path in tmp_path.glob("bias-*.pkl"):
        path.write_bytes(b"not a pickle")
    assert models.get("bias", {}, 0, lambda: 2) == 2


def test_without_a_folder_every_ask_fits_and_nothing_is_kept(
    tmp_path, monkeypatch, training
) -> None:
    monkeypatch.chdir(tmp_path)  # where a relative path would be written
    models = FittedModels(None, training)
    first, second = (models.get("x", {}, 0, object) for _ in range(2))
    assert first is not second
    assert not any(tmp_path.iterdir())


def test_the_fingerprint_reads_the_rows_not_the_index_or_other_columns(training) -> None:
    moved = training.set_index(training.index + 7).assign(split="train")
    assert training_fingerprint(moved) == training_fingerprint(training)
    changed = training.copy()
    changed.loc[0, "rating"] = 6 - changed.loc[0, "rating"]
    assert training_fingerprint(changed) != training_fingerprint(training)


@pytest.mark.parametrize("name", ["biased_mf", "item_knn", "user_item_bias"])
def test_a_read_baseline_predicts_as_a_fresh_fit(tmp_path, training, name) -> None:
    config, dataset = CFConfig(mf_epochs=3), training_dataset(training)
    pairs = training.sample(50, random_state=1)
    fresh = fit_baseline(name, config, dataset, 0)
    kept = fit_baseline(name, config, dataset, 0, models=FittedModels(tmp_path, training))
    read = fit_baseline(name, config, dataset, 0, models=FittedModels(tmp_path, training))
    assert list(tmp_path.glob(f"{name}-*.pkl"))
    expected = predict_baseline(fresh, pairs).predicted
    np.testing.assert_array_equal(predict_baseline(kept, pairs).predicted, expected)
    np.testing.assert_array_equal(predict_baseline(read, pairs).predicted, expected)


@pytest.mark.parametrize("name", ["popular", "itemknn", "mf"])
def test_a_read_recommender_lists_as_a_fresh_fit(tmp_path, training, name) -> None:
    cf, simulate = CFConfig(implicit_mf_epochs=3), SimulateConfig()
    history = training.loc[training["user_id"] == "3", "item_id"].tolist()
    fresh = create_recommender(name, simulate, cf)
    fresh.fit(training, seed=2)
    for _ in range(2):  # fitted and kept, then read
        kept = create_recommender(name, simulate, cf)
        fit_recommender(kept, training, 2, FittedModels(tmp_path, training))
        assert kept.recommend("3", history, 10) == fresh.recommend("3", history, 10)
    assert len(list(tmp_path.glob(f"recommender-{name}-*.pkl"))) == 1
