"""Negative samplers for the "would you watch it?" task, registered by name.

Every sampler draws, for one user, items the user has not rated in the train part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SCORE_FREE_SAMPLERS",
    "SamplerContext",
    "available_samplers",
    "register_sampler",
    "sample_negatives",
]


@dataclass
class SamplerContext:
    """What samplers may use.

    Attributes:
        items: Candidate item ids (catalogue items with train ratings).
        counts: Train count of each candidate.
        alpha: Exponent of the popularity sampler.
        scores: CF scores of the user for the candidates (ambiguous and hard).
        positive_score: Mean CF score of the user's positives (ambiguous).
    """

    items: np.ndarray
    counts: np.ndarray
    alpha: float = 0.75
    scores: np.ndarray | None = None
    positive_score: float | None = None


Sampler = Callable[[SamplerContext, np.ndarray, int, np.random.Generator], np.ndarray]
_SAMPLERS: dict[str, Sampler] = {}

SCORE_FREE_SAMPLERS = ("popularity", "uniform")
"""The samplers that need no CF scores (the only ones of a log without ratings)."""


def register_sampler(name: str) -> Callable[[Sampler], Sampler]:
    """Register a sampler ``(context, allowed mask, n, rng) -> candidate indices``."""

    def decorate(fn: Sampler) -> Sampler:
        _SAMPLERS[name] = fn
        return fn

    return decorate


def available_samplers() -> list[str]:
    """Names of the registered samplers."""
    return sorted(_SAMPLERS)


def _draw(weights: np.ndarray, allowed: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    w = np.where(allowed, np.maximum(weights, 0.0), 0.0)
    pool = int((w > 0).sum())
    if pool == 0:
        return np.array([], dtype=int)
    return rng.choice(len(w), size=min(n, pool), replace=False, p=w / w.sum())


@register_sampler("uniform")
def uniform(
    ctx: SamplerContext, allowed: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Uniform over unseen items (Agent4Rec's protocol)."""
    return _draw(np.ones(len(ctx.items)), allowed, n, rng)


@register_sampler("popularity")
def popularity(
    ctx: SamplerContext, allowed: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Proportional to train count ** alpha: negatives as popular as what people watch."""
    return _draw(ctx.counts.astype("float64") ** ctx.alpha, allowed, n, rng)


@register_sampler("ambiguous")
def ambiguous(
    ctx: SamplerContext, allowed: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """SimANS: likely where the CF score is close to the positives' (not the very top,
    which would hold many false negatives): weight exp(-(s - s_pos)^2 / (2 * 0.5^2))."""
    if ctx.scores is None or ctx.positive_score is None:
        return uniform(ctx, allowed, n, rng)
    return _draw(np.exp(-((ctx.scores - ctx.positive_score) ** 2) / 0.5), allowed, n, rng)


@register_sampler("hard")
def hard(ctx: SamplerContext, allowed: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Among the unseen items the CF model scores highest (top 5%, at least 4n)."""
    if ctx.scores is None:
        return uniform(ctx, allowed, n, rng)
    order = np.argsort(-np.where(allowed, ctx.scores, -np.inf), kind="stable")
    top = order[: max(4 * n, int(0.05 * allowed.sum()))]
    weights = np.zeros(len(ctx.items))
    weights[top] = 1.0
    return _draw(weights, allowed, n, rng)


def sample_negatives(
    name: str | Mapping[str, float],
    ctx: SamplerContext,
    seen: set[str],
    n: int,
    rng: np.random.Generator,
) -> list[str]:
    """`n` item ids the user has not seen, drawn by sampler `name`, or by a mixture
    ``{sampler: share}`` (the `n` split among the samplers by a multinomial draw, no
    item drawn twice)."""
    allowed = ~np.isin(ctx.items, list(seen)) if seen else np.ones(len(ctx.items), dtype=bool)
    if isinstance(name, str):
        picked = _SAMPLERS[name](ctx, allowed, n, rng)
        return [str(ctx.items[i]) for i in picked]
    names = sorted(name)
    shares = np.array([float(name[k]) for k in names])
    counts = rng.multinomial(n, shares / shares.sum())
    out: list[str] = []
    for sampler, k in zip(names, counts, strict=True):
        if k:
            picked = _SAMPLERS[sampler](ctx, allowed, int(k), rng)
            allowed[picked] = False
            out += [str(ctx.items[i]) for i in picked]
    return out
