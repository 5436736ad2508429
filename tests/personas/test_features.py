"""Feature blocks of the personas: taste features against a hand computation, block
scaling and weights, placing users by the blocks they have."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personasim.config import PersonaConfig
from personasim.personas.assignment import PersonaModel
from personasim.personas.cards import distinguishing_features
from personasim.personas.clustering import cluster
from personasim.personas.features import FeatureSpace, taste_features, trait_features
from personasim.testing import write_large_log

ITEMS = pd.DataFrame(
    {
        "item_id": ["a", "b", "c", "d"],
        "genres": [["Drama"], ["Comedy", "Drama"], ["Horror"], ["Comedy"]],
        "train_count": [9, 0, 99, 3],
        "year": [1990, 2000, np.nan, 1970],
    }
)


def test_taste_features_match_a_hand_computation():
    ratings = pd.DataFrame(
        {"user_id": ["u", "u", "u", "v"], "item_id": ["a", "b", "c", "d"], "rating": [5, 3, 1, 4]}
    )
    frame = taste_features(ratings, ITEMS, shrinkage=1.0)
    assert list(frame.index) == ["u", "v"]
    u = frame.loc["u"]
    # u's mean is 3: deviations a +2 (Drama), b 0 (Comedy, Drama), c -2 (Horror)
    assert u["lift:Drama"] == pytest.approx((2 + 0) / (2 + 1))
    assert u["lift:Comedy"] == pytest.approx(0.0)
    assert u["lift:Horror"] == pytest.approx(-2 / (1 + 1))
    assert u["share:Drama"] == pytest.approx(2 / 3) and u["share:Comedy"] == pytest.approx(1 / 3)
    assert u["rating_mean"] == pytest.approx(3.0)
    assert u["rating_spread"] == pytest.approx(np.std([5, 3, 1]))
    assert u["popularity"] == pytest.approx(np.mean(np.log1p([9, 0, 99])))
    assert u["era"] == pytest.approx(1995.0)  # c has no year
    v = frame.loc["v"]
    assert v["share:Comedy"] == 1.0 and v["share:Drama"] == 0.0 and v["lift:Comedy"] == 0.0
    assert v["rating_spread"] == 0.0 and v["era"] == 1970.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_taste_features_recover_the_latent_personas(tmp_path, seed):
    """On write_large_log's latent personas (each likes two genres, dislikes one) the
    default features, clustered at the latent K, find them (the embedding of the profile
    text does not: ARI ~0, see the README)."""
    from sklearn.metrics import adjusted_rand_score

    ratings, items, truth = write_large_log(tmp_path, 1000, n_personas=8, seed=seed)
    catalogue = pd.read_csv(items).assign(genres=lambda f: f.genres.str.split("|"))
    taste = taste_features(pd.read_parquet(ratings), catalogue)
    weights = PersonaConfig().features
    x = FeatureSpace.fit({"taste": taste}, weights).transform({"taste": taste})
    found = cluster(x, k=8, k_min=2, k_max=10, min_size=5, n_init=4, seed=0)
    latent = pd.read_parquet(truth).set_index("user_id").loc[taste.index, "persona"]
    assert adjusted_rand_score(latent, found.labels) >= 0.8


def test_k_by_the_elbow_finds_distinct_latent_personas(tmp_path):
    from sklearn.metrics import adjusted_rand_score

    ratings, items, truth = write_large_log(tmp_path, 1000, n_personas=5, seed=0)
    catalogue = pd.read_csv(items).assign(genres=lambda f: f.genres.str.split("|"))
    taste = taste_features(pd.read_parquet(ratings), catalogue)
    x = FeatureSpace.fit({"taste": taste}, {"taste": 1.0}).transform({"taste": taste})
    found = cluster(x, k=0, k_min=2, k_max=10, min_size=5, n_init=4, seed=0)
    latent = pd.read_parquet(truth).set_index("user_id").loc[taste.index, "persona"]
    assert found.k == 5 and adjusted_rand_score(latent, found.labels) >= 0.95


def test_each_block_counts_by_its_weight_whatever_its_width():
    rng = np.random.default_rng(0)
    wide = pd.DataFrame(rng.normal(0, 3, (200, 40)), columns=[f"w{i}" for i in range(40)])
    narrow = rng.normal(5, 0.1, (200, 2))
    space = FeatureSpace.fit({"taste": wide, "embedding": narrow}, {"taste": 1, "embedding": 4})
    x = space.transform({"taste": wide, "embedding": narrow})
    assert x.shape == (200, 42)
    assert x[:, :40].var(axis=0).sum() == pytest.approx(1.0)
    assert x[:, 40:].var(axis=0).sum() == pytest.approx(4.0)
    # a round trip through the saved form places the same users the same way
    again = FeatureSpace.from_dict(space.to_dict())
    np.testing.assert_allclose(again.transform({"taste": wide, "embedding": narrow}), x)
    # a missing column (or NaN) is the mean: 0 after standardising
    unit = space.unit({"taste": wide.drop(columns="w3").iloc[:5]})["taste"]
    np.testing.assert_allclose(unit[:, 3], 0.0)


def test_a_user_is_placed_by_the_blocks_it_has():
    taste = pd.DataFrame({"x": [0.0, 0.1, 5.0, 5.1]})
    embedding = np.array([[1.0, 0], [1, 0], [0, 1], [0, 1]])
    space = FeatureSpace.fit({"taste": taste, "embedding": embedding}, {"taste": 1.0})
    unit = space.unit({"taste": taste, "embedding": embedding})
    labels = np.array([0, 0, 1, 1])
    centroids = {
        b: np.stack([u[labels == k].mean(axis=0) for k in (0, 1)]) for b, u in unit.items()
    }
    model = PersonaModel(["p0", "p1"], centroids, space, "minilm", 0.05)
    # by taste (what the personas were clustered on): the clustering's own distance
    placed = model.assign_unit(space.unit({"taste": taste}))
    assert placed.personas == ["p0", "p0", "p1", "p1"]
    expected = np.abs(unit["taste"][:, :1] - centroids["taste"][:, 0][None])
    np.testing.assert_allclose(placed.distances, expected)
    # known only by the embedding: placed by it, the weighted blocks being absent
    by_text = model.assign_unit(space.unit({"embedding": np.array([[0.0, 1], [1, 0]])}))
    assert by_text.personas == ["p1", "p0"]
    np.testing.assert_allclose(by_text.membership.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="none was given"):
        model.distances({})


def test_feature_weights_are_read_from_text_and_old_configs():
    assert PersonaConfig().features == {"taste": 1.0}
    assert PersonaConfig(features="taste+embedding").features == {"taste": 1.0, "embedding": 1.0}
    assert PersonaConfig(features="taste=1,embedding=0.25").features == {
        "taste": 1.0,
        "embedding": 0.25,
    }
    old = PersonaConfig.model_validate({"features": "embedding+traits", "trait_weight": 0.5})
    assert old.features == {"embedding": 1.0, "traits": 0.5}
    for bad in ("taste=0", "taste=x", "colour"):
        with pytest.raises(ValueError):
            PersonaConfig(features=bad)


def test_traits_block_uses_log_activity():
    profiles = pd.DataFrame(
        {
            "user_id": [1, 2],
            "activity_count": [0, 99],
            "conformity_gap": [0.5, 1.0],
            "diversity_genres": [3, 7],
        }
    )
    frame = trait_features(profiles)
    assert list(frame.index) == ["1", "2"]
    np.testing.assert_allclose(frame["activity_count"], np.log1p([0, 99]))


def test_cards_name_what_sets_a_persona_apart():
    population = pd.DataFrame(
        {
            "share:Horror": [0.5, 0.6, 0.0, 0.1, 0.0, 0.1],
            "rating_mean": [3.5, 3.6, 3.5, 3.4, 3.6, 3.5],
        }
    )
    found = distinguishing_features(population.iloc[:2], population, n=1)
    assert [d["feature"] for d in found] == ["share:Horror"]
    assert found[0]["z"] > 1 and found[0]["text"].startswith("more Horror (55% of ratings")


def test_out_of_core_taste_features_equal_the_in_memory_ones(small_log, tmp_path):
    from personasim.config import ScaleConfig
    from personasim.data.tables import write_parquet
    from personasim.personas.outofcore import taste_features_out_of_core

    ratings = small_log.ratings.assign(split=np.where(small_log.ratings.index % 5, "train", "test"))
    items = small_log.items.assign(
        genres=small_log.items.genres.str.split("|"),
        train_count=np.arange(len(small_log.items)) % 7,
    )
    items.loc[3, "year"] = np.nan  # an item without a year
    write_parquet(ratings.astype({"user_id": str, "item_id": str}), tmp_path / "i.parquet")
    write_parquet(items.astype({"item_id": str}), tmp_path / "items.parquet")
    out = taste_features_out_of_core(
        tmp_path / "i.parquet",
        tmp_path / "items.parquet",
        scale=ScaleConfig(),
        scratch=tmp_path / "s",
    )
    expected = taste_features(ratings[ratings.split == "train"], items.astype({"item_id": str}))
    pd.testing.assert_frame_equal(
        out.sort_index(), expected.sort_index(), check_exact=False, rtol=1e-9, check_names=False
    )
