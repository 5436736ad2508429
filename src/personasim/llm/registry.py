"""Generator backends registered by name; plug-ins join through an entry point.

A plug-in package declares, in its pyproject::

    [project.entry-points."personasim.generators"]
    mybackend = "mypackage.module:factory"

where ``factory(config: LLMConfig) -> TextGenerator``. Built-in backends register the
same way (with :func:`register_generator`), so a plug-in is a first-class citizen.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable

from personasim.config import LLMConfig
from personasim.errors import ConfigError
from personasim.llm.base import TextGenerator

__all__ = ["available_generators", "create_generator", "register_generator"]

logger = logging.getLogger(__name__)

GeneratorFactory = Callable[[LLMConfig], TextGenerator]
_FACTORIES: dict[str, GeneratorFactory] = {}
_ENTRY_POINT_GROUP = "personasim.generators"


def register_generator(name: str) -> Callable[[GeneratorFactory], GeneratorFactory]:
    """Register a generator factory (a class or function taking an `LLMConfig`)."""

    def decorate(factory: GeneratorFactory) -> GeneratorFactory:
        _FACTORIES[name] = factory
        return factory

    return decorate


def _load_builtins_and_plugins() -> None:
    # Importing the modules registers the built-in backends; heavy libraries load
    # only when a backend is created.
    from personasim.llm import hf, llamacpp, openai_compat, template  # noqa: F401

    for entry in importlib.metadata.entry_points(group=_ENTRY_POINT_GROUP):
        if entry.name not in _FACTORIES:
            try:
                _FACTORIES[entry.name] = entry.load()
            except Exception as e:  # noqa: BLE001 - a broken plug-in must not break the rest
                logger.warning("generator plug-in %r failed to load: %s", entry.name, e)


def available_generators() -> list[str]:
    """Names of every registered backend."""
    _load_builtins_and_plugins()
    return sorted(_FACTORIES)


def create_generator(config: LLMConfig) -> TextGenerator:
    """Build the backend named by `config.backend`.

    Raises:
        ConfigError: No backend has that name.
    """
    _load_builtins_and_plugins()
    factory = _FACTORIES.get(config.backend)
    if factory is None:
        raise ConfigError(
            f"llm.backend: no generator named {config.backend!r} "
            f"(available: {', '.join(sorted(_FACTORIES))})"
        )
    return factory(config)
