"""The large synthetic log generator: sizes, ranges, determinism, persona signal."""

from __future__ import annotations

import numpy as np
import pandas as pd

from personasim.testing import write_large_log


def test_large_log_has_the_asked_shape_and_is_seeded(tmp_path):
    ratings, items, personas = write_large_log(
        tmp_path / "a", 300, n_items=200, ratings_per_user=(20, 40), n_personas=4, chunk_users=64
    )
    log = pd.read_parquet(ratings)
    counts = log.groupby("user_id", observed=True).size()
    assert len(counts) == 300 and counts.between(20, 40).all()
    assert not log.duplicated(["user_id", "item_id"]).any()
    assert log["rating"].between(1, 5).all() and (log["rating"] % 1 == 0).all()
    assert pd.read_csv(items)["genres"].str.len().gt(0).all()
    truth = pd.read_parquet(personas)
    assert truth["persona"].nunique() == 4 and len(truth) == 300

    again = write_large_log(
        tmp_path / "b", 300, n_items=200, ratings_per_user=(20, 40), n_personas=4, chunk_users=64
    )
    pd.testing.assert_frame_equal(log, pd.read_parquet(again[0]))


def test_large_log_ratings_follow_the_latent_personas(tmp_path):
    ratings, items, personas = write_large_log(
        tmp_path, 400, n_items=300, ratings_per_user=(40, 60), n_personas=3
    )
    log = pd.read_parquet(ratings).astype({"user_id": str, "item_id": str})
    genres = pd.read_csv(items).assign(g=lambda f: f.genres.str.split("|"))[["item_id", "g"]]
    rated = log.merge(genres, on="item_id").explode("g")
    rated["persona"] = rated["user_id"].map(
        pd.read_parquet(personas).set_index("user_id")["persona"].astype(str)
    )
    by = rated.groupby(["persona", "g"])["rating"].mean().unstack()
    # Each persona's best and worst genres are more than a star apart.
    assert ((by.max(axis=1) - by.min(axis=1)) > 1.0).all()
    # and personas differ in which genre they like best
    assert by.idxmax(axis=1).nunique() > 1
    assert np.isfinite(by.to_numpy()).all()
