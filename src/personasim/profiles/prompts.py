"""Every prompt personasim sends to the frozen language model, in one place.

Change a template and bump :data:`PROMPT_VERSION`; the version and a hash of the
templates go into the profile stage's configuration hash and every cache key, so
changed prompts never reuse old generations.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from personasim.llm.base import Message
from personasim.rating_scale import RatingScale

__all__ = [
    "INSTRUCTION_PHRASES",
    "PROMPT_VERSION",
    "WATCHED_TEMPLATES",
    "item_line",
    "profile_update_messages",
    "prompts_hash",
    "rationale_messages",
]

PROMPT_VERSION = "profile-v2"

# Tried on SmolLM2-135M-Instruct (the default): these short forms gave the fewest loops
# and echoes; longer instructions made it copy the rating list or the instructions.
PROFILE_SYSTEM = "You summarise movie tastes."
PROFILE_USER = (
    "Summary so far: {summary}\n\n"
    "New ratings (1 = hated, 5 = loved):\n{ratings}\n\n"
    "Write the new summary in two sentences: what kinds of movies does this viewer like "
    "and dislike?"
)
RATIONALE_USER = (
    "A viewer who {taste} {verdict} the movie {item} (rated {rating}/5). "
    "Give the likely reason in one short sentence."
)
VERDICTS = {1: "hated", 2: "disliked", 3: "found okay", 4: "liked", 5: "loved"}
# A log without ratings (clicks, views): what the viewer watched, not how they rated it.
PROFILE_USER_WATCHED = (
    "Summary so far: {summary}\n\n"
    "Newly watched:\n{ratings}\n\n"
    "Write the new summary in two sentences: what kinds of movies does this viewer watch?"
)
RATIONALE_USER_WATCHED = (
    "A viewer who {taste} watched the movie {item}. Give the likely reason in one short sentence."
)
WATCHED_TEMPLATES = (PROFILE_USER_WATCHED, RATIONALE_USER_WATCHED)
"""The templates of logs without ratings; their text goes into those generations' cache
keys (the ratings' templates keep their hash, so rated runs stay up to date)."""

INSTRUCTION_PHRASES = (
    "summary so far",
    "new ratings (1",
    "newly watched:",
    "write the new summary",
    "what kinds of movies does this viewer",
    "give the likely reason",
)
"""Phrases of the instructions; a generation that repeats one echoes the prompt."""

_TEMPLATES = (PROFILE_SYSTEM, PROFILE_USER, RATIONALE_USER, repr(sorted(VERDICTS.items())))


def prompts_hash(watched: bool = False) -> str:
    """Hash of the prompt templates (recorded with :data:`PROMPT_VERSION`); `watched`:
    of a log without ratings, whose templates are :data:`WATCHED_TEMPLATES`."""
    templates = (*_TEMPLATES, *WATCHED_TEMPLATES) if watched else _TEMPLATES
    return hashlib.sha256("\x00".join(templates).encode()).hexdigest()[:16]


def item_line(item: Mapping[str, Any]) -> str:
    """``Title (year), Genre/Genre`` as the prompts show an item."""
    title = item.get("title") or item["item_id"]
    year = item.get("year")
    text = str(title)
    known = year is not None and not (isinstance(year, float) and math.isnan(year))
    if known and f"({int(year)})" not in text:
        text += f" ({int(year)})"
    genres = item.get("genres") or []
    return f"{text}, {'/'.join(genres)}" if genres else text


def _on_scale(template: str, scale: RatingScale) -> str:
    """A template written for ratings 1-5 (whose text is hashed), on `scale`."""
    if scale == RatingScale():
        return template
    return template.replace(
        "(1 = hated, 5 = loved)", f"({scale.low:g} = hated, {scale.high:g} = loved)"
    ).replace("{rating}/5)", f"{{rating}}/{scale.high:g})")


def profile_update_messages(
    summary: str,
    batch: Sequence[tuple[Mapping[str, Any], float]],
    scale: RatingScale | None = None,
) -> tuple[Message, ...]:
    """Refine the running profile with the next batch of ``(item, rating)`` pairs
    (ratings on `scale`; 1-5 when None; all NaN in a log without ratings: the items
    watched)."""
    scale = scale or RatingScale()
    if all(math.isnan(rating) for _, rating in batch):  # a log without ratings
        watched = "\n".join(f"- {item_line(item)}" for item, _ in batch)
        user = PROFILE_USER_WATCHED.format(summary=summary or "(empty)", ratings=watched)
        return ({"role": "system", "content": PROFILE_SYSTEM}, {"role": "user", "content": user})
    ratings = "\n".join(f"- {item_line(item)}: {scale.out_of(rating)}" for item, rating in batch)
    user = _on_scale(PROFILE_USER, scale).format(summary=summary or "(empty)", ratings=ratings)
    return ({"role": "system", "content": PROFILE_SYSTEM}, {"role": "user", "content": user})


def rationale_messages(
    taste_text: str, item: Mapping[str, Any], rating: float, scale: RatingScale | None = None
) -> tuple[Message, ...]:
    """Ask why the user gave `item` its `rating`.

    Args:
        taste_text: What the viewer likes, as a verb phrase ("likes Comedy; dislikes
            Horror").
        item: The item (title, year, genres).
        rating: The user's rating (NaN in a log without ratings: why they watched it).
        scale: The log's rating scale (1-5 when None).
    """
    if math.isnan(rating):  # a log without ratings: why they watched it
        user = RATIONALE_USER_WATCHED.format(taste=taste_text, item=item_line(item))
        return ({"role": "user", "content": user},)
    scale = scale or RatingScale()
    stars = math.floor(scale.stars(rating) + 0.5)  # half up: 3.5 stars is "liked"
    verdict = VERDICTS[min(5, max(1, stars))]
    user = _on_scale(RATIONALE_USER, scale).format(
        taste=taste_text, verdict=verdict, item=item_line(item), rating=f"{rating:g}"
    )
    return ({"role": "user", "content": user},)
