"""The agents behind the routes: loading them, resolving users (cold start included),
describing new items, and the model calls of a batch or a session.

A cold-start user is given by a profile text instead of a user id and placed in the
nearest persona; items the catalogue lacks are described and kept per API key.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cachetools

from personasim.errors import ConfigError
from personasim.run_folder import PROFILES
from personasim.serve.middleware import ApiError
from personasim.serve.schemas import ItemsQuery, SessionQuery, UserQuery
from personasim.workspace import Workspace

__all__ = ["COLD_PREFIX", "AgentService"]

logger = logging.getLogger(__name__)

COLD_PREFIX = "cold:"
_COLD_CACHE = 1_000


class _ForgettingLRU(cachetools.LRUCache):  # type: ignore[type-arg]
    """An LRU cache (cold-start users, described items) that calls `forget` with each
    key it evicts."""

    def __init__(self, maxsize: int, forget: Any) -> None:
        super().__init__(maxsize)
        self._forget = forget

    def popitem(self) -> tuple[str, Any]:
        """Evict the least recently used entry, and forget it."""
        key, value = super().popitem()
        self._forget(key)
        return key, value


class AgentService:
    """The agents, their lock and the cold-start placement behind the routes.

    Give the agents, or start with none and :meth:`load_in_background`: the service
    then answers ``/healthz`` at once and ``503 loading`` elsewhere until they are ready.
    """

    def __init__(
        self, agent: Any, workdir: Path, *, blend: bool = False, cold_cache: int = _COLD_CACHE
    ) -> None:
        self._agent = agent
        self._ready = threading.Event()
        if agent is not None:
            self._ready.set()
        self.load_error: str | None = None
        self.workdir = workdir
        self.blend = blend
        """Cold-start users answered by an adapter blended from their soft membership
        (else by their nearest persona's)."""
        self.lock = threading.Lock()  # one model call at a time (batches and sessions)
        self._personas: Any = None
        self._activity: dict[str, int] = {}
        self.cold = _ForgettingLRU(cold_cache, lambda user: self.agent.remove_user(user))
        self.described_limit = 10_000
        """Described items kept per API key (:attr:`ServeSettings.max_described_items`)."""
        self._described: dict[str, _ForgettingLRU] = {}
        self._evicted: list[str] = []  # described items some key no longer keeps
        """Cold-start users kept, at most `cold_cache` (the least recently asked for is
        forgotten first, with its blended adapter when no other user shares it)."""

    @property
    def agent(self) -> Any:
        """The agents; a 503 answer while they load (or failed to)."""
        if not self._ready.is_set():
            if self.load_error is not None:
                raise ApiError(503, "load_failed", f"the agents failed to load: {self.load_error}")
            raise ApiError(503, "loading", "the agents are loading; retry shortly")
        return self._agent

    @property
    def state(self) -> str:
        """ "ready", "loading" or "failed"."""
        if self._ready.is_set():
            return "ready"
        return "failed" if self.load_error is not None else "loading"

    def load_in_background(self, loader: Any) -> threading.Thread:
        """Call `loader()` (returning the agents) on a thread; the service is ready when
        it returns (and the users' activity is read)."""

        def load() -> None:
            try:
                agent = loader()
                self._agent = agent
                self.load_activity()
            except Exception as e:  # reported by /healthz and every route
                logger.exception("loading the agents failed")
                self.load_error = f"{type(e).__name__}: {e}"
                return
            self._ready.set()
            logger.info("agents ready")

        thread = threading.Thread(target=load, name="personasim-load-agents", daemon=True)
        thread.start()
        return thread

    def load_activity(self) -> None:
        """Activity levels of the run's users (session patience)."""
        from personasim.data.tables import read_parquet

        profiles = read_parquet(Workspace(self.workdir).require(PROFILES.profiles))
        self._activity = dict(
            zip(profiles["user_id"].astype(str), profiles["activity"], strict=True)
        )

    def persona_of(self, user: str) -> str | None:
        """The persona whose adapter answers for `user` (None outside persona mode)."""
        return self.agent.persona_of(user)

    def resolve(self, query: UserQuery) -> str:
        """The user id to score: the given one (checked) or a cold-start user's."""
        if query.user_id is not None:
            if not self.agent.knows_user(query.user_id) or self.agent.is_added(query.user_id):
                raise ApiError(404, "unknown_user", f"user {query.user_id!r} is not in this run")
            return query.user_id
        assert query.profile is not None
        key = COLD_PREFIX + hashlib.sha256(query.profile.encode()).hexdigest()[:16]
        if self.agent.knows_user(key):
            with self.lock:
                self.cold.get(key)  # recently used: forgotten last
        else:
            if self._personas is None:
                from personasim.personas.assignment import PersonaModel

                self._personas = PersonaModel.from_workdir(self.workdir)
            placed = self._personas.assign([query.profile])
            membership = dict(zip(self._personas.names, placed.membership[0], strict=True))
            with self.lock:  # a blended adapter changes the model
                self.cold[key] = self.agent.add_user(
                    key,
                    query.profile,
                    persona=placed.personas[0],
                    membership=membership,
                    blend=self.blend,
                )
        return key

    def item_ids(self, query: ItemsQuery, key: str = "") -> list[str]:
        """The query's catalogue ids (refused when unknown), then the ids of its described
        items, made known to the agents and kept for `key` (at most
        :attr:`described_limit` per key)."""
        self.check_items(query.item_ids)
        if not query.items:
            return list(query.item_ids)
        try:
            with self.lock:
                described = self.agent.describe_items([i.model_dump() for i in query.items])
                kept = self._described.get(key)
                if kept is None:
                    kept = _ForgettingLRU(self.described_limit, self._evicted.append)
                    self._described[key] = kept
                for item in described:
                    kept[item] = True
                others = self._described.values()
                gone = [i for i in self._evicted if not any(i in c for c in others)]
                self._evicted.clear()
                if gone:
                    self.agent.forget_items(gone)
        except ConfigError as e:
            raise ApiError(422, "invalid_request", str(e)) from None
        return [*query.item_ids, *described]

    def described_count(self) -> int:
        """Described items the agents hold."""
        return sum(1 for it in self.agent.items.values() if it.get("described"))

    def check_items(self, items: Sequence[str]) -> None:
        """Refuse item ids the run does not know."""
        unknown = [i for i in items if not self.agent.knows_item(i)]
        if unknown:
            raise ApiError(
                404, "unknown_items", f"{len(unknown)} unknown item id(s), e.g. {unknown[:3]}"
            )

    def score(self, batch: Sequence[tuple[str, str, list[str]]]) -> list[Any]:
        """One model call per kind for a batch of (kind, user, items) requests."""
        out: list[Any] = [None] * len(batch)
        with self.lock:
            for kind in ("rate", "watch"):
                idx = [k for k, (t, _, _) in enumerate(batch) if t == kind]
                if not idx:
                    continue
                asked = [(batch[k][1], batch[k][2]) for k in idx]
                if kind == "rate":
                    results = self.agent.rating_distributions(asked)
                else:
                    results = self.agent.watch_probabilities(asked)
                for k, result in zip(idx, results, strict=True):
                    out[k] = result
        return out

    def session(self, user: str, query: SessionQuery) -> tuple[Any, Any]:
        """Simulate one session (holds the model lock throughout)."""
        from personasim.config import SimulateConfig
        from personasim.simulation.sessions import pages_of, run_sessions

        cfg = SimulateConfig(
            page_size=query.page_size, max_pages=query.max_pages, decisions=query.decisions
        )
        pages = {user: pages_of(query.ranked_item_ids, set(), query.page_size, query.max_pages)}
        activity = {user: int(self._activity.get(user, 2))}
        scale = self.agent.rating_scale
        with self.lock:
            log = run_sessions(
                self.agent,
                pages,
                activity,
                cfg,
                seed=query.seed,
                label="api",
                scale=scale,
                rates=getattr(self.agent, "rates", True),
            )
        return log.events, log.sessions
