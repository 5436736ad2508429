"""Comparing run folders: the paired difference on shared test pairs, model naming,
and the errors of a comparison that cannot be made."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from personasim.errors import ConfigError, StageError
from personasim.evaluation.compare import RunModel, compare_runs, parse_run_model


def _truth(users: int = 30, items: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{i}") for u in range(users) for i in range(items)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    frame["rating"] = rng.integers(1, 6, len(frame)).astype(float)
    return frame


def _run(folder, truth, noise: dict[str, float], seed: int = 1, drop: int = 0):
    """A run folder whose evaluation predicts the truth plus noise of each model's size."""
    rng = np.random.default_rng(seed)
    frames = []
    for model, scale in noise.items():
        f = truth.iloc[drop:].copy()
        f["predicted"] = f["rating"] + rng.normal(0, scale, len(f))
        f["model"] = model
        f["valid"] = True
        frames.append(f)
    (folder / "eval").mkdir(parents=True)
    pd.concat(frames).to_parquet(folder / "eval" / "predictions.parquet")
    return folder


def _plain_rmse(frame, keys):
    mine = frame.set_index(["user_id", "item_id"]).loc[keys]
    return float(np.sqrt(((mine["predicted"] - mine["rating"]) ** 2).mean()))


def test_difference_is_on_the_pairs_both_rated(tmp_path):
    truth = _truth()
    a = _run(tmp_path / "a", truth, {"global-lora": 1.0, "prior": 0.9})
    b = _run(tmp_path / "b", truth, {"global-lora": 0.5}, seed=2, drop=24)  # 2 users fewer
    (row,) = compare_runs(RunModel(a), [RunModel(b)], rounds=500)
    shared = list(zip(truth.user_id[24:], truth.item_id[24:], strict=True))
    ref = pd.read_parquet(a / "eval" / "predictions.parquet")
    cand = pd.read_parquet(b / "eval" / "predictions.parquet")
    expected_a = _plain_rmse(ref[ref.model == "global-lora"], shared)
    expected_b = _plain_rmse(cand, shared)
    assert row["reference"] == f"{a}:global-lora" and row["candidate"] == f"{b}:global-lora"
    assert row["pairs"] == len(shared) and row["users"] == 28
    assert row["rmse_reference"] == pytest.approx(expected_a, abs=1e-6)
    assert row["rmse_candidate"] == pytest.approx(expected_b, abs=1e-6)
    assert row["difference"] == pytest.approx(expected_b - expected_a, abs=1e-6)
    low, high = row["ci"]
    assert low <= row["difference"] <= high < 0  # half the noise: clearly better


def test_named_models_compare_across_names_and_runs(tmp_path):
    truth = _truth()
    a = _run(tmp_path / "a", truth, {"global-lora": 1.0, "prior": 0.9})
    b = _run(tmp_path / "b", truth, {"global-lora": 0.9, "prior": 0.9}, seed=3)
    rows = compare_runs(parse_run_model(f"{a}:prior"), [parse_run_model(f"{b}:global-lora")])
    assert [(r["reference"], r["candidate"]) for r in rows] == [(f"{a}:prior", f"{b}:global-lora")]
    keys = list(zip(truth.user_id, truth.item_id, strict=True))
    ref = pd.read_parquet(a / "eval" / "predictions.parquet")
    cand = pd.read_parquet(b / "eval" / "predictions.parquet")
    expected = _plain_rmse(cand[cand.model == "global-lora"], keys) - _plain_rmse(
        ref[ref.model == "prior"], keys
    )
    assert rows[0]["difference"] == pytest.approx(expected, abs=1e-6)
    # without a model: every model both evaluated, each with its namesake
    rows = compare_runs(RunModel(a), [RunModel(b)], rounds=200)
    assert [r["candidate"] for r in rows] == [f"{b}:global-lora", f"{b}:prior"]
    low, high = rows[1]["ci"]
    assert low < 0 < high  # same noise: no verdict


def test_invalid_answers_are_left_out_as_the_evaluation_leaves_them(tmp_path):
    truth = _truth()
    a = _run(tmp_path / "a", truth, {"global-lora": 1.0})
    b = _run(tmp_path / "b", truth, {"global-lora": 1.0}, seed=2)
    path = b / "eval" / "predictions.parquet"
    frame = pd.read_parquet(path)
    frame.loc[:11, "valid"] = False  # the first user's answers hold no rating
    frame.loc[:11, "predicted"] = 5.0
    frame.to_parquet(path)
    (row,) = compare_runs(RunModel(a), [RunModel(b)], rounds=200)
    assert row["pairs"] == len(truth) - 12 and row["users"] == 29


def test_comparisons_that_cannot_be_made_say_why(tmp_path):
    truth = _truth()
    a = _run(tmp_path / "a", truth, {"global-lora": 1.0})
    b = _run(tmp_path / "b", truth, {"persona-lora": 1.0})
    with pytest.raises(StageError, match="no eval/predictions.parquet"):
        compare_runs(RunModel(a), [RunModel(tmp_path / "missing")])
    with pytest.raises(ConfigError, match=r"no model 'zero-shot' \(it evaluated: global-lora\)"):
        compare_runs(RunModel(a, "zero-shot"), [RunModel(b)])
    with pytest.raises(ConfigError, match="no model of the same name"):
        compare_runs(RunModel(a), [RunModel(b)])
    with pytest.raises(ConfigError, match="name the reference's model too"):
        compare_runs(RunModel(a), [RunModel(b, "persona-lora")])
    _run(tmp_path / "d", truth.assign(user_id=lambda f: "x" + f.user_id), {"global-lora": 1.0})
    with pytest.raises(ConfigError, match="no test pair in common"):
        compare_runs(RunModel(a), [RunModel(tmp_path / "d")])


def test_spec_reads_a_folder_with_a_colon_whole(tmp_path):
    odd = tmp_path / "run:1"
    odd.mkdir()
    assert parse_run_model(str(odd)) == RunModel(odd)
    assert parse_run_model(f"{odd}:prior") == RunModel(odd, "prior")
    assert parse_run_model("runs/a") == RunModel(Path("runs/a"))


def test_cli_prints_the_rows(tmp_path, cli):
    truth = _truth()
    a = _run(tmp_path / "a", truth, {"global-lora": 1.0})
    b = _run(tmp_path / "b", truth, {"global-lora": 0.3}, seed=2)
    result = cli("compare", a, b, "--json", "--rounds", "200")
    assert result.code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["difference"] < 0 and row["ci"][1] < 0
    table = cli("compare", a, b, "--rounds", "200")
    assert table.code == 0 and "better" in table.output
    assert cli("compare", a).code == 2
    missing = cli("compare", a, tmp_path / "nowhere")
    assert missing.code == 3 and "run `personasim evaluate` there" in missing.output
