"""Negative samplers draw unseen items with the intended bias."""

from __future__ import annotations

import numpy as np

from personasim.agents.samplers import SamplerContext, available_samplers, sample_negatives

ITEMS = np.array([f"i{k}" for k in range(100)])
COUNTS = np.arange(1, 101, dtype=float)  # i99 is the most popular
SCORES = np.linspace(1, 5, 100)  # i99 scores highest


def _ctx() -> SamplerContext:
    return SamplerContext(items=ITEMS, counts=COUNTS, alpha=1.0, scores=SCORES, positive_score=3.0)


def test_every_sampler_draws_only_unseen_items():
    seen = {f"i{k}" for k in range(0, 100, 2)}
    assert set(available_samplers()) >= {"uniform", "popularity", "ambiguous", "hard"}
    for name in available_samplers():
        drawn = sample_negatives(name, _ctx(), seen, 20, np.random.default_rng(0))
        assert len(drawn) == len(set(drawn)) == 20
        assert not set(drawn) & seen, name


def test_samplers_have_their_bias():
    rng = np.random.default_rng(0)
    index = {f"i{k}": k for k in range(100)}

    def draws(name: str) -> list[int]:
        return [index[i] for _ in range(30) for i in sample_negatives(name, _ctx(), set(), 5, rng)]

    def mean_index(name: str) -> float:
        return float(np.mean(draws(name)))

    assert mean_index("popularity") > mean_index("uniform") + 10
    assert min(draws("hard")) >= 80  # among the 4n = 20 highest CF scores
    assert abs(mean_index("ambiguous") - 49.5) < 8  # near the positives' score of 3.0
