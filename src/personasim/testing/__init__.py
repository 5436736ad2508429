"""Helpers for testing personasim and code built on it: synthetic logs with known structure."""

from __future__ import annotations

from personasim.testing.synthetic import GENRES, SyntheticLog, synthetic_log

__all__ = ["GENRES", "SyntheticLog", "synthetic_log"]
