"""A small trained run folder shared by the agent tests (template profiles, tiny LoRA)."""

from __future__ import annotations

import pytest

from personasim import run_pipeline
from personasim.config import load_config
from personasim.pipeline import IngestStage, PersonasStage, ProfileStage, TrainStage

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
