"""Shared fixtures: synthetic logs on disk and an in-process CLI runner."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from personasim.cli import main
from personasim.testing import SyntheticLog, synthetic_log

os.environ.setdefault("PERSONASIM_PROGRESS", "0")


@dataclass
class CliResult:
    """Exit code and everything the command printed."""

    code: int
    output: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    """Run `personasim ARGS...` in-process; returns a :class:`CliResult`."""

    def run(*args: str | Path) -> CliResult:
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as e:
            code = int(e.code or 0)
        captured = capsys.readouterr()
        return CliResult(code=code, output=" ".join((captured.out + captured.err).split()))

    return run


@pytest.fixture(scope="session")
def small_log() -> SyntheticLog:
    """60 users, 120 items, 20-40 ratings each, 3 latent personas."""
    return synthetic_log(seed=0)


@pytest.fixture
def log_files(small_log: SyntheticLog, tmp_path: Path) -> tuple[Path, Path, Path]:
    """The small log written as ratings.csv, items.csv, users.csv."""
    return small_log.write_csv(tmp_path / "log")


@pytest.fixture(scope="session")
def log_config():
    """``log_config(files, **sections)``: a run configuration over a synthetic log written
    by :meth:`SyntheticLog.write_csv`, with template profiles and `sections` on top."""
    from personasim.config import load_config

    def build(files: tuple[Path, Path, Path], **sections):
        ratings, items, users = files
        data = {
            "dataset": "custom",
            "path": str(ratings),
            "items_path": str(items),
            "users_path": str(users),
        }
        return load_config([("test", {"llm": {"backend": "template"}, "data": data, **sections})])

    return build
