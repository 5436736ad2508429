"""Helpers for testing personasim and code built on it: synthetic logs with known
structure, a scripted text generator, and a child process for native code that may crash."""

from __future__ import annotations

from personasim.testing.fakes import FakeGenerator
from personasim.testing.isolation import ChildCrashed, ChildFailed, run_in_child
from personasim.testing.synthetic import GENRES, SyntheticLog, synthetic_log, write_large_log

__all__ = [
    "GENRES",
    "ChildCrashed",
    "ChildFailed",
    "FakeGenerator",
    "SyntheticLog",
    "run_in_child",
    "synthetic_log",
    "write_large_log",
]
