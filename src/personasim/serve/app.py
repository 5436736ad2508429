"""The HTTP routes over an :class:`~personasim.serve.service.AgentService`: rate, watch,
sessions, personas, health.

Concurrent `rate` and `watch` requests are gathered by a :class:`DynamicBatcher` into
mixed-persona model calls. API keys come from ``PERSONASIM_API_KEYS`` (comma-separated);
requests, answers and errors are the models of :mod:`personasim.serve.schemas`.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from personasim.serve.batching import DynamicBatcher
from personasim.serve.middleware import ApiError, BodyLimit, add_error_handlers, key_matches
from personasim.serve.schemas import (
    ERROR_RESPONSES,
    ItemsQuery,
    RateAnswer,
    SessionAnswer,
    SessionQuery,
    WatchAnswer,
)
from personasim.serve.service import AgentService
from personasim.serve.settings import ServeSettings

__all__ = ["create_app"]


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
        if not key_matches(credentials, keys):
            raise ApiError(
                401, "unauthorized", "missing or wrong API key (Authorization: Bearer KEY)"
            )
        assert credentials is not None
        return credentials.credentials.strip()

    add_error_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        """Liveness, answered at once and without a key: "ok" when the agents are ready,
        "loading" while they load, "error" when they failed to (details in the log and,
        with a key, on /readyz)."""
        state = service.state
        return {"status": {"ready": "ok", "loading": "loading"}.get(state, "error")}

    @app.get("/readyz", responses=ERROR_RESPONSES)
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
        detailed = not keys or key_matches(given, keys)
        if service.state != "ready":
            if service.state == "loading":
                raise ApiError(503, "loading", "the agents are loading; retry shortly")
            why = f": {service.load_error}" if detailed else " (details with a key)"
            raise ApiError(503, "load_failed", f"the agents failed to load{why}")
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

    @app.get("/v1/personas", dependencies=[Depends(authorised)], responses=ERROR_RESPONSES)
    async def personas() -> dict[str, Any]:
        """The personas and how many of the run's users each holds."""
        sizes = service.agent.persona_sizes()
        return {"personas": [{"name": p, "users": n} for p, n in sizes.items()]}

    @app.post("/v1/rate", responses=ERROR_RESPONSES)
    async def rate(query: ItemsQuery, key: str = Depends(authorised)) -> RateAnswer:
        """Predicted ratings of items by a user (or a cold-start profile)."""
        if not getattr(service.agent, "rates", True):  # agents of a log without ratings
            raise ApiError(
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

    @app.post("/v1/watch", responses=ERROR_RESPONSES)
    async def watch(query: ItemsQuery, key: str = Depends(authorised)) -> WatchAnswer:
        """Probabilities that a user (or a cold-start profile) would watch the items."""
        user = await asyncio.to_thread(service.resolve, query)
        items = await asyncio.to_thread(service.item_ids, query, key)
        result = await batcher.submit(("watch", user, items))
        return WatchAnswer(
            user_id=user, persona=service.persona_of(user), probabilities=[float(v) for v in result]
        )

    @app.post("/v1/sessions", dependencies=[Depends(authorised)], responses=ERROR_RESPONSES)
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

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


def _records(frame: Any) -> list[dict[str, Any]]:
    import json

    return json.loads(frame.to_json(orient="records"))
