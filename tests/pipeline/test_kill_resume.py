"""kill -9 in the middle of profile, train and evaluate, then resume: the artifacts are
those of an uninterrupted run with the same seed, byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomli_w

pytestmark = pytest.mark.slow


def _config(log_files, **sections) -> dict:
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
        "agents": {"max_examples_per_adapter": 12, "epochs": 1, "items_per_pack": 4},
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
    return base


def _personasim(*args, wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    env = {**os.environ, "PERSONASIM_PROGRESS": "0"}
    command = [sys.executable, "-m", "personasim", *map(str, args)]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr
    return done


def _kill_when(proc: subprocess.Popen, ready, what: str) -> None:
    deadline = time.monotonic() + 600
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the stage ended before {what}: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, f"no {what} in 10 minutes"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


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


def test_killed_train_and_evaluate_resume_to_the_uninterrupted_artifacts(log_files, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(tomli_w.dumps(_config(log_files)))
    runs = {name: tmp_path / name for name in ("killed", "whole")}
    for workdir in runs.values():
        for stage in ("ingest", "profile", "personas"):
            _personasim(stage, "--workdir", workdir, "--config", config)

    killed = runs["killed"]
    proc = _personasim("train", "--workdir", killed, wait=False)
    _kill_when(proc, lambda: _checkpoints(killed, "adapters", "*/*/training.json"), "an adapter")
    finished = _checkpoints(killed, "adapters", "*/*/training.json")
    assert 1 <= len(finished) < 3, "train finished before the kill; the test is moot"
    assert not (killed / "adapters" / "manifest.json").exists()
    resumed = _personasim("train", "--workdir", killed)
    assert "restored from checkpoint" in resumed.stderr
    _personasim("train", "--workdir", runs["whole"])
    assert _digests(killed / "adapters") == _digests(runs["whole"] / "adapters")

    proc = _personasim("evaluate", "--workdir", killed, wait=False)
    _kill_when(
        proc, lambda: _checkpoints(killed, "eval", "*/r*/persona-lora.parquet"), "an agent scored"
    )
    assert not (killed / "eval" / "manifest.json").exists()
    _personasim("evaluate", "--workdir", killed)
    _personasim("evaluate", "--workdir", runs["whole"])
    assert _digests(killed / "eval") == _digests(runs["whole"] / "eval")


def test_killed_profile_resumes_to_the_uninterrupted_profiles(log_files, tmp_path):
    # One prompt per batch: a resumed run must not batch the rest differently (padding
    # in a batch shifts float sums, and greedy decoding can follow).
    sections = {
        "llm": {"backend": "hf", "batch_size": 1},
        "profile": {"rationales": False, "summary_max_tokens": 24, "batch_interactions": 40},
        "split": {"users": 12},
    }
    config = tmp_path / "run.toml"
    config.write_text(tomli_w.dumps(_config(log_files, **sections)))
    runs = {name: tmp_path / name for name in ("killed", "whole")}
    for workdir in runs.values():
        _personasim("ingest", "--workdir", workdir, "--config", config)

    killed = runs["killed"]
    cache = killed / ".cache" / "generations.sqlite"

    def generated() -> bool:
        import sqlite3

        if not cache.exists():
            return False
        try:
            with sqlite3.connect(cache, timeout=0.1) as db:
                # the first commit holds a chunk of 8 of the 12 users' profiles
                return db.execute("SELECT COUNT(*) FROM kv").fetchone()[0] >= 1
        except sqlite3.Error:
            return False

    proc = _personasim("profile", "--workdir", killed, wait=False)
    _kill_when(proc, generated, "a committed chunk of generations")
    assert not (killed / "profiles" / "manifest.json").exists()
    _personasim("profile", "--workdir", killed)
    _personasim("profile", "--workdir", runs["whole"])
    assert _digests(killed / "profiles") == _digests(runs["whole"] / "profiles")
