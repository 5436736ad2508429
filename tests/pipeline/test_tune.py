"""Tuning on held-out train ratings: the test split never enters a tuning run folder,
every point is measured, the best is the lowest validation RMSE, and it resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from personasim.data.splitting import split_temporal, validation_split
from personasim.errors import ConfigError
from personasim.pipeline.tune import parse_grid, tune


def test_grid_values_are_toml_literals():
    grid = parse_grid(["agents.lora_rank=8,16", "agents.learning_rate=5e-4", "agents.loss=mse"])
    assert grid == {
        "agents.lora_rank": [8, 16],
        "agents.learning_rate": [5e-4],
        "agents.loss": ["mse"],
    }
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_grid(["agents.lora_rank"])


def test_validation_split_holds_out_the_last_train_ratings_and_drops_the_test(small_log):
    users = np.array(sorted(small_log.ratings.user_id.unique()))[:10]
    split = split_temporal(small_log.ratings, users, train_fraction=0.6, include_others=True)
    train_before = split.train.copy()
    validation_split(split, 0.25)
    assert set(map(tuple, split.interactions[["user_id", "item_id"]].to_numpy())) == set(
        map(tuple, train_before[["user_id", "item_id"]].to_numpy())
    )  # the real test ratings are gone
    for _, part in split.interactions.groupby("user_id"):
        held = part[part.split == "test"]
        kept = part[part.split == "train"]
        n = len(part)
        assert len(held) == max(1, int(np.floor(0.25 * n)))
        assert held.timestamp.min() >= kept.timestamp.max()  # later in time


@pytest.mark.slow
def test_tuning_ranks_points_on_held_out_train_ratings(
    agent_log_files, make_agent_config, tmp_path
):
    cfg = make_agent_config(agent_log_files, modes=["global"])
    cfg = cfg.model_copy(
        update={
            "evaluate": cfg.evaluate.model_copy(
                update={
                    "agents": ["global-lora"],
                    "taste": False,
                    "free_generation_pairs": 0,
                    "without_rationales": False,
                    "agent_pairs_per_user": 0,
                }
            )
        }
    )
    grid = {"agents.learning_rate": [1e-4, 3e-3]}
    result = tune(tmp_path, cfg, grid, validation_share=0.2)
    assert [p["point"] for p in result["points"]] == [
        {"agents.learning_rate": 1e-4},
        {"agents.learning_rate": 3e-3},
    ]
    rmses = [p["agents"]["global-lora"]["rmse"] for p in result["points"]]
    assert result["best"] == result["points"][int(np.argmin(rmses))]["point"]
    assert rmses[0] != rmses[1]  # the learning rate reached the adapters
    # a tuning run folder holds exactly the users' real train ratings
    log = pd.read_csv(agent_log_files[0], dtype={"user_id": str, "item_id": str})
    for point in result["points"]:
        inter = pd.read_parquet(f"{point['folder']}/data/interactions.parquet")
        users = np.array(sorted(inter.user_id.unique()))
        real = split_temporal(log, users, train_fraction=0.6, include_others=False)
        pairs = set(zip(inter.user_id, inter.item_id, strict=True))
        assert pairs == set(zip(real.train.user_id, real.train.item_id, strict=True))
        manifest = json.loads(Path(point["folder"], "data", "manifest.json").read_text())
        assert manifest["summary"]["validation_share"] == 0.2
    saved = json.loads((tmp_path / "tune" / "results.json").read_text())
    assert saved["best"] == result["best"]
    # a second call finds every point finished and redoes nothing
    again = tune(tmp_path, cfg, grid, validation_share=0.2)
    assert again["points"] == result["points"]


def test_cli_refuses_a_malformed_grid_and_an_unknown_setting(cli, tmp_path):
    res = cli("tune", "--workdir", tmp_path, "--grid", "agents.lora_rank")
    assert res.code == 2 and "section.key=value1,value2" in res.output
    res = cli("tune", "--workdir", tmp_path, "--grid", "agents.no_such_setting=1")
    assert res.code == 2 and "no_such_setting" in res.output
    assert not (tmp_path / "tune" / "results.json").exists()
