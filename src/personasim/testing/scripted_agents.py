"""Simulated users whose answers are a fixed function of user and item, for tests of
what surrounds the agents (the HTTP service, sessions, batching): a model there adds
only time, and a scripted answer shows which request an answer was computed for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from personasim.agents import UserAgent
from personasim.errors import ConfigError
from personasim.rating_scale import RatingScale

__all__ = ["ScriptedAgents"]


def _unit(*parts: str) -> float:
    """A number in [0, 1) fixed by `parts`."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class ScriptedAgents:
    """The agents' interface (:class:`~personasim.agents.UserAgent`'s methods that the
    service and sessions call) with scripted answers.

    A user's expected rating of an item is ``1 + 4 * u`` and its P(watch) ``v``, with
    ``u, v`` in [0, 1) drawn from a hash of (user, item): the same pair always gets the
    same answer, whatever else is asked with it. Every call is recorded in :attr:`calls`.

    Args:
        personas: The run's users and the persona answering for each.
        items: The catalogue's item ids.
    """

    mode = "persona"
    rating_scale = RatingScale()
    """Scripted agents answer on 1-5."""

    def __init__(self, personas: Mapping[str, str], items: Iterable[str]) -> None:
        self.personas = dict(personas)
        self.profiles = {user: f"scripted user {user}" for user in self.personas}
        self.items: dict[str, dict[str, Any]] = {str(i): {"item_id": str(i)} for i in items}
        self._added: set[str] = set()
        self.calls: list[tuple[str, list[tuple[str, list[str]]]]] = []

    # --- the answers ----------------------------------------------------------------------

    @staticmethod
    def expected_rating(user_id: str, item_id: str) -> float:
        """The scripted expected rating of `item_id` by `user_id`, in [1, 5)."""
        return 1.0 + 4.0 * _unit("rate", user_id, item_id)

    @staticmethod
    def watch_chance(user_id: str, item_id: str) -> float:
        """The scripted P(watch) of `item_id` by `user_id`, in [0, 1)."""
        return _unit("watch", user_id, item_id)

    def _check(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[tuple[str, list[str]]]:
        clean = []
        for user, items in requests:
            if user not in self.profiles:
                raise ConfigError(f"user {user!r} is not a simulated user of this run")
            unknown = [i for i in items if i not in self.items]
            if unknown:
                raise ConfigError(f"unknown item(s) {unknown[:3]}")
            clean.append((user, list(items)))
        return clean

    def rating_distributions(
        self, requests: Sequence[tuple[str, Sequence[str]]]
    ) -> list[dict[str, np.ndarray]]:
        """Per request: ``probs`` [n, 5] (the mass split between the two ratings around
        the expected one), ``expected``, ``argmax``, ``digit_mass`` and
        ``greedy_is_digit``, as :meth:`UserAgent.rating_distributions` returns them."""
        clean = self._check(requests)
        self.calls.append(("rate", clean))
        out = []
        for user, items in clean:
            expected = np.array([self.expected_rating(user, i) for i in items])
            low = np.floor(expected).astype(int)  # 1..4
            share = expected - low
            probs = np.zeros((len(items), 5))
            probs[np.arange(len(items)), low - 1] = 1.0 - share
            probs[np.arange(len(items)), low] = share
            out.append(
                {
                    "probs": probs,
                    "expected": expected,
                    "argmax": probs.argmax(axis=1) + 1,
                    "digit_mass": np.ones(len(items)),
                    "greedy_is_digit": np.ones(len(items), bool),
                }
            )
        return out

    def watch_probabilities(
        self, requests: Sequence[tuple[str, Sequence[str]]]
    ) -> list[np.ndarray]:
        """Per request, the scripted P(watch) of each item."""
        clean = self._check(requests)
        self.calls.append(("watch", clean))
        return [np.array([self.watch_chance(user, i) for i in items]) for user, items in clean]

    def rate(self, user_id: str, item_ids: Sequence[str]) -> list[float]:
        """Expected ratings of `item_ids` by `user_id`."""
        return self.rating_distributions([(user_id, item_ids)])[0]["expected"].tolist()

    # --- users and items ------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        profile_text: str,
        *,
        persona: str | None = None,
        membership: dict[str, float] | None = None,
        blend: bool = False,
        top: int = 3,
    ) -> str:
        """Register a cold-start user, answered for by `persona` (or its likeliest
        persona of `membership`)."""
        if user_id in self.profiles and user_id not in self._added:
            raise ConfigError(f"user {user_id!r} is a simulated user of the run")
        if persona is None:
            if not membership:
                raise ConfigError(f"user {user_id!r}: give its persona or its membership")
            persona = max(membership, key=membership.__getitem__)
        self.profiles[user_id] = profile_text
        self.personas[user_id] = persona
        self._added.add(user_id)
        return persona

    def remove_user(self, user_id: str) -> None:
        """Forget a user added by :meth:`add_user`."""
        if user_id not in self._added:
            raise ConfigError(f"user {user_id!r} was not added with add_user")
        self._added.discard(user_id)
        self.profiles.pop(user_id, None)
        self.personas.pop(user_id, None)

    # the agents' own bookkeeping of users, personas and described items
    describe_items = UserAgent.describe_items
    knows_user = UserAgent.knows_user
    is_added = UserAgent.is_added
    knows_item = UserAgent.knows_item
    persona_of = UserAgent.persona_of
    persona_sizes = UserAgent.persona_sizes
    run_users = UserAgent.run_users
