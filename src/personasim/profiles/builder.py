"""Profiles of a set of users, end to end: traits, distillation, rationales, the text."""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from personasim.config import LLMConfig, ProfileConfig
from personasim.llm.registry import create_generator
from personasim.llm.template import TemplateGenerator
from personasim.profiles.cache import GenerationCache
from personasim.profiles.distill import (
    GenerationCounts,
    distil_summaries,
    user_histories,
    write_rationales,
)
from personasim.profiles.taste import render_taste, render_traits, taste_of
from personasim.profiles.traits import compute_traits
from personasim.rating_scale import RatingScale

if TYPE_CHECKING:
    from personasim.scale.executor import Executor

__all__ = ["PROFILE_COLUMNS", "ProfileResult", "build_profiles", "compose_profile"]

PROFILE_COLUMNS = ["user_id", "activity", "conformity", "diversity", "profile_text"]
"""The contracted columns of ``profiles/profiles.parquet`` (more follow them)."""


def compose_profile(traits: dict[str, Any], taste: dict[str, Any], summary: str) -> str:
    """The profile text Ms: the traits, the taste in numbers, then the model's words.

    The first two lines come from the data, so the profile states the traits and the
    taste even when a small model's summary is vague; the summary is bounded by
    `profile.summary_max_tokens`.
    """
    facts = render_taste(taste)
    lines = [render_traits(traits, rated=taste.get("rated", True)), facts]
    if summary and summary != facts:
        lines.append(f"In short: {summary}")
    return "\n".join(lines)


@dataclass
class ProfileResult:
    """Profiles, rationales and what it took to write them."""

    profiles: pd.DataFrame
    rationales: pd.DataFrame
    identity: dict[str, Any]
    summary_counts: GenerationCounts
    rationale_counts: GenerationCounts | None
    seconds: float
    summaries_seconds: float


def _chunk_size(llm: LLMConfig) -> int:
    return llm.concurrency * 4 if llm.backend == "openai" else max(llm.batch_size * 2, 8)


@dataclass
class _Generated:
    summaries: dict[str, str]
    summary_counts: GenerationCounts
    rationales: pd.DataFrame
    rationale_counts: GenerationCounts
    identity: dict[str, Any]
    summaries_seconds: float


def _generate(
    histories: dict[str, pd.DataFrame],
    *,
    llm: LLMConfig,
    config: ProfileConfig,
    cache_path: Path,
    seed: int,
    rationales: bool,
    scale: RatingScale | None = None,
) -> _Generated:
    """Summaries (and rationales) of some users, with their own generator and the run's
    generation cache (one piece of work of an executor)."""
    cache = GenerationCache(cache_path)
    generator = create_generator(llm)
    chunk = _chunk_size(llm)
    started = time.perf_counter()
    try:
        summaries, summary_counts = distil_summaries(
            histories, generator, cache, config, seed=seed, chunk_size=chunk, scale=scale
        )
        summaries_s = time.perf_counter() - started
        rationale_counts = GenerationCounts()
        frame = pd.DataFrame(columns=["user_id", "item_id", "rating", "rationale"])
        if rationales:
            writer = TemplateGenerator() if config.rationale_backend == "template" else generator
            frame, rationale_counts = write_rationales(
                histories, writer, cache, config, seed=seed, chunk_size=chunk, scale=scale
            )
        identity = generator.identity()
    finally:
        generator.close()
        cache.close()
    return _Generated(summaries, summary_counts, frame, rationale_counts, identity, summaries_s)


def build_profiles(
    train: pd.DataFrame,
    items: pd.DataFrame,
    *,
    llm: LLMConfig,
    config: ProfileConfig,
    cache_path: Path,
    seed: int,
    reference_traits: pd.DataFrame | None = None,
    rationales: bool | None = None,
    executor: Executor | None = None,
    scale: RatingScale | None = None,
) -> ProfileResult:
    """Traits, profile texts and (optionally) rationales of the users in `train`.

    Args:
        train: The train ratings of the users to profile.
        items: Items with metadata and train-only statistics.
        llm: The frozen model.
        config: The `[profile]` section.
        cache_path: The generation cache (shared by every run of a run folder).
        seed: Base seed of retries.
        reference_traits: Raw traits of the population whose percentiles cut the trait
            levels (to profile new users against clustered ones).
        rationales: Override `config.rationales`.
        executor: Where the generations run (chunks of users as Ray tasks with the Ray
            executor); in this process when None.
        scale: The log's rating scale (1-5 when None).
    """
    traits = compute_traits(train, items, reference_traits)
    histories = user_histories(train, items)
    want_rationales = config.rationales if rationales is None else rationales
    started = time.perf_counter()
    work = partial(
        _generate,
        llm=llm,
        config=config,
        cache_path=cache_path,
        seed=seed,
        rationales=want_rationales,
        scale=scale,
    )
    if executor is None or executor.parallelism == 1:
        generated = [work(histories)]
    else:
        users = list(histories)  # the in-process order, cut into contiguous chunks
        parts = min(len(users), executor.parallelism * 2) or 1
        chunks = [
            {
                u: histories[u]
                for u in users[i * len(users) // parts : (i + 1) * len(users) // parts]
            }
            for i in range(parts)
        ]
        generated = executor.map(
            work, chunks, label=f"profiles on {executor.name}", gpu=llm.backend == "hf"
        )
    summaries = {u: text for g in generated for u, text in g.summaries.items()}
    summary_counts = GenerationCounts.total([g.summary_counts for g in generated])
    rationale_counts = (
        GenerationCounts.total([g.rationale_counts for g in generated]) if want_rationales else None
    )
    frames = [g.rationales for g in generated if len(g.rationales)]
    frame = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["user_id", "item_id", "rating", "rationale"])
    )
    identity = generated[0].identity
    summaries_s = max(g.summaries_seconds for g in generated)
    rows = []
    for t in traits.to_dict("records"):
        taste = taste_of(histories[t["user_id"]], scale)
        summary = summaries[t["user_id"]]
        rows.append(
            {
                **t,
                "taste_facts": render_taste(taste),
                "taste_summary": summary,
                "profile_text": compose_profile(t, taste, summary),
            }
        )
    profiles = pd.DataFrame(rows)
    rest = [c for c in profiles.columns if c not in PROFILE_COLUMNS]
    return ProfileResult(
        profiles=profiles[PROFILE_COLUMNS + rest],
        rationales=frame,
        identity=identity,
        summary_counts=summary_counts,
        rationale_counts=rationale_counts,
        seconds=time.perf_counter() - started,
        summaries_seconds=summaries_s,
    )
