"""The HTTP service over a trained run: rate, watch, sessions, personas, health.

Concurrent `rate` and `watch` requests are gathered by a :class:`DynamicBatcher` into
mixed-persona model calls. A cold-start user is given by a profile text instead of a
user id and placed in the nearest persona. Errors are JSON: ``{"error": {"code",
"message"}}``. API keys come from ``PERSONASIM_API_KEYS`` (comma-separated), are sent as
``Authorization: Bearer KEY``, compared in constant time, and never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import threading
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import cachetools
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator

from personasim.errors import ConfigError
from personasim.serve.batching import DynamicBatcher

__all__ = ["ServeSettings", "create_app", "parse_api_keys"]

logger = logging.getLogger(__name__)

MAX_ITEMS = 200
COLD_PREFIX = "cold:"
_COLD_CACHE = 1_000


class ServeSettings(BaseModel):
    """How the service runs."""

    model_config = ConfigDict(extra="forbid")

    api_keys: list[str] = []
    """Accepted keys; empty accepts every request (only sensible on loopback)."""
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    """Larger request bodies are refused with 413."""
    batch_window_ms: float = Field(10.0, ge=0.0)
    """How long a request waits for others to share its model call."""
    max_described_items: int = Field(10_000, ge=1)
    """Items the catalogue lacks that one API key may have described and kept (least
    recently used forgotten first; the agents forget an item no key keeps)."""
    max_batch: int | None = Field(None, ge=1)
    """Most requests per model call; None: 64 on a GPU, 1 (no batching) on a CPU, where
    gathering requests measured slower (docs/serving.md)."""

    def batch_limit(self) -> int:
        """`max_batch`, or its default for the device the agents run on."""
        if self.max_batch is not None:
            return self.max_batch
        from personasim.llm.device import pick_device

        return 64 if pick_device("auto") == "cuda" else 1


def parse_api_keys(value: str | None) -> list[str]:
    """Keys from a comma-separated string (``PERSONASIM_API_KEYS``), blanks dropped."""
    return [k.strip() for k in (value or "").split(",") if k.strip()]


ItemId = Annotated[str, Field(min_length=1, max_length=200)]


_ONE_USER = {
    "oneOf": [
        {"required": ["user_id"], "properties": {"user_id": {"type": "string"}}},
        {"required": ["profile"], "properties": {"profile": {"type": "string"}}},
    ]
}
"""The spec of what the validator checks: exactly one way to name the user."""

_SOME_ITEMS = {
    "anyOf": [
        {"required": ["item_ids"], "properties": {"item_ids": {"minItems": 1}}},
        {"required": ["items"], "properties": {"items": {"minItems": 1}}},
    ]
}
"""... and at least one item, by id or by description."""


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_USER)

    user_id: str | None = Field(None, min_length=1, max_length=200)
    """A simulated user of the run."""
    profile: str | None = Field(None, min_length=1, max_length=4000)
    """A cold-start user's profile text (placed in the nearest persona)."""

    @model_validator(mode="after")
    def _one_user(self) -> _Query:
        if (self.user_id is None) == (self.profile is None):
            raise ValueError("give exactly one of user_id and profile")
        return self


class NewItem(BaseModel):
    """An item the catalogue lacks, described by what the agents read of an item."""

    model_config = ConfigDict(extra="forbid")

    # a character that is whitespace to none of the schema's readers: Python's strip also
    # drops \x1c-\x1f and \x85, which JSON Schema's (ECMA) \s does not name
    title: str = Field(min_length=1, max_length=300, pattern=r"[^\s\x1c-\x1f\x85]")
    year: int | None = Field(None, ge=1800, le=2200)
    genres: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(
        default_factory=list, max_length=20
    )


class ItemsQuery(_Query):
    """A user and the items to score: catalogue ids, descriptions of new items, or both
    (the answers follow ``item_ids``, then ``items``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": [_ONE_USER, _SOME_ITEMS]})

    item_ids: list[ItemId] = Field(default_factory=list, max_length=MAX_ITEMS)
    items: list[NewItem] = Field(default_factory=list, max_length=MAX_ITEMS)

    @model_validator(mode="after")
    def _some_items(self) -> ItemsQuery:
        if not self.item_ids and not self.items:
            raise ValueError("give item_ids, items (descriptions of new items), or both")
        return self


class SessionQuery(_Query):
    """A user and the ranked list a recommender would show."""

    ranked_item_ids: list[ItemId] = Field(min_length=1, max_length=1000)
    page_size: int = Field(4, ge=1, le=50)
    max_pages: int = Field(5, ge=1, le=50)
    decisions: Literal["sample", "threshold"] = "sample"
    seed: int = 0


class RateAnswer(BaseModel):
    """Predicted ratings (expectations over the log's rating scale), the likeliest
    ratings, and the persona that answered."""

    user_id: str
    persona: str | None
    ratings: list[float]
    argmax: list[float]


class WatchAnswer(BaseModel):
    """Watch probabilities and the persona that answered."""

    user_id: str
    persona: str | None
    probabilities: list[float]


class SessionAnswer(BaseModel):
    """The simulated session: one event per item shown, and the summary."""

    user_id: str
    persona: str | None
    events: list[dict[str, Any]]
    session: dict[str, Any]


class ErrorDetail(BaseModel):
    """What went wrong: a stable code and a message for people."""

    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer."""

    error: ErrorDetail


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (401, "missing or wrong API key"),
        (404, "unknown user or items"),
        (413, "request body too large"),
        (422, "invalid request"),
        (500, "internal error"),
        (503, "the agents are still loading (or failed to load)"),
    )
}


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


class _BodyLimit:
    """ASGI middleware: refuse bodies over `limit` bytes (declared or streamed)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = _error(413, "body_too_large", f"request body over {self.limit} bytes")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await too_big(scope, receive, send)
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _ApiError(413, "body_too_large", f"request body over {self.limit} bytes")
            return message

        await self.app(scope, limited, send)


def _key_matches(credentials: HTTPAuthorizationCredentials | None, keys: list[bytes]) -> bool:
    """Whether the bearer token is one of `keys`, compared with every key (no early exit:
    the time does not tell which matched)."""
    given = credentials.credentials.strip().encode() if credentials else b""
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(given, key)
    return ok


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
                raise _ApiError(503, "load_failed", f"the agents failed to load: {self.load_error}")
            raise _ApiError(503, "loading", "the agents are loading; retry shortly")
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

        profiles = read_parquet(self.workdir / "profiles" / "profiles.parquet")
        self._activity = dict(
            zip(profiles["user_id"].astype(str), profiles["activity"], strict=True)
        )

    def persona_of(self, user: str) -> str | None:
        """The persona whose adapter answers for `user` (None outside persona mode)."""
        return self.agent.persona_of(user)

    def resolve(self, query: _Query) -> str:
        """The user id to score: the given one (checked) or a cold-start user's."""
        if query.user_id is not None:
            if not self.agent.knows_user(query.user_id) or self.agent.is_added(query.user_id):
                raise _ApiError(404, "unknown_user", f"user {query.user_id!r} is not in this run")
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
            raise _ApiError(422, "invalid_request", str(e)) from None
        return [*query.item_ids, *described]

    def described_count(self) -> int:
        """Described items the agents hold."""
        return sum(1 for it in self.agent.items.values() if it.get("described"))

    def check_items(self, items: Sequence[str]) -> None:
        """Refuse item ids the run does not know."""
        unknown = [i for i in items if not self.agent.knows_item(i)]
        if unknown:
            raise _ApiError(
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


def create_app(service: AgentService, settings: ServeSettings) -> Any:
    """The FastAPI application over `service`."""

    batcher: DynamicBatcher[tuple[str, str, list[str]], Any] = DynamicBatcher(
        service.score, window_s=settings.batch_window_ms / 1000, max_batch=settings.batch_limit()
    )
    keys = [k.encode() for k in settings.api_keys]

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="personasim agents",
        version="1",
        description="Simulated users of a personasim run: ratings, watch decisions, sessions.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.service = service
    service.described_limit = settings.max_described_items

    bearer = HTTPBearer(auto_error=False)

    def authorised(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> str:
        """The caller's key ("" when the service has none)."""
        if not keys:
            return ""
        if not _key_matches(credentials, keys):
            raise _ApiError(
                401, "unauthorized", "missing or wrong API key (Authorization: Bearer KEY)"
            )
        assert credentials is not None
        return credentials.credentials.strip()

    @app.exception_handler(_ApiError)
    async def api_error(_: Request, e: _ApiError) -> Any:
        return _error(e.status, e.code, e.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> Any:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(422, "invalid_request", f"{where or 'body'}: {first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    async def crashed(_: Request, e: Exception) -> Any:
        logger.exception("request failed")
        return _error(500, "internal", f"{type(e).__name__}: the request could not be served")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness, answered at once and without a key: "ok" when the agents are ready,
        "loading" while they load, "error" when they failed to (details in the log and,
        with a key, on /readyz)."""
        state = service.state
        return {"status": {"ready": "ok", "loading": "loading"}.get(state, "error")}

    @app.get("/readyz", responses=_ERRORS)
    async def readyz(request: Request) -> dict[str, Any]:
        """Readiness: 200 once the agents answer, 503 while they load (or failed to).
        With a valid key (or when the service has none): the agents, the model calls
        and the requests served, and why loading failed."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = (
            HTTPAuthorizationCredentials(scheme=scheme, credentials=token)
            if scheme.lower() == "bearer"
            else None
        )
        detailed = not keys or _key_matches(given, keys)
        if service.state != "ready":
            if service.state == "loading":
                raise _ApiError(503, "loading", "the agents are loading; retry shortly")
            why = f": {service.load_error}" if detailed else " (details with a key)"
            raise _ApiError(503, "load_failed", f"the agents failed to load{why}")
        if not detailed:
            return {"status": "ready"}
        return {
            "status": "ready",
            "mode": service.agent.mode,
            "users": service.agent.run_users,
            "batches": batcher.stats.batches,
            "requests": batcher.stats.requests,
            "described_items": service.described_count(),
            "cold_users": len(service.cold),
        }

    @app.get("/v1/personas", dependencies=[Depends(authorised)], responses=_ERRORS)
    async def personas() -> dict[str, Any]:
        """The personas and how many of the run's users each holds."""
        sizes = service.agent.persona_sizes()
        return {"personas": [{"name": p, "users": n} for p, n in sizes.items()]}

    @app.post("/v1/rate", responses=_ERRORS)
    async def rate(query: ItemsQuery, key: str = Depends(authorised)) -> RateAnswer:
        """Predicted ratings of items by a user (or a cold-start profile)."""
        if not getattr(service.agent, "rates", True):  # agents of a log without ratings
            raise _ApiError(
                422, "no_ratings", "this run's log has no ratings: ask /v1/watch instead"
            )
        user = await asyncio.to_thread(service.resolve, query)
        items = await asyncio.to_thread(service.item_ids, query, key)
        result = await batcher.submit(("rate", user, items))
        return RateAnswer(
            user_id=user,
            persona=service.persona_of(user),
            ratings=[float(v) for v in result["expected"]],
            argmax=[float(v) for v in result["argmax"]],
        )

    @app.post("/v1/watch", responses=_ERRORS)
    async def watch(query: ItemsQuery, key: str = Depends(authorised)) -> WatchAnswer:
        """Probabilities that a user (or a cold-start profile) would watch the items."""
        user = await asyncio.to_thread(service.resolve, query)
        items = await asyncio.to_thread(service.item_ids, query, key)
        result = await batcher.submit(("watch", user, items))
        return WatchAnswer(
            user_id=user, persona=service.persona_of(user), probabilities=[float(v) for v in result]
        )

    @app.post("/v1/sessions", dependencies=[Depends(authorised)], responses=_ERRORS)
    async def sessions(query: SessionQuery) -> SessionAnswer:
        """A simulated session against a ranked list (pages, watch, rate, exit)."""
        user = await asyncio.to_thread(service.resolve, query)
        service.check_items(query.ranked_item_ids)
        events, summary = await asyncio.to_thread(service.session, user, query)
        return SessionAnswer(
            user_id=user,
            persona=service.persona_of(user),
            events=_records(events),
            session=_records(summary)[0],
        )

    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes)
    return app


def _records(frame: Any) -> list[dict[str, Any]]:
    import json

    return json.loads(frame.to_json(orient="records"))
