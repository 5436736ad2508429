"""Hierarchical distillation of train histories into profiles (Ms) and rationales (Ml).

Each user's train history is read in time order, in batches of at most
`batch_interactions` ratings; after each batch the model rewrites the running profile
("hierarchical self-reflection"). The rounds run *across users*: round r of every user
goes to the backend together, so a batched backend fills its batches. Every finished
round is cached under a key that chains the user's history up to it, so a killed run
resumes at the next round, and a user whose log grows later reuses the rounds it had.

Then one short rationale per rated train item, also batched across users and cached.
Every generation is checked (:func:`~personasim.profiles.quality.degeneracy`); a
degenerate one is retried once, sampling with another seed, and then falls back to the
template text. All of it is counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from personasim.config import ProfileConfig
from personasim.llm.base import GenerationRequest, TextGenerator
from personasim.llm.template import render
from personasim.profiles.cache import GenerationCache, cache_key
from personasim.profiles.prompts import (
    PROMPT_VERSION,
    item_line,
    profile_update_messages,
    prompts_hash,
    rationale_messages,
)
from personasim.profiles.quality import clean_rationale, clean_summary, degeneracy
from personasim.profiles.taste import render_profile, render_rationale, taste_line, taste_of
from personasim.progress import progress
from personasim.rating_scale import RatingScale

__all__ = [
    "GenerationCounts",
    "distil_summaries",
    "generate_checked",
    "user_histories",
    "write_rationales",
]

logger = logging.getLogger(__name__)

RETRY_TEMPERATURE = 0.7


@dataclass
class GenerationCounts:
    """What happened to the generations of one task."""

    requested: int = 0
    cached: int = 0
    generated: int = 0
    degenerate: Counter[str] = field(default_factory=Counter)
    recovered_by_retry: int = 0
    fallback_to_template: int = 0

    @classmethod
    def total(cls, parts: list[GenerationCounts]) -> GenerationCounts:
        """The sum of the counts of several pieces of work."""
        out = cls()
        for part in parts:
            out.requested += part.requested
            out.cached += part.cached
            out.generated += part.generated
            out.degenerate.update(part.degenerate)
            out.recovered_by_retry += part.recovered_by_retry
            out.fallback_to_template += part.fallback_to_template
        return out

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "requested": self.requested,
            "cached": self.cached,
            "generated": self.generated,
            "degenerate": dict(self.degenerate),
            "recovered_by_retry": self.recovered_by_retry,
            "fallback_to_template": self.fallback_to_template,
        }


def user_histories(train: pd.DataFrame, items: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each user's train ratings in time order (ties by item id), with item metadata."""
    meta = items.set_index("item_id")[["title", "year", "genres", "train_mean_rating"]]
    joined = train.sort_values(["user_id", "timestamp", "item_id"], kind="stable").join(
        meta, on="item_id"
    )
    joined["genres"] = [list(g) if g is not None else [] for g in joined["genres"]]
    return {str(u): frame.reset_index(drop=True) for u, frame in joined.groupby("user_id")}


def _item(row: Any) -> dict[str, Any]:
    year = row.year
    mean = row.train_mean_rating
    return {
        "item_id": str(row.item_id),
        "title": None if row.title is None or pd.isna(row.title) else str(row.title),
        "year": None if year is None or pd.isna(year) else int(year),
        "genres": list(row.genres),
        "mean_rating": None if mean is None or pd.isna(mean) else round(float(mean), 2),
    }


def generate_checked(
    generator: TextGenerator,
    requests: Sequence[GenerationRequest],
    echo_sources: Sequence[str],
    clean: Callable[[str], str],
    counts: GenerationCounts,
    *,
    retry: bool,
    titles: Sequence[Sequence[str]] | None = None,
) -> list[str]:
    """Generate, clean and check; retry degenerate ones once; fall back to templates.

    Args:
        generator: The backend.
        requests: What to generate.
        echo_sources: Per request, the prompt text that must not be copied back.
        clean: Post-processing of each text (before the checks).
        counts: Updated with what happened.
        retry: Retry degenerate generations once, sampling with another seed.
        titles: Per request, titles whose listing counts as prompt echo.
    """
    texts = [clean(t) for t in generator.generate(requests)]
    counts.generated += len(requests)

    def check(i: int, text: str) -> str | None:
        return degeneracy(text, echo_sources[i], titles[i] if titles else ())

    bad = []
    for i, text in enumerate(texts):
        reason = check(i, text)
        if reason:
            counts.degenerate[reason] += 1
            bad.append(i)
    if bad and retry:
        again = [
            replace(requests[i], temperature=RETRY_TEMPERATURE, seed=requests[i].seed + 7919)
            for i in bad
        ]
        counts.generated += len(again)
        retried = [clean(t) for t in generator.generate(again)]
        still = []
        for i, text in zip(bad, retried, strict=True):
            if check(i, text) is None:
                texts[i] = text
                counts.recovered_by_retry += 1
            else:
                still.append(i)
        bad = still
    for i in bad:
        texts[i] = clean(render(requests[i]))
        counts.fallback_to_template += 1
    return texts


def request_seed(seed: int, key: str) -> int:
    """A per-request seed: reproducible, and different for every request."""
    return (seed * 1_000_003 + int(key[:8], 16)) % 2**31


def _chunks(seq: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [seq[i : i + size] for i in range(0, len(seq), size)]


def _watched(histories: dict[str, pd.DataFrame]) -> bool:
    """True for the histories of a log without ratings (the items watched)."""
    return all(h["rating"].isna().all() for h in histories.values()) and bool(histories)


def _scale_key(scale: RatingScale) -> list[list[float]]:
    """What a generation's cache key adds for a scale other than 1-5 (whose keys were
    made before scales existed)."""
    return [] if scale == RatingScale() else [scale.as_list()]


def distil_summaries(
    histories: dict[str, pd.DataFrame],
    generator: TextGenerator,
    cache: GenerationCache,
    config: ProfileConfig,
    *,
    seed: int,
    chunk_size: int,
    scale: RatingScale | None = None,
) -> tuple[dict[str, str], GenerationCounts]:
    """The final running profile of every user.

    Args:
        histories: From :func:`user_histories`.
        generator: The backend.
        cache: Where finished rounds are kept.
        config: The `[profile]` section.
        seed: Base seed of retries.
        chunk_size: Generations per backend call (and per cache commit).
        scale: The log's rating scale (1-5 when None).

    Returns:
        The taste text of each user, and the counts.
    """
    scale = scale or RatingScale()
    counts = GenerationCounts()
    identity = generator.identity()
    base = cache_key(
        "summary",
        PROMPT_VERSION,
        prompts_hash(_watched(histories)),
        identity,
        config.summary_max_tokens,
        config.batch_interactions,
        *_scale_key(scale),
    )
    stateless = getattr(generator, "stateless", False)

    # Per user: the batches, and the chained cache key of each round.
    plans: dict[str, list[tuple[list[tuple[dict[str, Any], float]], int, str]]] = {}
    for user, history in histories.items():
        rows = [(_item(r), float(r.rating)) for r in history.itertuples(index=False)]
        size = config.batch_interactions
        batches = [rows[i : i + size] for i in range(0, len(rows), size)]
        if stateless:  # the profile ignores earlier rounds: only the last one matters
            batches = [rows[-size:]]
        key = base
        plan = []
        for number, batch in enumerate(batches):
            key = cache_key(
                key, [(it["item_id"], it["title"], it["year"], it["genres"], r) for it, r in batch]
            )
            end = len(rows) if stateless else min(len(rows), (number + 1) * size)
            plan.append((batch, end, key))
        plans[user] = plan

    all_keys = [key for plan in plans.values() for _, _, key in plan]
    cached = cache.get_many(all_keys)
    summary: dict[str, str] = {}
    next_round: dict[str, int] = {}
    for user, plan in plans.items():
        done = max((i for i, (_, _, k) in enumerate(plan) if k in cached), default=-1)
        summary[user] = cached[plan[done][2]] if done >= 0 else ""
        next_round[user] = done + 1
    counts.requested = len(all_keys)
    counts.cached = sum(next_round.values())
    pending_total = counts.requested - counts.cached

    with progress("profiles: refining", total=pending_total, unit="generations") as advance:
        round_number = 0
        while True:
            jobs = [
                u
                for u, plan in plans.items()
                if next_round[u] == round_number and round_number < len(plan)
            ]
            if not jobs and all(next_round[u] >= len(p) for u, p in plans.items()):
                break
            for chunk in _chunks(jobs, chunk_size):
                requests, echoes, titles = [], [], []
                for user in chunk:
                    batch, end, key = plans[user][round_number]
                    history = histories[user]
                    context = {"taste": taste_of(history.iloc[:end], scale)}
                    messages = profile_update_messages(summary[user], batch, scale)
                    requests.append(
                        GenerationRequest(
                            messages=messages,
                            max_new_tokens=config.summary_max_tokens,
                            task="profile",
                            context=context,
                            seed=request_seed(seed, key),
                            template=render_profile,
                        )
                    )
                    echoes.append("\n".join(item_line(it) for it, _ in batch))
                    titles.append([it["title"] or it["item_id"] for it, _ in batch])
                texts = generate_checked(
                    generator,
                    requests,
                    echoes,
                    clean_summary,
                    counts,
                    retry=config.retry_degenerate,
                    titles=titles,
                )
                fresh = {}
                for user, text in zip(chunk, texts, strict=True):
                    summary[user] = text
                    next_round[user] = round_number + 1
                    fresh[plans[user][round_number][2]] = text
                cache.put_many(fresh)
                advance(len(chunk))
            round_number += 1
    return summary, counts


def write_rationales(
    histories: dict[str, pd.DataFrame],
    generator: TextGenerator,
    cache: GenerationCache,
    config: ProfileConfig,
    *,
    seed: int,
    chunk_size: int,
    scale: RatingScale | None = None,
) -> tuple[pd.DataFrame, GenerationCounts]:
    """One short rationale per rated train item (ratings on `scale`; 1-5 when None).

    Returns:
        ``user_id, item_id, rating, rationale`` and the counts.
    """
    scale = scale or RatingScale()
    counts = GenerationCounts()
    base = cache_key(
        "rationale",
        PROMPT_VERSION,
        prompts_hash(_watched(histories)),
        generator.identity(),
        config.rationale_max_tokens,
        *_scale_key(scale),
    )
    jobs: list[tuple[str, str, float, str, GenerationRequest, str]] = []
    for user, history in histories.items():
        taste = taste_of(history, scale)
        line = taste_line(taste)
        for row in history.itertuples(index=False):
            item = _item(row)
            rating = float(row.rating)
            key = cache_key(base, line, item, rating)
            request = GenerationRequest(
                messages=rationale_messages(line, item, rating, scale),
                max_new_tokens=config.rationale_max_tokens,
                task="rationale",
                context={"item": item, "taste": taste, "rating": rating},
                seed=request_seed(seed, key),
                template=render_rationale,
            )
            jobs.append((user, item["item_id"], rating, key, request, item_line(item)))
    cached = cache.get_many(j[3] for j in jobs)
    counts.requested = len(jobs)
    counts.cached = sum(1 for j in jobs if j[3] in cached)
    texts: dict[str, str] = dict(cached)
    pending = [j for j in jobs if j[3] not in cached]
    with progress("rationales", total=len(pending), unit="generations") as advance:
        for chunk in _chunks(pending, chunk_size):
            # The item line itself is not an echo: rationales name the movie.
            generated = generate_checked(
                generator,
                [j[4] for j in chunk],
                [j[4].prompt_text().replace(j[5], "") for j in chunk],
                clean_rationale,
                counts,
                retry=config.retry_degenerate,
            )
            fresh = {j[3]: text for j, text in zip(chunk, generated, strict=True)}
            cache.put_many(fresh)
            texts.update(fresh)
            advance(len(chunk))
    frame = pd.DataFrame(
        [(u, i, r, texts[k]) for u, i, r, k, _, _ in jobs],
        columns=["user_id", "item_id", "rating", "rationale"],
    )
    return frame, counts
