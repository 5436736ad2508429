"""The agents answer on the log's own scale: half stars (10 levels) and 1-10, from
ingest to the evaluation's predictions and the simulated sessions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from personasim import UserAgent, run_pipeline
from personasim.config import SimulateConfig, load_config
from personasim.pipeline import EvaluateStage, TrainStage
from personasim.simulation.sessions import pages_of, run_sessions

STAGES = (*TrainStage.upstream, TrainStage, EvaluateStage)

SCALES = {
    # 1-5 stars moved onto the scale, every level used
    "half stars": ((0.5, 5.0), 0.5, lambda r, odd: r - 0.5 * odd),
    "one to ten": ((1.0, 10.0), 1.0, lambda r, odd: 2 * r - odd),
}


@pytest.fixture(scope="module", params=list(SCALES))
def scaled_run(request, small_log, make_agent_config, tmp_path_factory):
    """A run (tiny model, one global adapter, evaluated) on a log of another scale."""
    bounds, step, move = SCALES[request.param]
    folder = tmp_path_factory.mktemp("scaled")
    ratings, items, users = small_log.write_csv(folder)
    log = pd.read_csv(ratings)
    log["rating"] = move(log["rating"], np.arange(len(log)) % 2)
    log.to_csv(ratings, index=False)
    settings = json.loads(
        make_agent_config((ratings, items, users), modes=["global"]).model_dump_json()
    )
    settings["data"].update({"rating_scale": list(bounds), "rating_step": step})
    settings["evaluate"].update({"agents": ["global-lora"], "taste": False})
    config = load_config([("test", settings)])
    run = folder / "run"
    run_pipeline(run, config, stages=STAGES)
    return run, config


def test_the_training_targets_are_the_logs_ratings(scaled_run):
    run, config = scaled_run
    scale = config.data.scale
    examples = pd.read_parquet(run / "adapters" / "examples.parquet")
    rated = examples.loc[examples["task"] == "rate", "target"]
    assert not scale.off_level(rated).any()
    assert rated.nunique() > 5  # not rounded onto five stars
    assert examples["question"][examples["task"] == "rate"].str.endswith(scale.question()).all()


def test_the_agents_answer_with_one_digit_per_rating_of_the_scale(scaled_run):
    run, config = scaled_run
    scale = config.data.scale
    agent = UserAgent.from_workdir(run, mode="global")
    assert agent.rating_scale == scale
    assert len(agent.lm.digit_ids) == scale.size == 10
    assert agent.lm.digit_ids == [agent.lm.tokenizer.convert_tokens_to_ids(d) for d in "0123456789"]
    user = next(iter(agent.profiles))
    items = list(agent.items)[:6]
    answer = agent.rating_distributions([(user, items)])[0]
    assert answer["probs"].shape == (6, 10)
    np.testing.assert_allclose(answer["probs"].sum(axis=1), 1.0, atol=1e-6)  # float32
    np.testing.assert_allclose(answer["expected"], answer["probs"] @ scale.levels)
    assert ((answer["expected"] >= scale.low) & (answer["expected"] <= scale.high)).all()
    assert set(answer["argmax"]) <= set(scale.levels)

    pages = {user: pages_of(items, set(), 3, 2)}
    log = run_sessions(
        agent, pages, {user: 2}, SimulateConfig(), seed=0, label="scale", scale=scale
    )
    rated = log.events.dropna(subset=["rating"])
    assert not scale.off_level(rated["rating"]).any()
    assert (rated["liked"] == (rated["rating"] >= scale.high_from)).all()


def test_the_evaluation_and_the_profiles_speak_the_scale(scaled_run):
    run, config = scaled_run
    scale = config.data.scale
    predictions = pd.read_parquet(run / "eval" / "predictions.parquet")
    agents = predictions[predictions["model"] == "global-lora"]
    assert len(agents) and agents["predicted"].between(scale.low, scale.high).all()
    assert not scale.off_level(agents["rating"]).any()  # the test ratings, on the levels
    profiles = pd.read_parquet(run / "profiles" / "profiles.parquet")
    assert profiles["profile_text"].str.contains(f"/{scale.high:g} on average").all()
