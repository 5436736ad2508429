"""Shared fixtures: synthetic logs on disk, an in-process CLI runner, a tiny randomly
initialised model of SmolLM2's architecture, and a small trained run folder on it
(template profiles, tiny LoRA adapters) shared by the agent and simulation tests.

Session fixtures are read, never changed: a test that changes a run folder works on a
copy (``copy_run``), and a test that writes into a shared run folder fails."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from personasim import run_pipeline
from personasim.cli import main
from personasim.config import load_config
from personasim.pipeline import IngestStage, PersonasStage, ProfileStage, TrainStage
from personasim.testing import ScriptedAgents, SyntheticLog, synthetic_log, write_tiny_model

os.environ.setdefault("PERSONASIM_PROGRESS", "0")
os.environ.pop("PERSONASIM_CONFIG", None)  # a developer's own settings change no test
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `-n N` workers share the cores: each runs torch, LensKit and its children on its
    # share (N workers on threads = cores each ran every model test slower than one)
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _workers))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Keep the garbage collector from scanning the whole process hundreds of times.

    LensKit's item-kNN ends every fit with a full ``gc.collect()`` (to free its
    similarity matrix's temporaries); the suite fits item-kNN hundreds of times (CF
    priors out of fold, baselines, recommenders), and in this process (torch,
    transformers, LensKit, Ray and every test module imported) each took 0.2-0.3 s:
    a minute of the suite. Here the tests' memory is small, so that call does nothing,
    and what the imports made is moved out of the collector's sight (module-level
    objects live until the process ends anyway); everything else is collected as usual.
    """
    import gc
    from types import SimpleNamespace

    import lenskit.knn.item
    import sentence_transformers  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import transformers  # noqa: F401

    lenskit.knn.item.gc = SimpleNamespace(collect=lambda generation=2: 0)
    gc.collect()
    gc.freeze()


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


KILLER = """
import os, signal, sys
def kill():
    os.kill(os.getpid(), signal.SIGKILL)
exec(sys.argv[1])
from personasim.cli import main
main(sys.argv[2:])
"""


@pytest.fixture(scope="session")
def killed_cli():
    """``killed_cli(patch, *args)``: ``personasim ARGS`` in a child process that kill -9s
    itself where `patch` says (Python run first, with ``kill()`` to call), so the kill
    falls at the same point of the work on every machine. Fails the test when the
    command ends any other way."""

    def run(patch: str, *args: str | Path) -> None:
        env = {**os.environ, "PERSONASIM_PROGRESS": "0"}
        command = [sys.executable, "-c", KILLER, patch, *map(str, args)]
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == -signal.SIGKILL, (
            f"`personasim {' '.join(map(str, args))}` ended with {done.returncode} before "
            f"the kill point: {done.stderr[-2000:]}"
        )

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


def agent_config(log_files, base_model: str | Path = "smollm2", **agents):
    """A config that trains tiny adapters of `base_model` on the synthetic log."""
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
                    "cf": {"mf_epochs": 3},
                    "evaluate": {
                        "agent_pairs_per_user": 3,
                        "bootstrap_rounds": 200,
                        "taste_candidates": 4,
                        "taste_ratios": [1, 3],
                        "taste_users": 4,
                        "free_generation_pairs": 3,
                        "free_generation_tokens": 4,
                        "without_rationales": True,
                        # the base model beside the adapters: they must beat it
                        "agents": ["zero-shot", "global-lora", "persona-lora"],
                    },
                    "agents": {
                        "base_model": str(base_model),
                        "max_examples_per_adapter": 12,
                        "epochs": 1,
                        "items_per_pack": 4,
                        "users_per_step": 2,
                        "lm_weight": 1.0,  # the adapters as trained (the fit has its tests)
                        **agents,
                    },
                },
            )
        ]
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A randomly initialised SmolLM2-shaped model (8 layers, hidden 64) with SmolLM2's
    tokenizer, written once per session: the agents' mechanics are tested on it."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny-model") / "smollm2-tiny")


@pytest.fixture(scope="session")
def make_agent_config(tiny_model):
    """``make_agent_config(log_files, **agents)``: the tiny agent configuration, on the
    tiny model unless ``base_model`` says otherwise, with the item-kNN watch prior
    unless ``watch_prior`` says otherwise (the stacked default refits its features 7
    times a train stage; it is tested on its own, in the simulation's checks and on the
    real model's run)."""

    def build(log_files, **agents):
        return agent_config(
            log_files, **{"base_model": tiny_model, "watch_prior": "itemknn", **agents}
        )

    return build


@pytest.fixture(scope="session")
def agent_log_files(small_log, tmp_path_factory):
    return small_log.write_csv(tmp_path_factory.mktemp("agent-log"))


@pytest.fixture(scope="session")
def trained_run(agent_log_files, make_agent_config, tmp_path_factory):
    """Ingest, template profiles, 2 personas, global + persona adapters (a few steps) of
    the tiny model. Read it; copy it (``copy_run``) to change it."""
    workdir = tmp_path_factory.mktemp("trained")
    run_pipeline(workdir, make_agent_config(agent_log_files), stages=AGENT_STAGES)
    return workdir


@pytest.fixture(scope="session")
def real_trained_run(agent_log_files, tmp_path_factory):
    """The tiny configuration on the packaged SmolLM2-135M: ingest, template profiles,
    personas and one global adapter (a few steps), for the tests of real weights."""
    workdir = tmp_path_factory.mktemp("trained-real")
    config = agent_config(agent_log_files, base_model="smollm2", modes=["global"])
    run_pipeline(workdir, config, stages=AGENT_STAGES)
    return workdir


@pytest.fixture
def scripted_agents(trained_run):
    """:class:`ScriptedAgents` for the trained run's users, personas and items (the
    service's tests around the agents, without a model)."""
    import pandas as pd

    assignments = pd.read_parquet(trained_run / "personas" / "assignments.parquet")
    items = pd.read_parquet(trained_run / "data" / "items.parquet")
    personas = dict(zip(assignments.user_id.astype(str), assignments.persona, strict=True))
    return ScriptedAgents(personas, items.item_id.astype(str))


@pytest.fixture(scope="session")
def copy_run(tmp_path_factory):
    """``copy_run(run)``: a copy of the run folder `run` that a test may change."""

    def copy(run: Path) -> Path:
        return Path(shutil.copytree(run, tmp_path_factory.mktemp(f"{run.name}-copy") / "run"))

    return copy


SHARED = (
    "small_log",
    "agent_log_files",
    "trained_run",
    "real_trained_run",
    "evaluated",
    "simulated",
    "new_items_run",
    "reported_run",
    "run",
    "log_files_module",
    "split",
)
"""Fixtures shared by several tests (session or module scope): no test may change them."""


def _fingerprint(value: object) -> dict[str, object]:
    """What a shared fixture holds: every file's size and modification time for a folder
    or file, a digest of each table of a log, each part's for a tuple or dict."""
    if isinstance(value, SyntheticLog):
        value = vars(value)
    if isinstance(value, Path):
        files = sorted(value.rglob("*")) if value.is_dir() else [value]
        return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.is_file()}
    if isinstance(value, tuple | list | dict):
        parts = value.items() if isinstance(value, dict) else enumerate(value)
        return {f"{k}/{key}": v for k, part in parts for key, v in _fingerprint(part).items()}
    try:
        return {"": hashlib.sha256(pickle.dumps(value)).hexdigest()}
    except Exception:  # a model, a stage result: not compared
        return {}


@pytest.fixture(autouse=True)
def _shared_fixtures_stay_unchanged(request):
    """Fail the test that changed a shared fixture (a later test would read another run
    or log than the one it thinks it tests): compare their contents before and after."""
    used = {name: request.getfixturevalue(name) for name in SHARED if name in request.fixturenames}
    before = {name: _fingerprint(value) for name, value in used.items()}
    yield
    for name, value in used.items():
        after, was = _fingerprint(value), before[name]
        changed = sorted(k for k in was.keys() | after.keys() if was.get(k) != after.get(k))
        assert not changed, f"the test changed the shared fixture {name}: {changed[:5]}"
