"""`personasim serve`: the agents of a trained run as an HTTP service."""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Annotated

import typer

from personasim.cli._common import WorkdirOpt
from personasim.config import AGENT_ADAPTERS
from personasim.errors import ConfigError

__all__ = ["serve"]

logger = logging.getLogger(__name__)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    workdir: WorkdirOpt,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8000,
    agent: Annotated[
        str,
        typer.Option(
            "--agent",
            "--mode",
            help='Agents: "persona-lora" (default), "global-lora" or "zero-shot", the names '
            "of evaluate.agents and simulate.agent (the older persona, global, none too).",
        ),
    ] = "persona-lora",
    batch_window_ms: Annotated[
        float, typer.Option(help="How long a request waits to share a model call.", min=0)
    ] = 10.0,
    max_batch: Annotated[
        int | None,
        typer.Option(
            help="Most requests per model call (default: 64 on a GPU, 1 on a CPU, where "
            "batching measured slower).",
            min=1,
        ),
    ] = None,
    max_body_kb: Annotated[int, typer.Option(help="Largest request body (KiB).", min=1)] = 256,
    max_described_items: Annotated[
        int,
        typer.Option(help="Described new items kept per API key (least recently used go).", min=1),
    ] = 10_000,
    max_cold_users: Annotated[
        int,
        typer.Option(
            help="Cold-start users kept, with their blended adapters (~4 MB each with --blend).",
            min=1,
        ),
    ] = 1_000,
    blend: Annotated[
        bool,
        typer.Option(
            "--blend",
            help="Cold-start users get an adapter blended from their soft persona membership "
            "(default: their nearest persona's).",
        ),
    ] = False,
) -> None:
    """Serve the run's user agents over HTTP (OpenAPI spec at /openapi.json).

    API keys come from PERSONASIM_API_KEYS (comma-separated; clients send
    "Authorization: Bearer KEY"). Without keys the service only listens on loopback.
    """
    import uvicorn

    from personasim.agents import UserAgent
    from personasim.serve import AgentService, ServeSettings, create_app, parse_api_keys

    mode = AGENT_ADAPTERS.get(agent, agent)
    if mode not in AGENT_ADAPTERS.values():
        raise typer.BadParameter(
            f"{agent!r}: use {', '.join(AGENT_ADAPTERS)}", param_hint="--agent"
        )
    keys = parse_api_keys(os.environ.get("PERSONASIM_API_KEYS"))
    if not keys and not _loopback(host):
        raise ConfigError(
            f"refusing to serve on {host} without API keys: set PERSONASIM_API_KEYS "
            "(comma-separated) or listen on 127.0.0.1"
        )
    if not keys:
        logger.warning("no API keys (PERSONASIM_API_KEYS): every request is accepted")
    # The server answers /healthz ("loading") at once; the routes wait for the agents.
    service = AgentService(None, workdir, blend=blend, cold_cache=max_cold_users)
    service.load_in_background(
        lambda: UserAgent.from_workdir(workdir, mode=mode)  # type: ignore[arg-type]
    )
    settings = ServeSettings(
        api_keys=keys,
        max_body_bytes=max_body_kb * 1024,
        batch_window_ms=batch_window_ms,
        max_batch=max_batch,
        max_described_items=max_described_items,
    )
    app = create_app(service, settings)
    logger.info("serving %s (%s agents) on http://%s:%d", workdir, mode, host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
