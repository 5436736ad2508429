"""No test rating may reach the item statistics (or anything a model learns from)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from personasim.data.splitting import global_cut_time, split_global_time, split_temporal
from personasim.data.tables import item_statistics


def _ingest(cli, path, workdir, *extra):
    res = cli(
        "ingest",
        "--workdir",
        workdir,
        "--path",
        path,
        "--users",
        "20",
        "--min-ratings",
        "20",
        "--max-ratings",
        "0",
        "--seed",
        "5",
        *extra,
    )
    assert res.code == 0, res.output
    data = workdir / "data"
    return (
        pd.read_parquet(data / "interactions.parquet"),
        pd.read_parquet(data / "items.parquet"),
        pd.read_parquet(data / "others.parquet"),
    )


def test_item_statistics_use_training_data_only():
    items = pd.DataFrame(
        {"item_id": ["x", "y"], "title": ["X", "Y"], "year": [1, 2], "genres": [[], []]}
    )
    training = pd.DataFrame({"item_id": ["x", "x", "y"], "rating": [2.0, 4.0, 5.0]})
    stats = item_statistics(items, training).set_index("item_id")
    assert stats.loc["x", "train_mean_rating"] == 3.0 and stats.loc["x", "train_count"] == 2


def test_changing_test_ratings_changes_no_item_statistic(cli, small_log, tmp_path):
    """Ingest, then rewrite every test rating of the log and ingest again: if any test
    rating leaked into the item statistics, they would move."""
    ratings = small_log.ratings.copy()
    for other_users in ("--other-users", "--sampled-users-only"):
        path = tmp_path / "log.csv"
        ratings.to_csv(path, index=False)
        inter, items, _ = _ingest(cli, path, tmp_path / f"a{other_users}", other_users)
        test = inter[inter.split == "test"]
        key = set(zip(test.user_id, test.item_id, strict=True))
        flipped = ratings.copy()
        is_test = [(u, i) in key for u, i in zip(flipped.user_id, flipped.item_id, strict=True)]
        flipped.loc[is_test, "rating"] = 6 - flipped.loc[is_test, "rating"]
        assert (flipped.rating != ratings.rating).sum() > 100  # the change is real
        flipped.to_csv(path, index=False)
        inter2, items2, _ = _ingest(cli, path, tmp_path / f"b{other_users}", other_users)
        assert (inter2[inter2.split == "test"].rating.to_numpy() != test.rating.to_numpy()).any()
        pd.testing.assert_frame_equal(items, items2)


def test_item_statistics_equal_recomputation_from_train_and_others(cli, small_log, tmp_path):
    path = tmp_path / "log.csv"
    small_log.ratings.to_csv(path, index=False)
    inter, items, others = _ingest(cli, path, tmp_path / "w")
    training = pd.concat([inter[inter.split == "train"], others])
    expected = training.groupby("item_id").rating.agg(["mean", "size"])
    got = items.set_index("item_id").loc[expected.index]
    np.testing.assert_allclose(got.train_mean_rating, expected["mean"])
    np.testing.assert_array_equal(got.train_count, expected["size"])
    test_pairs = set(
        zip(*inter[inter.split == "test"][["user_id", "item_id"]].T.values, strict=True)
    )
    train_pairs = set(zip(training.user_id, training.item_id, strict=True))
    assert not test_pairs & train_pairs


def test_others_never_contain_sampled_users(small_log):
    users = np.array(sorted(small_log.ratings.user_id.unique())[:10])
    split = split_temporal(small_log.ratings, users, train_fraction=0.6, include_others=True)
    assert not set(split.others.user_id) & set(users)


def test_the_global_time_protocol_lets_nothing_after_the_cut_reach_a_model(small_log):
    log = small_log.ratings
    cut = global_cut_time(log, 0.7)
    assert (log.timestamp < cut).mean() <= 0.7 <= (log.timestamp <= cut).mean()
    split, eligible = split_global_time(
        log,
        cut=cut,
        n_users=10,
        min_ratings=1,
        max_ratings=0,
        include_others=True,
        rng=np.random.default_rng(0),
    )
    inter = split.interactions
    assert inter.user_id.nunique() == 10 and eligible >= 10
    assert (inter[inter.split == "train"].timestamp < cut).all()
    assert (inter[inter.split == "test"].timestamp >= cut).all()
    # every sampled user has both sides; nobody's later ratings train anything
    assert (inter.groupby("user_id").split.nunique() == 2).all()
    assert (split.training_data().timestamp < cut).all()
    assert len(split.others) == int(
        ((log.timestamp < cut) & ~log.user_id.isin(inter.user_id)).sum()
    )


def test_the_global_time_protocol_through_ingest(cli, small_log, tmp_path):
    path = tmp_path / "log.csv"
    small_log.ratings.to_csv(path, index=False)
    config = tmp_path / "global.toml"
    config.write_text('[split]\nprotocol = "global_time"\ntrain_fraction = 0.7\n')
    res = cli("ingest", "--workdir", tmp_path / "w", "--path", path, "--users", "8",
              "--min-ratings", "5", "--config", config)  # fmt: skip
    assert res.code == 0, res.output
    data = tmp_path / "w" / "data"
    inter = pd.read_parquet(data / "interactions.parquet")
    others = pd.read_parquet(data / "others.parquet")
    cut = json.loads((data / "manifest.json").read_text())["summary"]["cut_time"]
    assert (inter[inter.split == "train"].timestamp < cut).all()
    assert (inter[inter.split == "test"].timestamp >= cut).all() and (others.timestamp < cut).all()
    items = pd.read_parquet(data / "items.parquet").set_index("item_id")
    training = pd.concat([inter[inter.split == "train"], others])
    counts = training.groupby("item_id").size()
    np.testing.assert_array_equal(items.loc[counts.index, "train_count"], counts)
