"""personasim: simulated users from a recommender system's interaction log.

The Python API mirrors the CLI: :class:`Workspace` is a run folder,
:class:`RunConfig` its configuration and :func:`run_pipeline` runs every stage;
:class:`UserAgent` loads the trained agents of a run folder.
"""

from __future__ import annotations

from personasim._version import __version__
from personasim.agents import UserAgent
from personasim.config import RunConfig
from personasim.errors import ConfigError, DataError, PersonaSimError, StageError
from personasim.pipeline import run_pipeline
from personasim.workspace import Workspace

__all__ = [
    "ConfigError",
    "DataError",
    "PersonaSimError",
    "RunConfig",
    "StageError",
    "UserAgent",
    "Workspace",
    "__version__",
    "run_pipeline",
]
