"""Agents whose LM weights are 0 answer from their priors alone: the same answers as the
language-model agents at weight 0, without the model; routed per adapter; and a run with
``agents.language_model = "off"`` trains no adapter and simulates without a model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import expit

from personasim import UserAgent, run_pipeline
from personasim.agents.answers import answer_distribution, with_watch_prior
from personasim.agents.calibration import fit_watch_lm_weight, weighted_watch_probs
from personasim.agents.prior import CFPrior
from personasim.agents.prior_agents import PriorAgents, RoutedAgents, Routing
from personasim.config import load_config
from personasim.pipeline import IngestStage, PersonasStage, ProfileStage, SimulateStage, TrainStage
from personasim.workspace import Workspace


def _margins_and_odds(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 2.0, n), rng.normal(0.0, 1.5, n)


def test_watch_weight_zero_is_the_prior_alone_and_one_the_adapter_as_trained():
    margin, odds = _margins_and_odds(40)
    np.testing.assert_allclose(weighted_watch_probs(margin, odds, 0.0), expit(odds))
    # w = 1 is the model's full-vocabulary answer with the prior added: two spellings
    # of yes, one of no, and the rest of the vocabulary
    yes_a, yes_b = np.log(0.3) + margin / 2, np.log(0.1) + margin / 2
    no = np.log(0.4) - margin / 2
    full = torch.tensor(np.stack([yes_a, yes_b, no, np.full(40, np.log(0.2))], axis=1))
    full = full - torch.logsumexp(full, dim=1, keepdim=True)
    lm_margin = torch.logsumexp(full[:, :2], dim=1) - full[:, 2]
    adjusted = with_watch_prior(full, [0, 1], [2], torch.tensor(odds))
    reference, _ = answer_distribution(adjusted, [[0, 1], [2]])
    np.testing.assert_allclose(
        weighted_watch_probs(lm_margin.numpy(), odds, 1.0), reference[:, 0].numpy(), atol=1e-12
    )


@pytest.mark.parametrize("true_weight", [0.0, 0.5, 1.4])
def test_the_watch_fit_finds_the_weight_the_decisions_were_made_with(true_weight):
    margin, odds = _margins_and_odds(20000, seed=3)
    p = weighted_watch_probs(margin, odds, true_weight)
    truth = np.random.default_rng(4).random(len(p)) < p
    fit = fit_watch_lm_weight(margin, odds, truth)
    assert fit["watch_lm_weight"] == pytest.approx(true_weight, abs=0.08)
    assert fit["log_loss"] <= min(fit["log_loss_prior_alone"], fit["log_loss_as_trained"]) + 1e-9


def _requests(agent: UserAgent, users: int = 4, items: int = 7) -> list[tuple[str, list[str]]]:
    catalogue = sorted(agent.items)
    return [
        (user, catalogue[k * 3 : k * 3 + items])
        for k, user in enumerate(sorted(agent.profiles)[:users])
    ]


@pytest.mark.slow
def test_prior_agents_answer_as_the_model_agents_at_weight_zero(trained_run):
    model = UserAgent.from_workdir(trained_run, mode="persona", dtype="float32")
    priors = PriorAgents.from_workdir(trained_run)
    requests = _requests(model)
    # as trained (weight 1), the model's answers are not the priors'
    as_trained = model.watch_probabilities(requests)
    alone = priors.watch_probabilities(requests)
    assert max(np.abs(a - b).max() for a, b in zip(as_trained, alone, strict=True)) > 1e-3

    model.lm_weights = dict.fromkeys(model.lm_weights, 0.0)
    model.watch_lm_weights = dict.fromkeys(model.lm_weights, 0.0)
    for got, want in zip(
        priors.watch_probabilities(requests), model.watch_probabilities(requests), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    ratings = priors.rating_distributions(requests)
    for got, want in zip(ratings, model.rating_distributions(requests), strict=True):
        np.testing.assert_allclose(got["probs"], want["probs"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(got["expected"], want["expected"], rtol=0, atol=1e-9)
        np.testing.assert_array_equal(got["argmax"], want["argmax"])
    # a session's watches move both alike (the stacked prior reads them; item-kNN here
    # does not, and both still agree)
    user, items = requests[0]
    for agents in (model, priors):
        agents.remember(user, items[:2])
    np.testing.assert_allclose(
        priors.watch_probabilities(requests)[0], model.watch_probabilities(requests)[0], atol=1e-9
    )


@pytest.mark.slow
def test_routing_sends_only_the_adapters_that_need_the_model_to_it(trained_run):
    model = UserAgent.from_workdir(trained_run, mode="persona", dtype="float32")
    personas = sorted(set(model.personas.values()))
    zero, kept = personas[0], personas[1]
    model.lm_weights = {zero: 0.0, kept: 1.0}
    model.watch_lm_weights = {zero: 0.0, kept: 0.7}
    loads, asked = [], []

    class Spy:
        """The model's agents, recording the items each question asks them."""

        def __getattr__(self, name):
            return getattr(model, name)

        def __setattr__(self, name, value):
            setattr(model, name, value)

        def watch_probabilities(self, requests):
            asked.extend(("watch", u, len(items)) for u, items in requests)
            return model.watch_probabilities(requests)

        def rating_distributions(self, requests):
            asked.extend(("rate", u, len(items)) for u, items in requests)
            return model.rating_distributions(requests)

    def load():
        loads.append(1)
        return Spy()

    routing = Routing(model.personas, "persona", model.lm_weights, model.watch_lm_weights, "auto")
    routed = RoutedAgents(PriorAgents.from_workdir(trained_run), routing, load)
    requests = _requests(model, users=8)
    by_model = [model.personas[u] == kept for u, _ in requests]
    assert any(by_model) and not all(by_model)
    watch = routed.watch_probabilities(requests)
    for got, want in zip(watch, model.watch_probabilities(requests), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-9)
    ratings = routed.rating_distributions(requests)
    for got, want in zip(ratings, model.rating_distributions(requests), strict=True):
        np.testing.assert_allclose(got["probs"], want["probs"], atol=1e-9)
    # the model was asked both questions of the kept persona's users, and nothing else
    kept_users = [(u, len(items)) for (u, items), m in zip(requests, by_model, strict=True) if m]
    assert asked == [("watch", *k) for k in kept_users] + [("rate", *k) for k in kept_users]
    assert loads == [1]
    # the routing counts those decisions (every item watched: a rating each)
    on_model = sum(n for _, n in kept_users)
    total = sum(len(items) for _, items in requests)
    shown = pd.DataFrame({"user_id": [u for u, items in requests for _ in items], "watched": True})
    assert routing.decisions(shown, rates=True) == {
        "prior": 2 * (total - on_model),
        "language_model": 2 * on_model,
    }

    # only priors asked: the model is never loaded
    off = Routing(model.personas, "persona", {}, {}, "off")
    never = RoutedAgents(PriorAgents.from_workdir(trained_run), off, None)
    never.watch_probabilities(requests)
    assert not never.uses_model
    assert off.decisions(shown, rates=True)["language_model"] == 0


AGENT_STAGES = (IngestStage, ProfileStage, PersonasStage, TrainStage)


@pytest.mark.slow
def test_a_run_without_the_language_model_trains_no_adapter_and_simulates_on_its_priors(
    agent_log_files, make_agent_config, tmp_path, monkeypatch
):
    base = make_agent_config(agent_log_files, language_model="off")
    settings = json.loads(base.model_dump_json())
    settings["simulate"] = {
        "users": 5,
        "max_pages": 2,
        "recommenders": ["random", "popular"],
        "feedback_rounds": 0,  # the decisions of the first round's sessions alone
    }
    cfg = load_config([("test", settings)])
    run_pipeline(tmp_path, cfg, stages=AGENT_STAGES)
    ws = Workspace(tmp_path)
    summary = ws.read_manifest("adapters")["summary"]
    assert summary["adapters"] == {} and "off" in summary["language_model"]
    assert CFPrior.saved_in(tmp_path / "adapters")
    assert not any(
        p.name == "adapter_model.safetensors" for p in (tmp_path / "adapters").rglob("*")
    )

    def no_model(*args, **kwargs):
        raise AssertionError("the language model was loaded")

    monkeypatch.setattr(UserAgent, "from_workdir", no_model)
    from personasim.pipeline import run_stage

    run_stage(SimulateStage, ws, cfg)
    metrics = json.loads((tmp_path / "simulate" / "metrics.json").read_text())
    events = ws.stage_dir("simulate") / "events.parquet"
    import pandas as pd

    shown = pd.read_parquet(events)
    assert metrics["decisions"] == {
        "language_model": 0,
        "prior": len(shown) + int(shown["watched"].sum()),
    }
    assert metrics["settings"]["language_model"] == "off"
    on = Routing.from_workdir(tmp_path, "persona", "on").decisions(shown, rates=True)
    assert on == {"language_model": len(shown) + int(shown["watched"].sum()), "prior": 0}


@pytest.mark.slow
def test_sessions_on_the_priors_are_the_sessions_of_the_model_at_weight_zero(
    trained_run, agent_log_files, make_agent_config, copy_run, monkeypatch
):
    """Adapters fitted to weight 0: the simulation with the model ("on") and without it
    ("auto", which then never loads it) gives the same sessions, draw for draw."""
    from personasim.pipeline import run_stage

    workdir = copy_run(trained_run)
    manifest_path = workdir / "adapters" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for adapter in manifest["summary"]["adapters"].values():
        adapter["lm_weight"] = adapter["watch_lm_weight"] = 0.0
    manifest_path.write_text(json.dumps(manifest))
    events = {}
    for language_model in ("on", "auto"):
        settings = json.loads(
            make_agent_config(agent_log_files, language_model=language_model).model_dump_json()
        )
        settings["simulate"] = {
            "users": 8,
            "max_pages": 3,
            "recommenders": ["popular", "itemknn"],
            "feedback_rounds": 1,
            "ladder": [],
            "leave_family_out": False,
        }
        if language_model == "auto":
            monkeypatch.setattr(
                UserAgent, "from_workdir", lambda *a, **k: pytest.fail("model loaded")
            )
        ws = Workspace(workdir)
        # each run simulates its sessions (none restored from the other's checkpoints)
        shutil.rmtree(workdir / ".checkpoints" / "simulate", ignore_errors=True)
        run_stage(SimulateStage, ws, load_config([("test", settings)]), force=True)
        metrics = json.loads((workdir / "simulate" / "metrics.json").read_text())
        assert metrics["decisions"]["prior" if language_model == "auto" else "language_model"] > 0
        events[language_model] = pd.read_parquet(workdir / "simulate" / "events.parquet")
        rounds = [{k: v for k, v in r.items() if k != "seconds"} for r in metrics["feedback"]]
        events[language_model]["feedback"] = json.dumps(rounds)
    pd.testing.assert_frame_equal(events["on"], events["auto"], check_exact=False, atol=1e-9)
