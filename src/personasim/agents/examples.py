"""RAFT training examples for the user agents.

Rating examples: every train rating of a simulated user, asked with the user's profile
as the system prompt, the most similar other past rationale as context, the item's
description (and optionally the CF prior); the target is the rating (answered with its
level's digit).

Watch examples: "would you watch it?" with the user's rated items as positives and
negatives from a sampler, so the same adapter can make Agent4Rec's watch decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from personasim.agents.prior import CFPrior
from personasim.agents.prompts import rating_question, watch_question
from personasim.agents.retrieval import RationaleIndex
from personasim.agents.samplers import SCORE_FREE_SAMPLERS, SamplerContext, sample_negatives
from personasim.config import AgentConfig
from personasim.errors import ConfigError
from personasim.rating_scale import RatingScale

__all__ = [
    "EXAMPLE_COLUMNS",
    "build_examples",
    "described_item",
    "item_records",
    "select_examples",
]

logger = logging.getLogger(__name__)

EXAMPLE_COLUMNS = ["user_id", "item_id", "task", "target", "prior", "question"]


def item_records(items: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Item metadata as the prompts use it, keyed by item id."""
    out = {}
    for row in items.itertuples(index=False):
        year = row.year
        mean = row.train_mean_rating
        out[str(row.item_id)] = {
            "item_id": str(row.item_id),
            "title": None if row.title is None or pd.isna(row.title) else str(row.title),
            "year": None if year is None or pd.isna(year) else int(year),
            "genres": [] if row.genres is None else list(row.genres),
            "mean_rating": None if mean is None or pd.isna(mean) else float(mean),
            "count": int(row.train_count),
        }
    return out


def described_item(description: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """The prompt record of an item given by its description (title, year, genres),
    as :func:`item_records` makes them for the catalogue's items nobody has rated.

    Raises:
        ConfigError: No title, a year that is not an integer, genres not a list of
            strings (`where` names the description).
    """
    title = description.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ConfigError(f"{where}: needs a non-empty 'title'")
    year = description.get("year")
    if year is not None and (isinstance(year, bool) or not isinstance(year, int)):
        raise ConfigError(f"{where}: 'year' must be an integer, got {year!r}")
    genres = description.get("genres") or []
    if isinstance(genres, str) or not all(isinstance(g, str) for g in genres):
        raise ConfigError(f"{where}: 'genres' must be a list of strings, got {genres!r}")
    unknown = set(description) - {"item_id", "title", "year", "genres"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    item_id = description.get("item_id") or (
        f"new:{title.strip()}" + (f" ({year})" if year is not None else "")
    )
    return {
        "item_id": str(item_id),
        "title": title.strip(),
        "year": year,
        "genres": list(genres),
        "mean_rating": None,
        "count": 0,
        "described": True,
    }


def build_examples(
    train: pd.DataFrame,
    items: Mapping[str, Mapping[str, Any]],
    config: AgentConfig,
    *,
    oof_prior: np.ndarray | None,
    prior: CFPrior | None,
    index: RationaleIndex | None,
    seed: int,
    scale: RatingScale | None = None,
) -> pd.DataFrame:
    """Rating and watch examples of every user in `train` (for a log without ratings,
    `prior` None: watch examples alone, every train item a positive).

    Args:
        train: Train ratings of the simulated users.
        items: From :func:`item_records`.
        config: The `[agents]` section.
        oof_prior: Out-of-fold prior of each train row (same order); None without
            ratings.
        prior: The full prior (CF scores for the ambiguous and hard samplers); None for
            a log without ratings (the samplers that need no scores only).
        index: Rationale retrieval, or None for the "Ms only" ablation.
        seed: Seed of the negative samples.
        scale: The rating scale the questions name (1-5 when None).

    Returns:
        Columns ``user_id, item_id, task, target, prior, question``; `task` is "rate"
        (target: the rating, a level of the scale) or "watch" (target 1 yes, 0 no);
        `prior` is the prior rating shown to the model (NaN for watch examples).
    """
    rng = np.random.default_rng(seed)
    rated = prior is not None
    if not rated:
        _check_without_ratings(config)
        oof_prior = np.full(len(train), np.nan)
    in_prompt = "prompt" in config.prior
    samplers = [config.sampler] if isinstance(config.sampler, str) else list(config.sampler)
    # the prior's scores of the whole catalogue, per user, only for samplers that read them
    scored = rated and any(s not in SCORE_FREE_SAMPLERS for s in samplers)
    candidates = np.array([i for i, it in items.items() if it["count"] > 0])
    counts = np.array([items[i]["count"] for i in candidates], dtype="float64")
    rows: list[tuple[Any, ...]] = []
    train = train.assign(_prior=oof_prior).sort_values(["user_id", "timestamp", "item_id"])
    for user, frame in train.groupby("user_id", sort=True):
        user = str(user)
        ids = frame["item_id"].astype(str).tolist()
        contexts = index.most_similar(user, ids) if index is not None else [None] * len(ids)
        for item, rating, p, ctx in zip(
            ids, frame["rating"], frame["_prior"], contexts, strict=True
        ):
            if not rated:
                break
            question = rating_question(items[item], ctx, float(p) if in_prompt else None, scale)
            rows.append((user, item, "rate", float(rating), float(p), question))
        if rated and (not config.watch_task or config.watch_share == 0):
            continue
        n_pos = (
            len(ids)
            if not rated
            else max(
                1,
                int(
                    round(
                        len(ids)
                        * config.watch_share
                        / (1 - config.watch_share)
                        / (1 + config.negatives_per_positive)
                    )
                ),
            )
        )
        positives = rng.choice(ids, size=min(n_pos, len(ids)), replace=False).tolist()
        ctx = SamplerContext(
            items=candidates,
            counts=counts,
            alpha=config.sampler_alpha,
            scores=prior.predict(user, candidates.tolist()) if scored else None,
            positive_score=float(np.mean(prior.predict(user, ids))) if scored else None,
        )
        negatives = sample_negatives(
            config.sampler, ctx, set(ids), len(positives) * config.negatives_per_positive, rng
        )
        watch_items = positives + negatives
        contexts = (
            index.most_similar(user, watch_items)
            if index is not None
            else [None] * len(watch_items)
        )
        for item, ctx_text in zip(watch_items, contexts, strict=True):
            target = 1 if item in positives else 0
            rows.append(
                (user, item, "watch", target, float("nan"), watch_question(items[item], ctx_text))
            )
    return pd.DataFrame(rows, columns=EXAMPLE_COLUMNS)


def _check_without_ratings(config: AgentConfig) -> None:
    """Refuse the settings a log without ratings cannot train with."""
    samplers = [config.sampler] if isinstance(config.sampler, str) else list(config.sampler)
    needing = [s for s in samplers if s not in SCORE_FREE_SAMPLERS]
    if needing:
        raise ConfigError(
            f"agents.sampler {', '.join(needing)} draws negatives by the rating prior, which "
            "a log without ratings does not have: use "
            + " or ".join(repr(s) for s in SCORE_FREE_SAMPLERS)
        )
    if not config.watch_task:
        raise ConfigError(
            "a log without ratings trains only the watch decision: set agents.watch_task = true"
        )


def select_examples(
    examples: pd.DataFrame,
    config: AgentConfig,
    *,
    errors: pd.Series | None,
    rng: np.random.Generator,
    gradients: pd.Series | None = None,
) -> pd.DataFrame:
    """Cap one adapter's examples at `max_examples_per_adapter` rating examples (and the
    watch examples in proportion).

    Args:
        examples: The adapter's examples.
        config: The `[agents]` section (`max_examples_per_adapter`, `selection`).
        errors: Per rating example (same index), the prior's absolute error; used by
            the "cf_error" selection.
        rng: Randomness.
        gradients: Per scored rating example, its gradient score (:mod:`.selection`);
            used by the "gradient" selection, which chooses among the scored ones only.
    """
    rate = examples[examples["task"] == "rate"]
    watch = examples[examples["task"] == "watch"]
    if rate.empty:  # a log without ratings: the cap counts watch examples
        cap = config.max_examples_per_adapter
        if 0 < cap < len(watch):
            watch = watch.iloc[np.sort(rng.choice(len(watch), size=cap, replace=False))]
        return watch
    cap = config.max_examples_per_adapter or len(rate)
    if len(rate) > cap:
        weights = None
        if config.selection == "cf_error" and errors is not None:
            weights = errors.reindex(rate.index).to_numpy() + 0.25
        elif config.selection == "gradient" and gradients is not None:
            scores = gradients.reindex(rate.index).to_numpy()
            # every scored example stays possible; those outside the scored pool are not
            weights = np.nan_to_num(scores + 0.05 * np.nanmean(scores) + 1e-12)
        if weights is not None:
            chosen = rng.choice(len(rate), size=cap, replace=False, p=weights / weights.sum())
        else:
            chosen = rng.choice(len(rate), size=cap, replace=False)
        keep_share = cap / len(rate)
        rate = rate.iloc[np.sort(chosen)]
        if len(watch):
            n_watch = max(1, int(round(len(watch) * keep_share)))
            watch = watch.iloc[np.sort(rng.choice(len(watch), size=n_watch, replace=False))]
    return pd.concat([rate, watch])
