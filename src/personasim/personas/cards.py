"""Persona cards: who is in a persona, in numbers and in one sentence."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from personasim.llm.base import GenerationRequest, Message
from personasim.profiles.traits import LEVEL_NAMES

__all__ = [
    "card_statistics",
    "describe_request",
    "distinguishing_features",
    "render_card",
    "render_persona",
]

PERSONA_USER = (
    "Here are some movie viewers of one group:\n{members}\n\n"
    "In one sentence, describe this group of viewers: what they like and how they rate."
)


def card_statistics(
    persona: str,
    members: pd.DataFrame,
    taste: pd.DataFrame,
    nearest: list[str],
    total_users: int,
    rating_high: float = 5.0,
) -> dict[str, Any]:
    """Size, traits, genres, ratings and representative users of one persona.

    Args:
        persona: Its name.
        members: The members' rows of ``profiles.parquet`` (``activity_count`` is each
            member's number of train ratings).
        taste: The members' taste features, in the same order (their genre shares and
            mean ratings, weighted by their ratings, give the persona's).
        nearest: Member ids nearest the centroid, nearest first.
        total_users: Users clustered in all.
        rating_high: The highest rating of the log's scale (what "x/5" is out of).
    """
    counts = members["activity_count"].to_numpy(dtype="float64")
    total = counts.sum()
    share = (
        {
            column.removeprefix("share:"): float(taste[column].to_numpy() @ counts / total)
            for column in taste.columns
            if column.startswith("share:")
        }
        if total
        else {}
    )
    top = sorted(share.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    traits = {
        name: {LEVEL_NAMES[level]: int((members[name] == level).sum()) for level in (1, 2, 3)}
        for name in ("activity", "conformity", "diversity")
    }
    return {
        "persona": persona,
        "size": len(members),
        "share": round(len(members) / total_users, 4),
        "traits": traits,
        "top_genres": [{"genre": g, "share": round(v, 3)} for g, v in top if v > 0],
        "mean_rating": (
            round(float(taste["rating_mean"].to_numpy() @ counts / total), 3)
            if total and "rating_mean" in taste
            else None  # no ratings in the log
        ),
        "ratings_per_user": round(total / max(len(members), 1), 1),
        "nearest_users": nearest,
        "rating_high": rating_high,
    }


def distinguishing_features(
    members: pd.DataFrame, population: pd.DataFrame, n: int = 3
) -> list[dict[str, Any]]:
    """What sets a persona apart: the taste features whose members' mean is furthest
    from all users' mean, in the population's standard deviations.

    Args:
        members: The members' taste features (columns of
            :func:`~personasim.personas.features.taste_features`).
        population: Every clustered user's taste features.
        n: How many to keep.

    Returns:
        Up to `n` entries, the most distinctive first: ``feature``, the members' and
        the population's mean, ``z`` (their difference over the population's standard
        deviation) and ``text`` (a phrase for the card).
    """
    mine, everyone = members.mean(), population.mean()
    spread = population.std(ddof=0).replace(0.0, np.nan)
    z = ((mine - everyone) / spread).dropna()
    order = z.abs().sort_values(ascending=False, kind="stable").index[:n]
    return [
        {
            "feature": str(f),
            "members": round(float(mine[f]), 4),
            "population": round(float(everyone[f]), 4),
            "z": round(float(z[f]), 3),
            "text": _phrase(str(f), float(mine[f]), float(everyone[f])),
        }
        for f in order
    ]


def _phrase(feature: str, mine: float, everyone: float) -> str:
    more = mine > everyone
    kind, _, genre = feature.partition(":")
    if kind == "share":
        return f"{'more' if more else 'less'} {genre} ({mine:.0%} of ratings vs {everyone:.0%})"
    if kind == "lift":
        side = "above" if more else "below"
        return f"rate {genre} {side} their average ({mine:+.2f} vs {everyone:+.2f})"
    if feature == "rating_mean":
        return f"{'generous' if more else 'harsh'} ratings ({mine:.2f} vs {everyone:.2f})"
    if feature == "rating_spread":
        return f"{'spread-out' if more else 'even'} ratings (sd {mine:.2f} vs {everyone:.2f})"
    if feature == "popularity":
        return f"{'popular' if more else 'little-known'} titles"
    if feature == "era":
        return f"{'newer' if more else 'older'} films (mean year {mine:.0f} vs {everyone:.0f})"
    return f"{'high' if more else 'low'} {feature}"


def render_card(context: Mapping[str, Any]) -> str:
    """The ``template`` backend's description of a persona request: its card, rendered."""
    return render_persona(context["card"])


def render_persona(card: dict[str, Any]) -> str:
    """A one-sentence description from the card's numbers (no model): what sets the
    persona apart (or its top genres on cards without it), its traits and ratings."""
    apart = [d["text"] for d in card.get("distinguishing", [])]
    dominant = {
        name: max(levels, key=lambda lvl: levels[lvl]) for name, levels in card["traits"].items()
    }
    if apart:
        head = f"Viewers set apart by {'; '.join(apart)}"
    else:
        genres = [g["genre"] for g in card["top_genres"][:3]]
        head = f"Viewers who mostly watch {', '.join(genres) or 'all kinds of'} movies"
    traits = (
        f"{head}, with {dominant['activity']} activity, {dominant['conformity']} conformity "
        f"and {dominant['diversity']} diversity"
    )
    if card["mean_rating"] is None:  # a log without ratings
        return f"{traits}."
    out_of = card.get("rating_high", 5.0)
    return f"{traits}, rating {card['mean_rating']:.1f}/{out_of:g} on average."


def describe_request(
    card: dict[str, Any], member_facts: list[str], max_new_tokens: int, seed: int
) -> GenerationRequest:
    """The request that asks the LLM to describe a persona from its nearest members."""
    members = "\n".join(f"- {fact}" for fact in member_facts)
    messages: tuple[Message, ...] = (
        {"role": "user", "content": PERSONA_USER.format(members=members)},
    )
    return GenerationRequest(
        messages=messages,
        max_new_tokens=max_new_tokens,
        task="persona",
        context={"card": card},
        template=render_card,
        seed=seed,
    )


def nearest_members(
    features: np.ndarray, centroid: np.ndarray, ids: list[str], n: int
) -> list[str]:
    """The `n` members nearest the centroid, nearest first."""
    order = np.argsort(np.linalg.norm(features - centroid, axis=1), kind="stable")
    return [ids[i] for i in order[:n]]
