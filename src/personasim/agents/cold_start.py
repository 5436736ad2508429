"""Cold-start users: users the run did not simulate, added to the agents and forgotten.

:class:`ColdStartUsers` is the part of :class:`~personasim.agents.agent.UserAgent` that
keeps the users it answers for apart: the run's own, and those registered with
:meth:`~ColdStartUsers.add_user` (the service's users known only by a profile), each
answered for by its nearest persona's adapter or by one blended from its soft membership
of the personas (:meth:`~ColdStartUsers.blended_adapter`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from personasim.errors import ConfigError

__all__ = ["BLEND_PREFIX", "ColdStartUsers"]

BLEND_PREFIX = "blend-"
"""Name prefix of the adapters :meth:`ColdStartUsers.blended_adapter` makes."""


class ColdStartUsers:
    """The agents' users, the run's and the cold-start ones (a mixin of
    :class:`~personasim.agents.agent.UserAgent`, whose attributes below it reads and
    changes).

    Attributes:
        profiles: Each user's profile text.
        personas: The adapter answering for each user in persona mode.
        mode: "persona", "global" or "none".
        lm: The agents' model (blended adapters are added to and deleted from it).
        lm_weights: Each adapter's rating LM weight.
        watch_lm_weights: Each adapter's watch LM weight.
    """

    profiles: dict[str, str]
    personas: dict[str, str]
    mode: str
    lm: Any
    lm_weights: dict[str, float]
    watch_lm_weights: dict[str, float]
    _added: set[str]  # users added with add_user
    _adapter: Callable[..., str]  # the adapter answering for a user

    def prior_stand_ins(self, user: str) -> list[str]:
        """The run users whose watch prior stands for a cold user's: the members of its
        persona (in persona mode), else every run user."""
        persona = self.personas.get(user)
        return [
            u
            for u, p in self.personas.items()
            if u not in self._added and (persona is None or p == persona)
        ] or [u for u in self.profiles if u not in self._added]

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
        """Register a user who was not simulated in the run (cold start).

        Args:
            user_id: The id to score it by (must not be a run user's).
            profile_text: Its profile (as the profile stage writes them).
            persona: Its nearest persona (persona mode).
            membership: Its soft membership of the personas (persona -> weight).
            blend: Answer with an adapter blended from the `top` personas of
                `membership` (:meth:`blended_adapter`) instead of the nearest one.
            top: Personas in a blend.

        Returns:
            The adapter that answers for the user.
        """
        if user_id in self.profiles and user_id not in self._added:
            raise ConfigError(f"user {user_id!r} is a simulated user of the run")
        self.profiles[user_id] = profile_text
        self._added.add(user_id)
        if self.mode != "persona":
            return self._adapter(user_id)
        if blend and membership:
            adapter = self.blended_adapter(membership, top=top)
        elif persona is not None:
            adapter = persona
        else:
            raise ConfigError(f"user {user_id!r}: give its persona or its membership")
        self.personas[user_id] = adapter
        return adapter

    def remove_user(self, user_id: str) -> None:
        """Forget a user added by :meth:`add_user`, with its profile's tokens and prefix
        states; a blended adapter no other user answers through is deleted from the
        model (and its cached prefix states).

        Raises:
            ConfigError: `user_id` is a run user, or unknown.
        """
        if user_id not in self._added:
            raise ConfigError(f"user {user_id!r} was not added with add_user")
        self._added.discard(user_id)
        profile = self.profiles.pop(user_id, None)
        if profile is not None:  # its tokens and prefix states (recomputed if shared)
            self.lm.forget_prefix(profile)
        adapter = self.personas.pop(user_id, None)
        if adapter is None or not adapter.startswith(BLEND_PREFIX):
            return
        if adapter in set(self.personas.values()):
            return  # another user answers through it
        self.lm.model.delete_adapter(adapter)
        self.lm_weights.pop(adapter, None)
        self.watch_lm_weights.pop(adapter, None)
        for key in [k for k in self.lm.prefix_states_cache if k[0] == adapter]:
            self.lm.prefix_states_cache.pop(key, None)

    def knows_user(self, user_id: str) -> bool:
        """Whether `user_id` can be scored (a run user, or one added with add_user)."""
        return user_id in self.profiles

    def is_added(self, user_id: str) -> bool:
        """Whether `user_id` was added with :meth:`add_user` (not a run user)."""
        return user_id in self._added

    def persona_of(self, user_id: str) -> str | None:
        """The adapter answering for `user_id` in persona mode (its persona, or a blend);
        None in the other modes or for an unknown user."""
        return self.personas.get(user_id) if self.mode == "persona" else None

    def persona_sizes(self) -> dict[str, int]:
        """How many of the run's own users each persona holds."""
        sizes: dict[str, int] = {}
        for user, persona in self.personas.items():
            if user not in self._added:
                sizes[persona] = sizes.get(persona, 0) + 1
        return dict(sorted(sizes.items()))

    @property
    def run_users(self) -> int:
        """How many of the run's own users the agents know."""
        return len(self.profiles) - len(self._added)

    def blended_adapter(self, membership: dict[str, float], top: int = 3) -> str:
        """An adapter whose weight update is the membership-weighted sum of the `top`
        personas' updates (PEFT's "cat" combination: exact, rank = the sum of ranks).

        Weights are renormalised over the kept personas and rounded to whole percents,
        so users of similar membership share one blended adapter.
        """
        kept = sorted(membership.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        total = sum(w for _, w in kept) or 1.0
        percents = [(p, round(100 * w / total)) for p, w in kept]
        percents = [(p, w) for p, w in percents if w > 0]
        if len(percents) == 1:
            return percents[0][0]
        name = BLEND_PREFIX + "-".join(f"{p}_{w}" for p, w in percents)
        model = self.lm.model
        if name not in model.peft_config:
            norm = sum(w for _, w in percents)
            model.add_weighted_adapter(
                adapters=[p for p, _ in percents],
                weights=[w / norm for _, w in percents],
                adapter_name=name,
                combination_type="cat",
            )
            for weights in (self.lm_weights, self.watch_lm_weights):
                weights[name] = sum(w * weights.get(p, 1.0) for p, w in percents) / norm
        return name
