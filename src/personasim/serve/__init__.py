"""The HTTP service for user agents (`personasim serve`)."""

from __future__ import annotations

from personasim.serve.app import create_app
from personasim.serve.batching import BatchStats, DynamicBatcher
from personasim.serve.service import AgentService
from personasim.serve.settings import ServeSettings, parse_api_keys

__all__ = [
    "AgentService",
    "BatchStats",
    "DynamicBatcher",
    "ServeSettings",
    "create_app",
    "parse_api_keys",
]
