"""The agents' prompts: a per-user prefix (the profile) and a per-item suffix.

The prefix is the system message holding the user's profile (Ms), optionally followed
by the titles the user watched last (``agents.recent_titles``); it is the same for
every item of the user, so it is encoded once and shared. The suffix is the user turn
(the retrieved rationale, the item, optionally the CF prior, the question) and the
opening of the assistant turn, after which the answer token is scored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from personasim.profiles.prompts import item_line
from personasim.rating_scale import RatingScale

__all__ = [
    "AGENT_PROMPT_VERSION",
    "agent_profiles",
    "item_description",
    "rating_question",
    "recent_items",
    "watch_question",
]

AGENT_PROMPT_VERSION = "agent-v1"

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
    item: Mapping[str, Any],
    rationale: str | None = None,
    prior: float | None = None,
    scale: RatingScale | None = None,
) -> str:
    """The user turn asking for a rating on `scale` (1-5 when None)."""
    text = _context(rationale) + item_description(item)
    if prior is not None:
        text += f" Users with similar tastes would give it {prior:.1f}."
    return f"{text}\n{(scale or RatingScale()).question()}"


def watch_question(item: Mapping[str, Any], rationale: str | None = None) -> str:
    """The user turn asking whether the user would watch the item."""
    return f"{_context(rationale)}{item_description(item)}\n{WATCH_QUESTION}"


def recent_items(train: pd.DataFrame, count: int) -> dict[str, list[str]]:
    """Each user's last `count` training items, oldest first (ties in log order)."""
    if count <= 0 or train.empty:
        return {}
    ordered = train.assign(_row=range(len(train))).sort_values(["timestamp", "_row"])
    last = ordered.groupby("user_id", sort=False).tail(count)
    return {
        str(user): [str(item) for item in group["item_id"]]
        for user, group in last.groupby("user_id", sort=False)
    }


def agent_profiles(
    profiles: pd.DataFrame,
    recent: Mapping[str, list[str]],
    items: Mapping[str, Mapping[str, Any]],
) -> dict[str, str]:
    """Each user's prefix text: the profile, then "Recently watched, oldest first:" and
    the items of `recent` (from :func:`recent_items`; a user without any keeps the
    profile alone)."""
    texts = dict(zip(profiles["user_id"].astype(str), profiles["profile_text"], strict=True))
    for user, watched in recent.items():
        if user in texts and watched:
            titles = "; ".join(item_line(items[i]) for i in watched if i in items)
            texts[user] = f"{texts[user]}\nRecently watched, oldest first: {titles}."
    return texts
