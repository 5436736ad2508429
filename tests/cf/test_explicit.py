"""The LensKit baselines: correct by construction on simple data, better than the mean
on structured data, deterministic for a seed."""

from __future__ import annotations

import numpy as np
import pytest

from personasim.cf.explicit import fit_baseline, predict_baseline, training_dataset
from personasim.config import CFConfig
from personasim.data.splitting import split_temporal
from personasim.evaluation.metrics import rmse


@pytest.fixture(scope="module")
def split(small_log):
    users = np.array(sorted(small_log.ratings.user_id.unique()))
    return split_temporal(small_log.ratings, users, train_fraction=0.6, include_others=False)


def _predict(name, split, seed=0, **cfg):
    config = CFConfig(**cfg)
    ds = training_dataset(split.training_data())
    scorer = fit_baseline(name, config, ds, seed)
    fallback = fit_baseline("user_item_bias", config, ds, seed)
    return predict_baseline(scorer, split.test, fallback=fallback, scale=(1.0, 5.0))


def test_global_mean_predicts_the_training_mean(split):
    result = _predict("global_mean", split)
    assert np.allclose(result.predicted, split.training_data().rating.mean())


def test_undamped_item_bias_is_the_item_mean(split):
    result = _predict("item_bias", split, bias_damping=0.0)
    means = split.training_data().groupby("item_id").rating.mean()
    known = split.test.item_id.isin(means.index).to_numpy()
    expected = np.clip(means.reindex(split.test.item_id[known]).to_numpy(), 1, 5)
    np.testing.assert_allclose(result.predicted[known], expected, rtol=1e-5)


def test_models_with_more_structure_predict_better(split):
    truth = split.test.rating.to_numpy()
    errors = {
        name: rmse(truth, _predict(name, split).predicted)
        for name in ("global_mean", "user_item_bias", "biased_mf")
    }
    assert errors["user_item_bias"] < errors["global_mean"] - 0.05
    assert errors["biased_mf"] < errors["global_mean"] - 0.05


def test_mf_is_deterministic_for_a_seed_and_clipped(split):
    a = _predict("biased_mf", split, seed=1).predicted
    b = _predict("biased_mf", split, seed=1).predicted
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 1.0 and a.max() <= 5.0


def test_unknown_items_fall_back_and_are_counted(split):
    test = split.test.copy()
    test.loc[test.index[:3], "item_id"] = "never-seen"
    config = CFConfig()
    ds = training_dataset(split.training_data())
    mf = fit_baseline("biased_mf", config, ds, 0)
    fallback = fit_baseline("user_item_bias", config, ds, 0)
    result = predict_baseline(mf, test, fallback=fallback)
    unknown = ~test.item_id.isin(set(split.training_data().item_id)).to_numpy()
    assert unknown[:3].all() and result.fallbacks == int(unknown.sum())
    assert not np.isnan(result.predicted).any()
    bias = predict_baseline(fallback, test).predicted
    np.testing.assert_allclose(result.predicted[unknown], bias[unknown])
    alone = predict_baseline(mf, test)
    assert np.isnan(alone.predicted[unknown]).all()


def _knn_by_hand(train, user, item, neighbours=20):
    """Explicit item-kNN written out: cosine similarity of item-mean-centred rating
    columns; the target's mean plus the similarity-weighted centred ratings of the
    user's most similar rated items (positive similarities only)."""
    table = train.pivot_table(index="user_id", columns="item_id", values="rating")
    means = table.mean()
    centred = (table - means).fillna(0.0)
    norms = np.sqrt((centred**2).sum())
    sims = centred.T @ centred[item] / (norms * norms[item])
    rated = train[train.user_id == user].set_index("item_id").rating
    sims = sims.reindex(rated.index).drop(item, errors="ignore")
    sims = sims[sims > 1e-6].sort_values(ascending=False).head(neighbours)
    if sims.empty:
        return np.nan
    deviations = rated[sims.index] - means[sims.index]
    return means[item] + float((sims * deviations).sum() / sims.sum())


def test_item_knn_matches_the_formula_written_out(split):
    train = split.training_data()
    ds = training_dataset(train)
    scorer = fit_baseline("item_knn", CFConfig(knn_neighbours=5), ds, 0)
    pairs = split.test.groupby("user_id").head(2).head(40)
    pairs = pairs[pairs.item_id.isin(set(train.item_id))]
    predicted = predict_baseline(scorer, pairs).predicted
    expected = [
        _knn_by_hand(train, u, i, 5) for u, i in zip(pairs.user_id, pairs.item_id, strict=True)
    ]
    # most pairs have a positively similar rated item; the rest are NaN in both
    assert np.isfinite(predicted).sum() >= 30
    np.testing.assert_allclose(predicted, expected, rtol=1e-4, atol=1e-4)


def test_item_knn_knows_a_user_by_the_training_ratings_and_beats_the_mean(split):
    truth = split.test.rating.to_numpy()
    knn = _predict("item_knn", split)
    assert rmse(truth, knn.predicted) < rmse(truth, _predict("global_mean", split).predicted) - 0.05
    config = CFConfig()
    scorer = fit_baseline("item_knn", config, training_dataset(split.training_data()), 0)
    stranger = split.test.head(3).assign(user_id="nobody")
    assert np.isnan(predict_baseline(scorer, stranger).predicted).all()
