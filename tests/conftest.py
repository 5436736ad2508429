"""Shared fixtures: synthetic logs on disk, an in-process CLI runner, and a small trained
run folder (template profiles, tiny LoRA adapters) shared by the agent and simulation
tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from personasim import run_pipeline
from personasim.cli import main
from personasim.config import load_config
from personasim.pipeline import IngestStage, PersonasStage, ProfileStage, TrainStage
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


AGENT_STAGES = (IngestStage, ProfileStage, PersonasStage, TrainStage)


def agent_config(log_files, **agents):
    """A config that trains tiny adapters on the synthetic log."""
    ratings, items, users = log_files
    return load_config(
        [
            (
                "test",
                {
                    "seed": 1,
                    "data": {
                        "dataset": "custom",
                        "path": str(ratings),
                        "items_path": str(items),
                        "users_path": str(users),
                    },
                    "split": {"users": 12, "min_ratings": 20, "max_ratings": 0},
                    "llm": {"backend": "template"},
                    "personas": {"k": 2, "min_size": 2, "n_init": 2},
                    "evaluate": {
                        "mf_epochs": 3,
                        "agent_pairs_per_user": 3,
                        "bootstrap_rounds": 200,
                        "taste_candidates": 4,
                        "taste_ratios": [1, 3],
                        "taste_users": 4,
                        "free_generation_pairs": 3,
                        "free_generation_tokens": 4,
                        "without_rationales": True,
                    },
                    "agents": {
                        "max_examples_per_adapter": 12,
                        "epochs": 1,
                        "items_per_pack": 4,
                        "users_per_step": 2,
                        **agents,
                    },
                },
            )
        ]
    )


@pytest.fixture(scope="session")
def make_agent_config():
    """The function building the tiny agent configuration."""
    return agent_config


@pytest.fixture(scope="session")
def agent_log_files(small_log, tmp_path_factory):
    return small_log.write_csv(tmp_path_factory.mktemp("agent-log"))


@pytest.fixture(scope="session")
def trained_run(agent_log_files, tmp_path_factory):
    """Ingest, template profiles, 2 personas, global + persona adapters (a few steps)."""
    workdir = tmp_path_factory.mktemp("trained")
    run_pipeline(workdir, agent_config(agent_log_files), stages=AGENT_STAGES)
    return workdir
