"""The agents' requests checked and turned into questions for the adapter of each user.

:class:`AgentQuestions` is the part of :class:`~personasim.agents.agent.UserAgent` that
turns a ``(user_id, item_ids)`` request into prompts: it checks the user, the items and
the modes asked for, writes the user turn for each item (:mod:`personasim.agents.prompts`:
the retrieved rationale, the item, the CF prior when the prompt shows it, the question)
and names the adapter the user's prefix is run through.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from personasim.agents.adapters import GLOBAL_ADAPTER
from personasim.agents.packing import BASE_ADAPTER
from personasim.agents.prior import CFPrior
from personasim.agents.prompts import rating_question, watch_question
from personasim.agents.retrieval import RationaleIndex
from personasim.config import RunConfig
from personasim.errors import ConfigError

if TYPE_CHECKING:
    from personasim.agents.agent import AgentMode

__all__ = ["AgentQuestions"]


class AgentQuestions:
    """The agents' checks and prompts per request (a mixin of
    :class:`~personasim.agents.agent.UserAgent`, whose attributes below it reads).

    Attributes:
        config: The run's settings (whether the prompt shows the CF prior).
        mode: "persona", "global" or "none".
        modes: The modes whose adapters are loaded.
        lm: The agents' model (its rating scale).
        profiles: Each user's profile text.
        personas: The adapter answering for each user in persona mode.
        items: The item records, by id.
        prior: The CF prior (None without one).
        index: The rationale index (None without rationales).
        rates: Whether the run's log has ratings.
    """

    config: RunConfig
    mode: AgentMode
    modes: tuple[AgentMode, ...]
    lm: Any
    profiles: dict[str, str]
    personas: dict[str, str]
    items: dict[str, dict[str, Any]]
    prior: CFPrior | None
    index: RationaleIndex | None
    rates: bool

    def _adapter(self, user: str, mode: AgentMode | None = None) -> str:
        """The adapter that answers for `user` in `mode` (this agent's when None)."""
        mode = mode or self.mode
        if mode == "none":
            return BASE_ADAPTER
        if mode == "global":
            return GLOBAL_ADAPTER
        try:
            return self.personas[user]
        except KeyError:
            raise ConfigError(f"user {user!r} has no persona in this run") from None

    def _check(self, user: str, item_ids: Sequence[str]) -> None:
        """Refuse a user the agents do not know, or items outside their catalogue."""
        if user not in self.profiles:
            raise ConfigError(f"user {user!r} is not a simulated user of this run")
        unknown = [i for i in item_ids if i not in self.items]
        if unknown:
            raise ConfigError(f"unknown item id(s) {unknown[:5]} for user {user!r}")

    def _priors(self, user: str, item_ids: list[str]) -> np.ndarray | None:
        """The CF prior's ratings of `item_ids` for `user` (None without a prior)."""
        return None if self.prior is None else self.prior.predict(user, item_ids)

    def _questions(self, user: str, item_ids: list[str], task: str) -> list[str]:
        """The user turns asking `user` about each of `item_ids`: whether it would watch
        them ("watch"), how it rates them ("rate"), or both, the watch questions first
        ("watch+rate")."""
        if task == "watch+rate":
            return self._questions(user, item_ids, "watch") + self._questions(
                user, item_ids, "rate"
            )
        contexts = (
            self.index.most_similar(user, item_ids)
            if self.index is not None
            else [None] * len(item_ids)
        )
        if task == "watch":
            return [
                watch_question(self.items[i], c) for i, c in zip(item_ids, contexts, strict=True)
            ]
        priors = self._priors(user, item_ids) if "prompt" in self.config.agents.prior else None
        return [
            rating_question(
                self.items[i], c, None if priors is None else float(priors[k]), self.lm.scale
            )
            for k, (i, c) in enumerate(zip(item_ids, contexts, strict=True))
        ]

    def _clean(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[tuple[str, list[str]]]:
        """``(user_id, item_ids)`` requests with string ids, each checked (:meth:`_check`)."""
        clean = [(str(u), [str(i) for i in items]) for u, items in requests]
        for user, items in clean:
            self._check(user, items)
        return clean

    def _require_ratings(self) -> None:
        """Refuse a rating question of agents whose log has no ratings."""
        if not self.rates:
            raise ConfigError(
                "this run's log has no ratings (data.columns.rating = ''): its agents "
                "answer only the watch decision (watch_probabilities)"
            )

    def _loaded(self, modes: Sequence[AgentMode]) -> list[AgentMode]:
        """`modes` without repeats; refused unless every one is loaded."""
        missing = [m for m in modes if m not in self.modes]
        if missing:
            raise ConfigError(
                f"mode(s) {', '.join(missing)} not loaded (loaded: {', '.join(self.modes)}); "
                "pass them to from_workdir(also=...)"
            )
        return list(dict.fromkeys(modes))
