"""kill -9 in the middle of profile, train and evaluate, then resume: the artifacts are
those of an uninterrupted run with the same seed, byte for byte.

Each test makes one uninterrupted reference run in this process; the killed run is a
child process (`personasim STAGE`) that kill -9s itself at a fixed point of the work
(after a save, a checkpoint), so the kill falls at the same place on a fast machine
and a slow one; the resume runs here again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from personasim import run_pipeline
from personasim.config import load_config
from personasim.pipeline import EvaluateStage, IngestStage, PersonasStage, ProfileStage, TrainStage

pytestmark = pytest.mark.slow

UPSTREAM = (IngestStage, ProfileStage, PersonasStage)


def _config(log_files, tiny_model, **sections):
    ratings, items, users = log_files
    base = {
        "seed": 3,
        "data": {
            "dataset": "custom",
            "path": str(ratings),
            "items_path": str(items),
            "users_path": str(users),
        },
        "split": {"users": 10, "min_ratings": 20, "max_ratings": 0},
        "llm": {"backend": "template"},
        "personas": {"k": 2, "min_size": 2, "n_init": 2},
        # one pack per step: an adapter takes several steps, so a kill falls inside one
        "agents": {
            "base_model": str(tiny_model),
            "max_examples_per_adapter": 12,
            "epochs": 1,
            "items_per_pack": 4,
            "users_per_step": 1,
        },
        "evaluate": {
            "agents": ["persona-lora", "global-lora"],
            "baselines": ["global_mean"],
            "taste": False,
            "free_generation_pairs": 0,
            "without_rationales": False,
            "agent_pairs_per_user": 3,
        },
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return load_config([("test", base)])


TIMINGS = {"seconds", "precompute_seconds", "examples_per_s", "wall_time_s"}


def _without_timings(value):
    if isinstance(value, dict):
        return {
            k: _without_timings(v)
            for k, v in value.items()
            if k not in TIMINGS and not k.endswith(("seconds", "_s"))
        }
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _digests(folder: Path) -> dict[str, str]:
    """sha256 of every artifact of a stage folder; JSON files without their timings (wall
    seconds differ between any two runs), the manifest aside."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.name == "manifest.json":
            continue
        data = p.read_bytes()
        if p.suffix == ".json":
            data = json.dumps(_without_timings(json.loads(data)), sort_keys=True).encode()
        out[str(p.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return out


def _checkpoints(workdir: Path, stage: str, pattern: str) -> list[Path]:
    # not the hidden folders an adapter is written into before its rename
    root = workdir / ".checkpoints" / stage
    found = root.glob(pattern)
    return [p for p in found if not any(x.startswith(".") for x in p.relative_to(root).parts)]


# Killed in the second adapter's training, right after its second save of progress
# (saved every step): the first adapter is finished, the second half trained.
IN_THE_SECOND_ADAPTER = """
import personasim.agents.training as training
import personasim.agents.training_progress as training_progress
training.SAVE_EVERY_S = 0.0
real, saves = training_progress.TrainingProgress.save, []
def save(self, *args, **kwargs):
    real(self, *args, **kwargs)
    saves.append(self.seed)
    if len(set(saves)) == 2 and saves.count(self.seed) == 2:
        kill()
training_progress.TrainingProgress.save = save
"""

# Killed once the persona agents' answers are checkpointed (the global one's are not).
AFTER_THE_PERSONA_AGENTS = """
from personasim.evaluation.checkpoints import UnitStore
real = UnitStore.save
def save(self, name, *args, **kwargs):
    real(self, name, *args, **kwargs)
    if name == "persona-lora":
        kill()
UnitStore.save = save
"""


def test_killed_train_and_evaluate_resume_to_the_uninterrupted_artifacts(
    log_files, tiny_model, killed_cli, tmp_path, caplog
):
    config = _config(log_files, tiny_model)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run_pipeline(whole, config, stages=(*UPSTREAM, TrainStage, EvaluateStage))
    run_pipeline(killed, config, stages=UPSTREAM)

    killed_cli(IN_THE_SECOND_ADAPTER, "train", "--workdir", killed)
    finished = _checkpoints(killed, "adapters", "*/*/training.json")
    assert len(finished) == 1 and len(_checkpoints(killed, "adapters", "*/*.progress.pt")) == 1
    assert not (killed / "adapters" / "manifest.json").exists()
    with caplog.at_level(logging.INFO, logger="personasim"):
        run_pipeline(killed, config, stages=(*UPSTREAM, TrainStage))
    assert "restored from checkpoint" in caplog.text
    assert not _checkpoints(killed, "adapters", "*/*.progress.pt")
    assert _digests(killed / "adapters") == _digests(whole / "adapters")

    killed_cli(AFTER_THE_PERSONA_AGENTS, "evaluate", "--workdir", killed)
    assert _checkpoints(killed, "eval", "*/r*/persona-lora.parquet")
    assert not _checkpoints(killed, "eval", "*/r*/global-lora.parquet")
    assert not (killed / "eval" / "manifest.json").exists()
    run_pipeline(killed, config, stages=(*UPSTREAM, TrainStage, EvaluateStage))
    assert _digests(killed / "eval") == _digests(whole / "eval")


# Killed once the first chunk of generations is committed to the run's cache.
AFTER_THE_FIRST_CHUNK = """
from personasim.profiles.cache import GenerationCache
real = GenerationCache.put_many
def put_many(self, values):
    real(self, values)
    if values:
        kill()
GenerationCache.put_many = put_many
"""


def test_killed_profile_resumes_to_the_uninterrupted_profiles(
    log_files, tiny_model, killed_cli, tmp_path
):
    # The transformers backend on the tiny model, one prompt per batch: a resumed run
    # must not batch the rest differently (padding in a batch shifts float sums, and
    # greedy decoding can follow).
    config = _config(
        log_files,
        tiny_model,
        llm={"backend": "hf", "model": str(tiny_model), "batch_size": 1},
        profile={"rationales": False, "summary_max_tokens": 24, "batch_interactions": 40},
        split={"users": 12},
    )
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run_pipeline(whole, config, stages=(IngestStage, ProfileStage))
    run_pipeline(killed, config, stages=(IngestStage,))

    killed_cli(AFTER_THE_FIRST_CHUNK, "profile", "--workdir", killed)
    assert not (killed / "profiles" / "manifest.json").exists()
    run_pipeline(killed, config, stages=(IngestStage, ProfileStage))
    assert _digests(killed / "profiles") == _digests(whole / "profiles")
