"""The agents' prompts: a per-user prefix (the profile) and a per-item suffix.

The prefix is the system message holding the user's profile (Ms); it is the same for
every item of the user, so it is encoded once and shared. The suffix is the user turn
(the retrieved rationale, the item, optionally the CF prior, the question) and the
opening of the assistant turn, after which the answer token is scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from personasim.profiles.prompts import item_line

__all__ = [
    "AGENT_PROMPT_VERSION",
    "item_description",
    "rating_question",
    "watch_question",
]

AGENT_PROMPT_VERSION = "agent-v1"

RATE_QUESTION = "How would you rate it, from 1 to 5?"
WATCH_QUESTION = "Would you watch it? Answer yes or no."


def item_description(item: Mapping[str, Any]) -> str:
    """Title (year), genres, and the train-only average rating and count."""
    text = f"Movie: {item_line(item)}."
    mean, count = item.get("mean_rating"), item.get("count")
    if mean is not None and not (isinstance(mean, float) and math.isnan(mean)) and count:
        text += f" Average rating {mean:.1f} from {int(count)} ratings."
    else:
        text += " Not rated by anyone yet."
    return text


def _context(rationale: str | None) -> str:
    return f"A past rating of yours: {rationale}\n" if rationale else ""


def rating_question(
    item: Mapping[str, Any], rationale: str | None = None, prior: float | None = None
) -> str:
    """The user turn asking for a rating."""
    text = _context(rationale) + item_description(item)
    if prior is not None:
        text += f" Users with similar tastes would give it {prior:.1f}."
    return f"{text}\n{RATE_QUESTION}"


def watch_question(item: Mapping[str, Any], rationale: str | None = None) -> str:
    """The user turn asking whether the user would watch the item."""
    return f"{_context(rationale)}{item_description(item)}\n{WATCH_QUESTION}"
