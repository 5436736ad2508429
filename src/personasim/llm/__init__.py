"""Frozen language-model backends behind one protocol, registered by name."""

from __future__ import annotations

from personasim.llm.base import GenerationRequest, Message, TextGenerator
from personasim.llm.registry import available_generators, create_generator, register_generator

__all__ = [
    "GenerationRequest",
    "Message",
    "TextGenerator",
    "available_generators",
    "create_generator",
    "register_generator",
]
