"""The HTTP service for user agents (`personasim serve`)."""

from __future__ import annotations

from personasim.serve.app import AgentService, ServeSettings, create_app, parse_api_keys
from personasim.serve.batching import BatchStats, DynamicBatcher

__all__ = [
    "AgentService",
    "BatchStats",
    "DynamicBatcher",
    "ServeSettings",
    "create_app",
    "parse_api_keys",
]
