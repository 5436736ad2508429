"""The "gradient" selection: EL2N scores against the plain forward pass, the warm-up
run leaves the model as it was, and the selection follows the scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from personasim import UserAgent
from personasim.agents.answers import answer_distribution, with_prior
from personasim.agents.examples import select_examples
from personasim.agents.lm import AgentLM
from personasim.agents.prior import prior_logits
from personasim.agents.selection import el2n_scores, gradient_scores

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def agent(trained_run):
    return UserAgent.from_workdir(trained_run, mode="persona", dtype="float32")


@pytest.fixture(scope="module")
def rate(trained_run):
    examples = pd.read_parquet(trained_run / "adapters" / "examples.parquet")
    return examples[examples.task == "rate"]


def test_el2n_is_the_squared_error_of_the_plain_forward_pass(agent, rate):
    user = sorted(agent.personas)[0]
    mine = rate[rate.user_id == user].head(4)
    adapter = agent.personas[user]
    cfg = agent.config.agents
    scores = el2n_scores(agent.lm, mine, agent.profiles, cfg, adapter)
    lm, model = agent.lm, agent.lm.model
    model.set_adapter(adapter)
    prefix = lm.encode_prefix(agent.profiles[user])
    offsets = prior_logits(torch.tensor(mine.prior.to_numpy("float32")), cfg.prior_sigma)
    expected = []
    with torch.inference_mode():
        for k, (question, target) in enumerate(zip(mine.question, mine.target, strict=True)):
            ids = torch.tensor([list(prefix + lm.encode_suffix(question))])
            lp = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), dim=-1)[None]
            probs, _ = answer_distribution(
                with_prior(lp, lm.digit_ids, offsets[k : k + 1]), [[i] for i in lm.digit_ids]
            )
            onehot = torch.zeros(5)
            onehot[int(target) - 1] = 1.0
            expected.append(float(((probs[0] - onehot) ** 2).sum()))
    np.testing.assert_allclose(scores, expected, atol=1e-4)
    assert (scores >= 0).all() and (scores <= 2).all()


def test_warm_up_scores_every_rating_example_and_leaves_the_model_as_it_was(agent, rate):
    examples = rate.head(24)
    cfg = agent.config.agents.model_copy(
        update={"max_examples_per_adapter": 8, "dtype": "float32", "selection": "gradient"}
    )
    lm = AgentLM.load(cfg)  # the base model, as the train stage has it
    base = lm.model
    scores = gradient_scores(lm, examples, agent.profiles, cfg, seed=0)
    assert lm.model is base and not hasattr(base, "peft_config")
    assert list(scores.index) == list(examples.index) and (scores > 0).all()
    # the same seed, the same scores
    again = gradient_scores(lm, examples, agent.profiles, cfg, seed=0)
    np.testing.assert_allclose(again, scores, atol=1e-5)
    # the selection draws in proportion to the scores
    constructed = pd.Series(np.arange(len(examples)) % 2, index=examples.index, dtype=float)
    chosen = select_examples(
        examples, cfg, errors=None, rng=np.random.default_rng(0), gradients=constructed
    )
    assert len(chosen) == 8 and constructed[chosen.index].sum() >= 7
    # a pool of twice the budget: only those are scored, and the selection keeps to them
    pooled = cfg.model_copy(update={"selection_pool": 2})
    scored = gradient_scores(lm, examples, agent.profiles, pooled, seed=0)
    assert len(scored) == 16 and set(scored.index) < set(examples.index)
    # the same warm-up: a pooled example scores as it does when every one is scored
    np.testing.assert_allclose(scored, scores[scored.index], atol=1e-5)
    chosen = select_examples(
        examples, pooled, errors=None, rng=np.random.default_rng(0), gradients=scored
    )
    assert len(chosen) == 8 and set(chosen.index) <= set(scored.index)
