"""The LM weight: 0 is the prior alone, 1 the adapter as trained; the fit finds the
weight the data were made with; fitting it trains no adapter again and the agents
answer with it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from personasim import UserAgent, run_pipeline
from personasim.agents.answers import answer_distribution, with_prior
from personasim.agents.calibration import fit_lm_weight, weighted_digit_probs
from personasim.pipeline import IngestStage, PersonasStage, ProfileStage, TrainStage
from personasim.workspace import Workspace

STARS = np.arange(1, 6, dtype="float64")


def _digits_and_offsets(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lm_digits = np.log(rng.dirichlet(np.ones(5), size=n))
    offsets = rng.normal(0.0, 1.5, size=(n, 5))
    return lm_digits, offsets


def test_weight_zero_is_the_prior_alone_and_one_the_adapter_as_trained():
    lm_digits, offsets = _digits_and_offsets(50)
    prior_only = np.exp(offsets) / np.exp(offsets).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(weighted_digit_probs(lm_digits, offsets, 0.0), prior_only)
    # w = 1 is what training optimises: the full-vocabulary path of the model (the
    # digits' log-probabilities among 3 other tokens, the prior added, renormalised)
    rest = np.log(np.full((50, 3), 0.2))
    full = torch.tensor(np.concatenate([lm_digits + np.log(0.4), rest], axis=1))
    full = full - torch.logsumexp(full, dim=1, keepdim=True)
    adjusted = with_prior(full, list(range(5)), torch.tensor(offsets))
    reference, _ = answer_distribution(adjusted, [[d] for d in range(5)])
    np.testing.assert_allclose(
        weighted_digit_probs(lm_digits, offsets, 1.0), reference.numpy(), atol=1e-12
    )


@pytest.mark.parametrize("true_weight", [0.0, 0.4, 1.3])
def test_the_fit_finds_the_weight_the_ratings_were_made_with(true_weight):
    lm_digits, offsets = _digits_and_offsets(400, seed=3)
    truth = weighted_digit_probs(lm_digits, offsets, true_weight) @ STARS
    fit = fit_lm_weight(lm_digits, offsets, truth)
    assert fit["lm_weight"] == pytest.approx(true_weight, abs=0.01)
    assert fit["rmse"] == pytest.approx(0.0, abs=1e-3)
    assert fit["examples"] == 400
    if true_weight != 1.0:
        assert fit["rmse_as_trained"] > 0.05
    if true_weight != 0.0:
        assert fit["rmse_prior_alone"] > 0.05


def test_an_uninformative_model_is_not_trusted():
    """Digits that say nothing about the ratings get (nearly) no weight."""
    lm_digits, offsets = _digits_and_offsets(2000, seed=5)
    truth = weighted_digit_probs(np.zeros_like(lm_digits), offsets, 0.0) @ STARS
    truth = truth + np.random.default_rng(6).normal(0.0, 0.5, size=len(truth))
    fit = fit_lm_weight(lm_digits, offsets, truth)
    assert fit["lm_weight"] < 0.15
    assert fit["rmse"] <= min(fit["rmse_prior_alone"], fit["rmse_as_trained"])


AGENT_STAGES = (IngestStage, ProfileStage, PersonasStage, TrainStage)


@pytest.mark.slow
def test_the_weight_is_fitted_on_held_out_ratings_without_training_again(
    agent_log_files, make_agent_config, tmp_path, monkeypatch
):
    import personasim.pipeline.train_adapters as train_module

    fit_cfg = make_agent_config(agent_log_files, modes=["global"], lm_weight="fit")
    run_pipeline(tmp_path, fit_cfg, stages=AGENT_STAGES)
    ws = Workspace(tmp_path)
    trained = ws.read_manifest("adapters")["summary"]["adapters"]["global"]
    fit = trained["lm_weight_fit"]
    # the cap (12 rating examples) leaves most train ratings out: 500 wanted, all there
    rate = ws.read_manifest("adapters")["summary"]["examples"]["rate"]
    assert fit["examples"] == min(500, rate - 12) > 0
    assert trained["lm_weight"] == fit["lm_weight"]
    assert 0.0 <= fit["lm_weight"] <= 2.0
    assert fit["rmse"] <= min(fit["rmse_prior_alone"], fit["rmse_as_trained"]) + 1e-9

    # the watch weight too, on held-out watch examples
    watch_fit = trained["watch_lm_weight_fit"]
    assert trained["watch_lm_weight"] == watch_fit["watch_lm_weight"]
    assert 0.0 <= watch_fit["watch_lm_weight"] <= 2.0 and watch_fit["examples"] > 0
    best = min(watch_fit["log_loss_prior_alone"], watch_fit["log_loss_as_trained"])
    assert watch_fit["log_loss"] <= best + 1e-9

    # the agent answers with the fitted weights; at weight 0 it is the prior alone
    agent = UserAgent.from_workdir(tmp_path, mode="global", dtype="float32")
    assert agent.lm_weights == {"global": fit["lm_weight"]}
    assert agent.watch_lm_weights == {"global": watch_fit["watch_lm_weight"]}
    user = sorted(agent.profiles)[0]
    items = list(agent.items)[:6]
    agent.lm_weights["global"] = 0.0
    np.testing.assert_allclose(agent.rate(user, items), agent.prior.predict(user, items), atol=2e-3)

    # back to the weight as trained: the stage reruns, no adapter trains again
    calls = []
    real = train_module.train_adapter
    monkeypatch.setattr(
        train_module, "train_adapter", lambda *a, **k: (calls.append(1), real(*a, **k))[1]
    )
    as_trained = make_agent_config(agent_log_files, modes=["global"], lm_weight=1.0)
    results = run_pipeline(tmp_path, as_trained, stages=AGENT_STAGES)
    assert results[-1].ran and calls == []
    assert ws.read_manifest("adapters")["summary"]["adapters"]["global"]["lm_weight"] == 1.0


@pytest.mark.slow
def test_without_a_cap_the_fit_holds_ratings_out_of_training(
    agent_log_files, make_agent_config, tmp_path
):
    cfg = make_agent_config(
        agent_log_files, modes=["global"], lm_weight="fit", max_examples_per_adapter=0
    )
    run_pipeline(tmp_path, cfg, stages=AGENT_STAGES)
    summary = Workspace(tmp_path).read_manifest("adapters")["summary"]
    trained = summary["adapters"]["global"]
    held = trained["lm_weight_fit"]["examples"]
    assert held == summary["examples"]["rate"] // 5
    held_watch = trained["watch_lm_weight_fit"]["examples"]
    assert held_watch == summary["examples"]["watch"] // 5
    examples = summary["examples"]["rate"] + summary["examples"]["watch"]
    assert trained["examples"] == examples - held - held_watch
