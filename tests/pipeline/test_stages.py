"""The stage mechanism on a small log: skip, redo, force, resume, manifests, contracts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from personasim import RunConfig, run_pipeline
from personasim.config import load_config
from personasim.errors import StageError
from personasim.pipeline import STAGES, EvaluateStage, IngestStage
from personasim.workspace import Workspace


def _config(log_files, **split) -> RunConfig:
    ratings, items, users = log_files
    settings = {"users": 20, "min_ratings": 20, "max_ratings": 0, **split}
    return load_config(
        [
            (
                "test",
                {
                    "seed": 7,
                    "data": {
                        "dataset": "custom",
                        "path": str(ratings),
                        "items_path": str(items),
                        "users_path": str(users),
                    },
                    "split": settings,
                    "cf": {"mf_epochs": 5},
                    "evaluate": {"agents": []},
                    "llm": {"backend": "template"},
                    "agents": {"modes": []},
                    # the stage mechanism needs a simulation, not every recommender
                    "simulate": {
                        "recommenders": ["random", "popular", "itemknn"],
                        "agent_optional": True,
                    },
                },
            )
        ]
    )


NOTHING_RAN = {stage.name: False for stage in STAGES}


def _stage(results, name: str):
    return next(r for r in results if r.stage == name)


def _ran(results) -> dict[str, bool]:
    return {r.stage: r.ran for r in results}


def test_finished_stages_are_skipped_and_changes_redo_what_depends_on_them(log_files, tmp_path):
    cfg = _config(log_files)
    assert all(_ran(run_pipeline(tmp_path, cfg)).values())
    assert not any(_ran(run_pipeline(tmp_path, cfg)).values())
    # An evaluate-only change leaves the other stages alone.
    fewer = ["global_mean", "item_bias", "biased_mf"]
    cfg2 = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"baselines": fewer})})
    assert _ran(run_pipeline(tmp_path, cfg2)) == {**NOTHING_RAN, "evaluate": True, "report": True}
    # A split change redoes ingest, and evaluate because its input changed.
    cfg3 = cfg2.model_copy(update={"split": cfg2.split.model_copy(update={"users": 15})})
    results = run_pipeline(tmp_path, cfg3)
    assert all(_ran(results).values())
    assert all(r.reason == "inputs changed" for r in results[1:])
    assert all(_ran(run_pipeline(tmp_path, cfg3, force=True)).values())


def test_an_altered_artifact_is_detected_and_redone(log_files, tmp_path):
    cfg = _config(log_files)
    run_pipeline(tmp_path, cfg)
    path = tmp_path / "eval" / "metrics.json"
    path.write_text(path.read_text().replace("rmse", "RMSE"))
    results = run_pipeline(tmp_path, cfg)
    # evaluate is redone from its per-model checkpoints, to the same artifacts, so the
    # report (which reads them) is still up to date
    assert _ran(results) == {**NOTHING_RAN, "evaluate": True}
    assert "metrics.json" in _stage(results, "evaluate").reason
    assert "rmse" in path.read_text()


def test_a_changed_input_file_redoes_ingest(log_files, tmp_path):
    cfg = _config(log_files)
    run_pipeline(tmp_path, cfg)
    ratings = log_files[0]
    ratings.write_text(ratings.read_text().replace(",4.0,", ",5.0,", 1))
    results = run_pipeline(tmp_path, cfg)
    assert results[0].ran and results[0].reason == "inputs changed"


def test_evaluate_needs_ingest(log_files, tmp_path):
    with pytest.raises(StageError, match="run `personasim ingest"):
        EvaluateStage(Workspace(tmp_path), _config(log_files)).run()


def test_killed_evaluation_resumes_from_per_model_checkpoints(log_files, tmp_path, monkeypatch):
    import personasim.evaluation.ratings as ratings_module

    # Each baseline's rating predictions are checkpointed as soon as they exist (taste
    # is off here: its scores are checkpointed per model the same way).
    cfg = _config(log_files).model_copy(
        update={"evaluate": _config(log_files).evaluate.model_copy(update={"taste": False})}
    )
    reference = _stage(run_pipeline(tmp_path / "reference", cfg), "evaluate").summary["metrics"]

    real_fit = ratings_module.fit_baseline
    fitted: list[str] = []

    def dies_at_mf(name, *args, **kwargs):
        if name == "biased_mf":
            raise KeyboardInterrupt  # as if killed while fitting the last model
        fitted.append(name)
        return real_fit(name, *args, **kwargs)

    monkeypatch.setattr(ratings_module, "fit_baseline", dies_at_mf)
    ws = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(ws, cfg)
    assert (ws / "data" / "manifest.json").exists()
    assert not (ws / "eval").exists() and not (ws / ".staging").exists()
    assert fitted == ["global_mean", "item_bias", "user_item_bias", "user_genre"]

    fitted.clear()
    monkeypatch.setattr(
        ratings_module,
        "fit_baseline",
        lambda name, *a, **k: (fitted.append(name), real_fit(name, *a, **k))[1],
    )
    results = run_pipeline(ws, cfg)
    # simulate had not run either when the pipeline died in evaluate
    assert _ran(results) == {**NOTHING_RAN, "evaluate": True, "simulate": True, "report": True}
    # Only MF, item-kNN after it, and the bias model they fall back on are fitted again.
    assert sorted(fitted) == ["biased_mf", "item_knn", "user_item_bias"]
    assert _stage(results, "evaluate").summary["metrics"] == reference
    # a finished stage clears its checkpoints; evaluate keeps each model's results and
    # simulate its sessions (reused when only some settings or recommenders change)
    assert sorted(p.name for p in (ws / ".checkpoints").iterdir()) == ["eval", "simulate"]


def test_manifest_records_what_reproduces_the_run(log_files, tmp_path):
    cfg = _config(log_files)
    run_pipeline(tmp_path, cfg)
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    assert manifest["seed"] == 7
    assert manifest["config_hash"] == IngestStage(Workspace(tmp_path), cfg).config_hash()
    assert set(manifest["outputs"]) == {
        "interactions.parquet",
        "items.parquet",
        "users.parquet",
        "others.parquet",
    }
    assert any(k.endswith("ratings.csv") for k in manifest["inputs"])
    assert {"python", "numpy", "pandas", "lenskit", "personasim"} <= set(manifest["versions"])
    assert manifest["wall_time_s"] > 0
    evaluated = json.loads((tmp_path / "eval" / "manifest.json").read_text())
    assert list(evaluated["inputs"]) == ["stage:data"]
    saved = (tmp_path / "config.toml").read_text()
    assert "users = 20" in saved


def test_artifacts_follow_the_contract(log_files, tmp_path):
    run_pipeline(tmp_path, _config(log_files))
    inter = pq.read_schema(tmp_path / "data" / "interactions.parquet")
    assert inter.names == ["user_id", "item_id", "rating", "timestamp", "split"]
    assert [str(t) for t in inter.types] == ["string", "string", "double", "int64", "string"]
    items = pq.read_schema(tmp_path / "data" / "items.parquet")
    assert items.names == ["item_id", "title", "year", "genres", "train_mean_rating", "train_count"]
    preds = pd.read_parquet(tmp_path / "eval" / "predictions.parquet")
    assert list(preds.columns) == [
        "user_id",
        "item_id",
        "rating",
        "predicted",
        "model",
        "persona",
        "valid",
    ]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics) == {
        "global_mean",
        "item_bias",
        "user_item_bias",
        "user_genre",
        "biased_mf",
        "item_knn",
    }
    for m in metrics.values():
        assert {"rmse", "mae", "urr", "n"} <= set(m)
    test = pd.read_parquet(tmp_path / "data" / "interactions.parquet").query("split == 'test'")
    assert len(preds) == 6 * len(test)


def test_same_seed_same_artifacts(log_files, tmp_path):
    cfg = _config(log_files)
    run_pipeline(tmp_path / "a", cfg)
    run_pipeline(tmp_path / "b", cfg)
    for stage in ("data", "profiles", "personas", "adapters", "eval"):
        a = json.loads((tmp_path / "a" / stage / "manifest.json").read_text())["outputs"]
        b = json.loads((tmp_path / "b" / stage / "manifest.json").read_text())["outputs"]
        assert a == b, stage


def test_python_api_uses_the_run_folder_config(log_files, tmp_path: Path):
    run_pipeline(tmp_path, _config(log_files))
    results = run_pipeline(tmp_path)  # no config: the run folder's
    assert not any(_ran(results).values())
