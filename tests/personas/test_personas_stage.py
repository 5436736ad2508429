"""The personas stage on a small log with template profiles."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from personasim import run_pipeline
from personasim.config import load_config
from personasim.personas.assignment import PersonaModel
from personasim.personas.features import taste_features
from personasim.pipeline import IngestStage, PersonasStage, ProfileStage


def _config(log_files, **personas):
    ratings, items, users = log_files
    return load_config(
        [
            (
                "test",
                {
                    "seed": 3,
                    "data": {
                        "dataset": "custom",
                        "path": str(ratings),
                        "items_path": str(items),
                        "users_path": str(users),
                    },
                    "split": {"users": 0, "min_ratings": 20, "max_ratings": 0},
                    "llm": {"backend": "template"},
                    "personas": {"k_max": 6, "n_init": 3, **personas},
                },
            )
        ]
    )


STAGES = (IngestStage, ProfileStage, PersonasStage)


@pytest.fixture(scope="module")
def run(log_files_module, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("personas")
    run_pipeline(workdir, _config(log_files_module), stages=STAGES)
    return workdir


@pytest.fixture(scope="module")
def log_files_module(small_log, tmp_path_factory):
    return small_log.write_csv(tmp_path_factory.mktemp("log"))


def test_artifacts(run):
    folder = run / "personas"
    assignments = pd.read_parquet(folder / "assignments.parquet")
    profiles = pd.read_parquet(run / "profiles" / "profiles.parquet")
    assert list(assignments.columns[:2]) == ["user_id", "persona"]
    assert set(assignments.user_id) == set(profiles.user_id)
    summary = json.loads((folder / "manifest.json").read_text())["summary"]
    cards = json.loads((folder / "cards.json").read_text())
    assert [c["persona"] for c in cards] == [f"p{i}" for i in range(summary["k"])]
    assert sum(c["size"] for c in cards) == len(assignments)
    assert [c["size"] for c in cards] == sorted((c["size"] for c in cards), reverse=True)
    for card in cards:
        assert card["size"] >= 5  # min_size
        assert len(card["nearest_users"]) == 3 and card["description"]
        assert set(card["traits"]) == {"activity", "conformity", "diversity"}
        assert card["top_genres"] and 1 <= card["mean_rating"] <= 5
    assert (folder / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    membership = np.stack(assignments.membership.to_numpy())
    np.testing.assert_allclose(membership.sum(axis=1), 1.0, atol=1e-5)
    selection = json.loads((folder / "k_selection.json").read_text())
    assert selection["k_chosen"] == summary["k_chosen"] and selection["k_tried"] == [2, 3, 4, 5, 6]


def test_same_seed_same_assignments(run, log_files_module, tmp_path):
    run_pipeline(tmp_path, _config(log_files_module), stages=STAGES)
    a = pd.read_parquet(run / "personas" / "assignments.parquet")
    b = pd.read_parquet(tmp_path / "personas" / "assignments.parquet")
    pd.testing.assert_frame_equal(a, b)


def test_personas_record_their_feature_space_and_what_sets_them_apart(run):
    meta = json.loads((run / "personas" / "model.json").read_text())
    assert meta["space"]["weights"] == {"taste": 1.0}  # the default
    assert set(meta["space"]["blocks"]) == {"taste", "traits", "embedding"}
    for card in json.loads((run / "personas" / "cards.json").read_text()):
        assert len(card["distinguishing"]) == 3
        assert all(abs(d["z"]) > 0 for d in card["distinguishing"])
        assert card["description"].startswith("Viewers set apart by ")


def test_cold_start_assignment_agrees_with_the_clustering(run):
    model = PersonaModel.from_workdir(run)
    profiles = pd.read_parquet(run / "profiles" / "profiles.parquet")
    assignments = pd.read_parquet(run / "personas" / "assignments.parquet")
    interactions = pd.read_parquet(run / "data" / "interactions.parquet")
    items = pd.read_parquet(run / "data" / "items.parquet")
    taste = taste_features(interactions[interactions.split == "train"], items)
    result = model.assign(taste=taste.loc[profiles.user_id])
    agree = np.mean(np.array(result.personas) == assignments.persona.to_numpy())
    assert agree >= 0.9  # k-means labels are nearest centroids, up to merged personas
    assert result.membership.shape == (len(profiles), len(model.names))
    # known only by their profile texts, users are still placed (by the embedding)
    by_text = model.assign(profiles.profile_text.tolist())
    assert set(by_text.personas) <= set(model.names)
    np.testing.assert_allclose(by_text.membership.sum(axis=1), 1.0)


def test_traits_with_the_embedding(log_files_module, tmp_path):
    run_pipeline(
        tmp_path, _config(log_files_module, features="embedding+traits", k=3), stages=STAGES
    )
    model = PersonaModel.from_workdir(tmp_path)
    assert model.space.weights == {"embedding": 1.0, "traits": 1.0} and len(model.names) <= 3
    profiles = pd.read_parquet(tmp_path / "profiles" / "profiles.parquet")
    assignments = pd.read_parquet(tmp_path / "personas" / "assignments.parquet")
    both = model.assign(profiles.profile_text.tolist(), traits=profiles)
    # with both blocks a user's distance to its persona is the clustering's distance
    mine = [model.names.index(p) for p in assignments.persona]
    np.testing.assert_allclose(
        both.distances[np.arange(len(mine)), mine], assignments.distance, rtol=1e-5
    )
    text_only = model.assign(profiles.profile_text.tolist()[:2])
    assert len(text_only.personas) == 2


def test_assign_command(run, cli, tmp_path):
    profiles = pd.read_parquet(run / "profiles" / "profiles.parquet").iloc[:4]
    users = tmp_path / "new.csv"
    profiles[["user_id", "profile_text"]].assign(user_id=lambda f: "new-" + f.user_id).to_csv(
        users, index=False
    )
    out = tmp_path / "assigned.parquet"
    res = cli("personas", "assign", "--workdir", run, "--user-file", users, "--output", out)
    assert res.code == 0, res.output
    assigned = pd.read_parquet(out)
    assert assigned.user_id.str.startswith("new-").all() and len(assigned) == 4
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,text\nx,hello\n")
    res = cli("personas", "assign", "--workdir", run, "--user-file", bad)
    assert res.code == 2 and "needs either a profile_text column" in res.output


def test_assign_new_users_from_their_ratings(run, cli, small_log, tmp_path, copy_run):
    """A cold-start user given as ratings is profiled like the run's users and placed."""
    run = copy_run(run)  # its profile is cached in the run folder
    ratings = small_log.ratings
    user = ratings.user_id.iloc[0]
    mine = ratings[ratings.user_id == user].assign(user_id="newcomer")
    path = tmp_path / "newcomer.csv"
    mine.to_csv(path, index=False)
    out = tmp_path / "assigned.parquet"
    res = cli("personas", "assign", "--workdir", run, "--user-file", path, "--output", out)
    assert res.code == 0, res.output
    assigned = pd.read_parquet(out)
    assert assigned.user_id.tolist() == ["newcomer"]
    assert assigned.profile_text.iloc[0].startswith("Activity: ")
    np.testing.assert_allclose(np.stack(assigned.membership).sum(), 1.0)
    mine.iloc[:3].assign(item_id="no-such-item").to_csv(path, index=False)
    res = cli("personas", "assign", "--workdir", run, "--user-file", path)
    assert (
        res.code == 3
        and "row 2, column 'item_id': item 'no-such-item' is not an item" in res.output
    )


def test_an_unweighted_embedding_is_computed_for_a_sample_only(run, log_files_module, tmp_path):
    """Personas on taste need the embedding only to place text-only users: with more
    users than `embedding_sample` a sample is embedded; the personas do not change."""
    run_pipeline(tmp_path, _config(log_files_module, embedding_sample=12), stages=STAGES)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "personas" / "assignments.parquet"),
        pd.read_parquet(run / "personas" / "assignments.parquet"),
    )
    model = PersonaModel.from_workdir(tmp_path)
    profiles = pd.read_parquet(tmp_path / "profiles" / "profiles.parquet")
    placed = model.assign(profiles.profile_text.tolist())
    np.testing.assert_allclose(placed.membership.sum(axis=1), 1.0)
    assert np.isfinite(placed.distances.min(axis=1)).all()


def test_out_of_core_personas_are_the_in_memory_ones(log_files_module, tmp_path):
    """With `scale.tables = "duckdb"` the taste features come from DuckDB; the personas
    are the same, user for user."""
    memory, duck = tmp_path / "memory", tmp_path / "duckdb"
    base = json.loads(_config(log_files_module).model_dump_json())
    base["profile"]["rationales"] = False
    run_pipeline(memory, load_config([("test", base)]), stages=STAGES)
    base["scale"]["tables"] = "duckdb"
    run_pipeline(duck, load_config([("test", base)]), stages=STAGES)
    a = pd.read_parquet(memory / "personas" / "assignments.parquet")
    b = pd.read_parquet(duck / "personas" / "assignments.parquet")
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6)


def test_the_personas_recover_the_logs_latent_personas(run, small_log):
    """The synthetic log's users follow 3 latent personas (each likes two genres and
    dislikes one): the personas found from template profiles must recover them far
    above chance (adjusted Rand index; 0 is chance, 1 the same partition)."""
    from sklearn.metrics import adjusted_rand_score

    found = pd.read_parquet(run / "personas" / "assignments.parquet")
    truth = small_log.users.assign(user_id=small_log.users.user_id.astype(str))
    joined = found.merge(truth[["user_id", "persona"]], on="user_id", suffixes=("", "_true"))
    assert len(joined) == len(found)
    score = adjusted_rand_score(joined.persona_true, joined.persona)
    # chance: the same persona sizes dealt out at random
    rng = np.random.default_rng(0)
    shuffled = [
        adjusted_rand_score(joined.persona_true, rng.permutation(joined.persona.to_numpy()))
        for _ in range(200)
    ]
    assert score >= 0.3 > max(shuffled)  # measured 0.50
