"""Helpers for testing personasim and code built on it: synthetic logs with known
structure, a tiny randomly initialised model of SmolLM2's architecture, a scripted text
generator, scripted agents, and a child process for native code that may crash."""

from __future__ import annotations

from personasim.testing.fakes import FakeGenerator
from personasim.testing.isolation import ChildCrashed, ChildFailed, run_in_child
from personasim.testing.scripted_agents import ScriptedAgents
from personasim.testing.synthetic import GENRES, SyntheticLog, synthetic_log, write_large_log
from personasim.testing.tiny_model import TINY_SHAPE, write_tiny_model

__all__ = [
    "GENRES",
    "ChildCrashed",
    "ChildFailed",
    "FakeGenerator",
    "ScriptedAgents",
    "SyntheticLog",
    "TINY_SHAPE",
    "run_in_child",
    "synthetic_log",
    "write_large_log",
    "write_tiny_model",
]
