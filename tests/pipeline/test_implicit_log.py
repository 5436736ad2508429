"""A log without ratings (views, clicks, plays): ML-100K with its rating column dropped,
ingested from a CSV, through every stage from the command line. The agents learn and
answer only the watch decision; every rating measure is skipped and said to be."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.serve.test_app import _app, _call
from tests.test_quick_start import BUDGET

from personasim import UserAgent
from personasim.agents.examples import build_examples
from personasim.agents.prior import CFPrior
from personasim.config import AgentConfig, DataConfig, load_config
from personasim.data.log import load_log
from personasim.data.sources import log_spec
from personasim.errors import ConfigError
from personasim.pipeline import IngestStage
from personasim.workspace import CONFIG_ENV, Workspace

STAGES = ["ingest", "profile", "personas", "train", "evaluate", "simulate", "report"]
RATING_WORDS = re.compile(r"\brat(ed|es|ing|ings)\b|/5\b|\bnan\b", re.I)


def write_click_log(folder: Path) -> tuple[Path, Path]:
    """ML-100K as a click log: ``user, item, time`` (no rating) and an items file."""
    log = load_log(log_spec(DataConfig()))
    clicks = log.interactions.rename(columns={"user_id": "user", "item_id": "item"})
    clicks = clicks[["user", "item", "timestamp"]].rename(columns={"timestamp": "time"})
    items = log.items[["item_id", "title", "year", "genres"]].rename(columns={"item_id": "item"})
    items["genres"] = items["genres"].map(lambda g: "|".join(g) if g is not None else "")
    clicks.to_csv(folder / "clicks.csv", index=False)
    items.to_csv(folder / "items.csv", index=False)
    return folder / "clicks.csv", folder / "items.csv"


@pytest.fixture(scope="module")
def click_run(tmp_path_factory, tiny_model):
    """The quick start's stages on the click log, from the command line, on the quick
    start test's small budget (rationales on: they are part of what is said)."""
    from personasim.cli import main

    folder = tmp_path_factory.mktemp("clicks")
    clicks, items = write_click_log(folder)
    budget = folder / "budget.toml"
    budget.write_text(
        BUDGET.format(model=tiny_model).replace("rationales = false", "rationales = true")
    )
    run = folder / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CONFIG_ENV, str(budget))
        for stage in STAGES:
            args = [stage, "--workdir", str(run)]
            if stage == "ingest":
                args += ["--path", str(clicks), "--items", str(items), "--rating-col", "none"]
                args += ["--user-col", "user", "--item-col", "item", "--timestamp-col", "time"]
                args += ["--users", "30", "--min-ratings", "100", "--max-ratings", "200"]
            try:
                main(args)
            except SystemExit as e:
                assert not e.code, f"`personasim {' '.join(args)}` exited with {e.code}"
    return run


def _summary(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "manifest.json").read_text())["summary"]


def test_the_click_log_ingests_without_ratings(click_run):
    interactions = pd.read_parquet(click_run / "data" / "interactions.parquet")
    assert len(interactions) and interactions["rating"].isna().all()
    assert set(interactions["split"]) == {"train", "test"}
    assert _summary(click_run, "data")["feedback"] == "implicit"


def test_the_profiles_and_rationales_say_what_was_watched_not_how_it_was_rated(click_run):
    profiles = pd.read_parquet(click_run / "profiles" / "profiles.parquet")
    rationales = pd.read_parquet(click_run / "profiles" / "rationales.parquet")
    assert len(rationales) and rationales["rationale"].str.startswith("Watched (").all()
    for text in [*profiles["profile_text"], *rationales["rationale"]]:
        assert not RATING_WORDS.search(text), text
    assert profiles["profile_text"].str.contains("movies watched").all()
    assert profiles["conformity_gap"].between(0, 1).all()  # popularity, not rating gaps
    cards = json.loads((click_run / "personas" / "cards.json").read_text())
    assert all(c["mean_rating"] is None for c in cards)
    assert not any(RATING_WORDS.search(c.get("description") or "") for c in cards)


def test_the_agents_learn_and_answer_only_the_watch_decision(click_run):
    examples = pd.read_parquet(click_run / "adapters" / "examples.parquet")
    assert set(examples["task"]) == {"watch"}
    assert set(examples["target"]) == {0, 1}
    assert not CFPrior.saved_in(click_run / "adapters")
    assert "no ratings" in _summary(click_run, "adapters")["not_trained"]
    agent = UserAgent.from_workdir(click_run, mode="global", dtype="float32")
    assert not agent.rates
    user = next(iter(agent.profiles))
    items = list(agent.items)[:5]
    p = agent.watch_probabilities([(user, items)])[0]
    assert p.shape == (5,) and np.all((p > 0) & (p < 1))
    for ask in (agent.rating_distributions, agent.page_scores, agent.answer_freely):
        with pytest.raises(ConfigError, match="no ratings"):
            ask([(user, items)])

    # the service answers watch questions and says why it answers no rating question
    app = _app(agent, click_run)
    watch, rate = _call(
        app,
        [
            ("POST", "/v1/watch", {"user_id": user, "item_ids": items}),
            ("POST", "/v1/rate", {"user_id": user, "item_ids": items}),
        ],
    )
    assert watch.status_code == 200
    np.testing.assert_allclose(watch.json()["probabilities"], p, atol=1e-4)
    assert rate.status_code == 422 and rate.json()["error"]["code"] == "no_ratings"


def test_the_evaluation_measures_taste_and_says_it_did_not_measure_ratings(click_run):
    assert json.loads((click_run / "eval" / "metrics.json").read_text()) == {}
    assert not (click_run / "eval" / "predictions.parquet").exists()
    summary = _summary(click_run, "eval")
    assert "no ratings" in summary["not_measured"]["ratings"]
    models = {m for kind in summary["taste"].values() for m in kind}
    assert {"global-lora", "persona-lora", "watch-prior", "popularity"} <= models
    assert not models & {"user_item_bias", "global_mean"}  # no rating baseline


def test_the_simulation_reports_watches_and_log_hits_not_likes(click_run):
    metrics = json.loads((click_run / "simulate" / "metrics.json").read_text())
    for row in metrics["recommenders"].values():
        assert {"watch_rate", "log_hit_ratio", "ndcg"} <= set(row)
        assert not {"likes", "like_rate", "mean_rating"} & set(row)
    assert metrics["agreement"]["headline"]["simulated"] == "watch_rate"
    assert metrics["per_user_agreement"]["simulated"] == "watch_rate"
    assert set(metrics["intervals"]["best"]) == {"watch_rate"}
    assert "no ratings" in metrics["not_measured"]["likes"]
    events = pd.read_parquet(click_run / "simulate" / "events.parquet")
    assert events["watched"].any() and events["rating"].isna().all()
    assert not events["liked"].any()


def test_the_report_says_what_was_not_measured_and_why(click_run):
    summary = (click_run / "report" / "summary.md").read_text()
    html = (click_run / "report" / "report.html").read_text()
    for text in (summary, html):
        assert "Not measured" in text and "the log has no ratings" in text
        assert "Rating fidelity" not in text
    assert "of the items shown watched" in summary  # the verdict is by watches
    assert "test interactions" in summary


def test_a_builtin_dataset_reads_as_clicks_and_the_settings_it_cannot_train_are_refused(
    tmp_path,
):
    config = DataConfig(columns={"rating": "none"})
    assert config.implicit and config.columns.rating == ""
    log = load_log(log_spec(config))
    assert len(log.interactions) == 100_000 and log.interactions["rating"].isna().all()

    settings = {"data": {"columns": {"rating": ""}}, "scale": {"tables": "duckdb"}}
    stage = IngestStage(Workspace(tmp_path / "run"), load_config([("test", settings)]))
    with pytest.raises(ConfigError, match="without ratings"):
        stage.build(tmp_path / "out")
    train = pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "rating": [np.nan], "timestamp": [0]})
    items = {"i": {"count": 1}}
    for agents, refused in (({"sampler": "hard"}, "sampler"), ({"watch_task": False}, "watch")):
        with pytest.raises(ConfigError, match=refused):
            build_examples(
                train, items, AgentConfig(**agents), oof_prior=None, prior=None, index=None, seed=0
            )
