"""Hierarchical distillation with a scripted model: rounds, batching across users,
retries, fallbacks, and resuming from the cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personasim.config import ProfileConfig
from personasim.data.splitting import split_temporal
from personasim.data.tables import item_statistics
from personasim.llm.base import GenerationRequest
from personasim.profiles.cache import GenerationCache
from personasim.profiles.distill import distil_summaries, user_histories, write_rationales
from personasim.testing import FakeGenerator


@pytest.fixture(scope="module")
def histories(small_log):
    users = np.array(sorted(small_log.ratings.user_id.unique())[:6])
    split = split_temporal(small_log.ratings, users, train_fraction=0.6, include_others=False)
    items = item_statistics(small_log.items, split.training_data())
    return user_histories(split.train, items)


def _summary_of(request: GenerationRequest) -> str:
    text = request.messages[-1]["content"]
    return text.split("Summary so far: ", 1)[1].split("\n", 1)[0]


def test_rounds_refine_the_running_profile_in_time_order(histories, tmp_path):
    gen = FakeGenerator()
    cfg = ProfileConfig(batch_interactions=5)
    summaries, counts = distil_summaries(
        histories, gen, GenerationCache(tmp_path / "c.sqlite"), cfg, seed=0, chunk_size=100
    )
    rounds = {u: int(np.ceil(len(h) / 5)) for u, h in histories.items()}
    # One call per round, with every user who has that round (batched across users).
    assert len(gen.calls) == max(rounds.values())
    assert len(gen.calls[0]) == len(histories)
    assert [len(c) for c in gen.calls] == [
        sum(1 for n in rounds.values() if n > r) for r in range(max(rounds.values()))
    ]
    # Round 1 starts empty; later rounds carry the previous answer.
    assert all(_summary_of(r) == "(empty)" for r in gen.calls[0])
    answers = {f"A profile written by the fake model, number {i}." for i in range(1, 200)}
    assert all(_summary_of(r) in answers for r in gen.calls[1])
    # The first prompt of a user lists its first five ratings, oldest first.
    user, history = next(iter(histories.items()))
    first = gen.calls[0][0].messages[-1]["content"]
    listed = [line for line in first.splitlines() if line.startswith("- ")]
    assert len(listed) == 5
    for line, title in zip(listed, history.title.iloc[:5], strict=True):
        assert line.startswith(f"- {title}")
    assert counts.requested == counts.generated == sum(rounds.values())
    assert counts.cached == 0
    assert summaries[user].startswith("A profile written by the fake model")


def test_degenerate_answers_are_retried_then_fall_back(histories, tmp_path):
    retries = []

    def reply(request: GenerationRequest) -> str:
        if request.temperature == 0:
            return "loop loop loop loop loop loop loop loop loop loop loop loop"
        # The retry samples with another seed; every other one answers well.
        retries.append(request)
        return "" if len(retries) % 2 else "They enjoy thoughtful dramas, not noisy action."

    gen = FakeGenerator(reply)
    cfg = ProfileConfig(batch_interactions=50)  # one round per user
    summaries, counts = distil_summaries(
        histories, gen, GenerationCache(tmp_path / "c.sqlite"), cfg, seed=2, chunk_size=100
    )
    n = len(histories)
    first = [r for r in gen.requests if r.temperature == 0]
    assert counts.degenerate["repetition"] == n
    assert len(retries) == n
    assert {r.seed for r in retries}.isdisjoint({r.seed for r in first})
    assert len({r.seed for r in first}) == n  # a different seed per request
    assert counts.recovered_by_retry == n // 2
    assert counts.fallback_to_template == n - n // 2
    assert counts.generated == 2 * n
    for text in summaries.values():
        assert "loop loop" not in text
        assert text.startswith(("They enjoy", "Enjoys", "Mostly watches"))


def test_killed_run_resumes_without_regenerating(histories, tmp_path):
    cfg = ProfileConfig(batch_interactions=5)
    cache_path = tmp_path / "c.sqlite"
    reference, _ = distil_summaries(
        histories, FakeGenerator(), GenerationCache(tmp_path / "r"), cfg, seed=0, chunk_size=4
    )
    dying = FakeGenerator(fail_on_call=3)
    with pytest.raises(KeyboardInterrupt):
        distil_summaries(histories, dying, GenerationCache(cache_path), cfg, seed=0, chunk_size=4)
    done_before = sum(len(c) for c in dying.calls[:2])

    again = FakeGenerator()
    again._n = 0
    summaries, counts = distil_summaries(
        histories, again, GenerationCache(cache_path), cfg, seed=0, chunk_size=4
    )
    assert counts.cached == done_before
    assert len(again.requests) == counts.requested - done_before
    assert set(summaries) == set(reference)


def test_other_model_does_not_reuse_the_cache(histories, tmp_path):
    cfg = ProfileConfig(batch_interactions=50)
    cache = GenerationCache(tmp_path / "c.sqlite")
    distil_summaries(histories, FakeGenerator(name="a"), cache, cfg, seed=0, chunk_size=50)
    other = FakeGenerator(name="b")
    _, counts = distil_summaries(histories, other, cache, cfg, seed=0, chunk_size=50)
    assert counts.cached == 0 and other.requests


def test_one_rationale_per_train_item_and_cached(histories, tmp_path):
    cache = GenerationCache(tmp_path / "c.sqlite")
    gen = FakeGenerator(lambda r: "They loved the jokes and the warm story of it.")
    frame, counts = write_rationales(histories, gen, cache, ProfileConfig(), seed=0, chunk_size=16)
    expected = sum(len(h) for h in histories.values())
    assert len(frame) == expected == counts.requested == counts.generated
    assert list(frame.columns) == ["user_id", "item_id", "rating", "rationale"]
    for user, h in histories.items():
        assert frame[frame.user_id == user].item_id.tolist() == h.item_id.tolist()
    # Every prompt names the item and its rating.
    first = gen.requests[0].messages[-1]["content"]
    assert "(rated" in first and "/5)" in first
    again = FakeGenerator()
    frame2, counts2 = write_rationales(
        histories, again, cache, ProfileConfig(), seed=0, chunk_size=16
    )
    assert counts2.cached == expected and not again.requests
    pd.testing.assert_frame_equal(frame, frame2)
