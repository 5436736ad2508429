"""Packed scoring is exact; prior and answer distributions are right."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from personasim.agents.modeling import AgentLM, Pack, answer_distribution, with_prior
from personasim.agents.training import prior_logits
from personasim.config import AgentConfig


@pytest.fixture(scope="module")
def lm():
    return AgentLM.load(AgentConfig(device="cpu"))


def test_answer_distribution_and_prior():
    log_probs = torch.log_softmax(torch.randn(3, 50), dim=-1)
    groups = [[1], [2], [3, 4]]
    probs, mass = answer_distribution(log_probs, groups)
    p = log_probs.exp()
    expected_mass = p[:, 1] + p[:, 2] + p[:, 3] + p[:, 4]
    torch.testing.assert_close(mass, expected_mass)
    torch.testing.assert_close(probs[:, 2], (p[:, 3] + p[:, 4]) / expected_mass)
    offsets = prior_logits(torch.tensor([1.0, 3.0, 5.0]), sigma=0.5)
    assert offsets.argmax(dim=1).tolist() == [0, 2, 4]
    adjusted = with_prior(log_probs, [10, 11, 12, 13, 14], offsets)
    torch.testing.assert_close(adjusted.exp().sum(dim=1), torch.ones(3))
    assert with_prior(log_probs, [10], None) is log_probs


def test_prefix_plus_suffix_is_the_full_chat(lm):
    prefix = lm.encode_prefix("A viewer who loves comedies.")
    suffix = lm.encode_suffix("Movie: Heat (1995). How would you rate it, from 1 to 5?")
    full = lm.tokenizer.apply_chat_template(
        [
            {"role": "system", "content": "A viewer who loves comedies."},
            {"role": "user", "content": "Movie: Heat (1995). How would you rate it, from 1 to 5?"},
        ],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert list(prefix + suffix) == lm.tokenizer.encode(full, add_special_tokens=False)


PROFILES = ("Loves comedies, hates horror.", "A fan of old westerns and war movies; rates harshly.")
QUESTIONS = (
    "Movie: Toy Story (1995). How would you rate it?",
    "Movie: Scream (1996), Horror. How would you rate it?",
    "Movie: Unforgiven (1992), Western. Would you watch it? Answer yes or no.",
)


def _two_profiles_three_questions(lm):
    """Token ids of two profile prefixes and three question suffixes."""
    return [lm.encode_prefix(p) for p in PROFILES], tuple(lm.encode_suffix(q) for q in QUESTIONS)


@pytest.mark.slow
def test_packed_scores_equal_one_prompt_at_a_time(lm):
    """The block mask and positions make packing exact: each answer is scored as if its
    prompt ran alone, whatever else shares the pack or the batch."""
    prefixes, suffixes = _two_profiles_three_questions(lm)
    packed = lm.score([Pack(prefixes[0], suffixes), Pack(prefixes[1], suffixes[:2])])
    alone = torch.cat(
        [
            lm.score([Pack(p, (s,))])
            for p, ss in ((prefixes[0], suffixes), (prefixes[1], suffixes[:2]))
            for s in ss
        ]
    )
    assert packed.shape == alone.shape == (5, lm.model.config.vocab_size)
    np.testing.assert_allclose(packed.numpy(), alone.numpy(), atol=2e-4)


@pytest.mark.slow
def test_cached_prefix_scoring_equals_one_prompt_at_a_time(lm):
    """Prefixes run once and their KV cache is copied to each item: same answers."""
    prefixes, suffixes = _two_profiles_three_questions(lm)
    items = [(0, suffixes[0]), (1, suffixes[1]), (0, suffixes[2]), (1, suffixes[0])]
    cached = lm.score_cached(prefixes, ["__base__", "__base__"], items, chunk=3)
    alone = torch.cat([lm.score([Pack(prefixes[i], (s,))]) for i, s in items])
    np.testing.assert_allclose(cached.numpy(), alone.numpy(), atol=2e-4)
