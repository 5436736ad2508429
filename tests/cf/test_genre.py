"""The user x genre baseline against its formula written out with pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personasim.cf.explicit import fit_baseline, predict_baseline, training_dataset
from personasim.config import CFConfig
from personasim.data.splitting import split_temporal
from personasim.evaluation.metrics import rmse


@pytest.fixture(scope="module")
def split(small_log):
    users = np.array(sorted(small_log.ratings.user_id.unique()))
    return split_temporal(small_log.ratings, users, train_fraction=0.6, include_others=False)


@pytest.fixture(scope="module")
def genres(small_log):
    items = small_log.items
    return {str(i): list(g) for i, g in zip(items.item_id, items.genres, strict=True)}


def _by_hand(train, genres, user, item, damping):
    mu = train.rating.mean()
    mine = train[train.user_id == user]
    b_u = (mine.rating - mu).sum() / (len(mine) + damping)
    residual = mine.rating - mu - b_u
    offsets = []
    for genre in genres[item]:
        of_genre = [genre in genres[i] for i in mine.item_id]
        offsets.append(residual[of_genre].sum() / (sum(of_genre) + damping))
    return mu + b_u + (np.mean(offsets) if offsets else 0.0)


def test_user_genre_matches_the_formula_written_out(split, genres):
    train = split.training_data()
    scorer = fit_baseline(
        "user_genre", CFConfig(bias_damping=3.0), training_dataset(train), 0, genres=genres
    )
    pairs = split.test.groupby("user_id").head(2).head(30)
    predicted = predict_baseline(scorer, pairs).predicted
    expected = [
        _by_hand(train, genres, u, i, 3.0)
        for u, i in zip(pairs.user_id, pairs.item_id, strict=True)
    ]
    np.testing.assert_allclose(predicted, expected, rtol=1e-6)


def test_user_genre_predicts_items_nobody_rated_better_than_the_user_mean(split, genres):
    """The synthetic personas prefer genres: for items absent from training, knowing the
    user's genre offsets beats knowing the user's mean."""
    train = split.training_data()
    test = split.test
    # withhold a third of the items from training: they are new to every model
    new = set(sorted(test.item_id.unique())[::3])
    train = train[~train.item_id.isin(new)]
    pairs = test[test.item_id.isin(new)]
    assert len(pairs) > 100
    ds = training_dataset(train)
    config = CFConfig()
    genre = predict_baseline(fit_baseline("user_genre", config, ds, 0, genres=genres), pairs)
    user = predict_baseline(fit_baseline("user_item_bias", config, ds, 0), pairs)
    truth = pairs.rating.to_numpy()
    assert rmse(truth, genre.predicted) < rmse(truth, user.predicted) - 0.02


def test_user_genre_needs_the_genres():
    ds = training_dataset(
        pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "rating": [4.0], "timestamp": [0]})
    )
    with pytest.raises(ValueError, match="genres"):
        fit_baseline("user_genre", CFConfig(), ds, 0)
