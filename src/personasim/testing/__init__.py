"""Helpers for testing personasim and code built on it: synthetic logs with known
structure and a scripted text generator."""

from __future__ import annotations

from personasim.testing.fakes import FakeGenerator
from personasim.testing.synthetic import GENRES, SyntheticLog, synthetic_log, write_large_log

__all__ = ["GENRES", "FakeGenerator", "SyntheticLog", "synthetic_log", "write_large_log"]
