"""The new-items protocol: withheld items reach no model's training data, and the
evaluation and the report show every model on them beside the baselines that apply."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from personasim import run_pipeline
from personasim.pipeline import (
    EvaluateStage,
    IngestStage,
    PersonasStage,
    ProfileStage,
    ReportStage,
    TrainStage,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def new_items_run(agent_log_files, make_agent_config, tmp_path_factory):
    cfg = make_agent_config(agent_log_files, modes=["global"])
    cfg = cfg.model_copy(
        update={
            "split": cfg.split.model_copy(update={"new_items": 0.25}),
            "evaluate": cfg.evaluate.model_copy(
                update={
                    "agents": ["global-lora"],
                    "agent_pairs_per_user": 0,
                    "taste": False,
                    "free_generation_pairs": 0,
                    "without_rationales": False,
                }
            ),
        }
    )
    workdir = tmp_path_factory.mktemp("new-items")
    stages = (IngestStage, ProfileStage, PersonasStage, TrainStage, EvaluateStage, ReportStage)
    run_pipeline(workdir, cfg, stages=stages)
    return workdir


def test_withheld_items_reach_no_training_data(new_items_run):
    data = new_items_run / "data"
    summary = json.loads((data / "manifest.json").read_text())["summary"]
    items = pd.read_parquet(data / "items.parquet")
    inter = pd.read_parquet(data / "interactions.parquet")
    others = pd.read_parquet(data / "others.parquet")
    unseen = set(items.loc[items.train_count == 0, "item_id"])
    assert len(unseen) >= summary["new_items"] > 0
    trained_on = pd.concat([inter[inter.split == "train"], others])
    assert not trained_on.item_id.isin(unseen).any()
    test = inter[inter.split == "test"]
    # (items that only the test part rated are unseen as well)
    assert test.item_id.isin(unseen).sum() >= summary["new_item_test_ratings"] > 0
    # the agents' own training examples never show them either
    examples = pd.read_parquet(new_items_run / "adapters" / "examples.parquet")
    assert not examples[examples.task == "rate"].item_id.isin(unseen).any()


def test_every_model_is_measured_on_the_new_items(new_items_run):
    report = json.loads((new_items_run / "eval" / "new_items.json").read_text())
    items = pd.read_parquet(new_items_run / "data" / "items.parquet")
    preds = pd.read_parquet(new_items_run / "eval" / "predictions.parquet")
    unseen = set(items.loc[items.train_count == 0, "item_id"])
    on = preds[preds.item_id.isin(unseen)]
    models = report["models"]
    assert {"global_mean", "user_genre", "biased_mf", "prior", "global-lora"} <= set(models)
    for name, entry in models.items():
        mine = on[on.model == name]
        assert entry["n"] == len(mine)
        assert entry["rmse"] == pytest.approx(
            ((mine.rating - mine.predicted) ** 2).mean() ** 0.5, abs=1e-6
        )
    best = report["best_baseline"]
    assert models[best]["kind"] == "baseline"
    assert models["global-lora"]["vs_best_baseline"]["baseline"] == best
    assert models["global-lora"]["vs_prior_alone"]["pairs"] == models["global-lora"]["n"]
    # collaborative models know nothing of these items: MF predicts as the bias model
    pd.testing.assert_series_equal(
        on[on.model == "biased_mf"].predicted.reset_index(drop=True),
        on[on.model == "user_item_bias"].predicted.reset_index(drop=True),
        check_names=False,
    )
    summary = (new_items_run / "report" / "summary.md").read_text()
    assert f"## New items ({report['items']} items" in summary and "| user_genre |" in summary
