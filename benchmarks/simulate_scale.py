"""Simulate wall time and peak memory against the number of simulated users.

Two sources of users:

- ``--run DIR --users 1000 6040``: a trained run folder (e.g. every ML-1M user,
  ``configs/ml1m-all-users.toml``) copied to a scratch folder, and its `simulate` stage
  run again for a seeded sample of each size (agents on their priors, no checks, no
  feedback rounds);
- ``--synthetic 100000``: a synthetic log of that many users
  (:func:`personasim.testing.write_large_log`: 50-150 ratings each, 3,000 items), every
  user simulated (``--sample N``: a seeded sample of N of them; ``--no-others``: the
  models fitted on the sample's train part alone, ``split.include_other_users = false``):
  ingest, profile, personas and train (out of core, template profiles,
  ``agents.language_model = "off"``: the priors only, biased MF and implicit MF) and
  `simulate` with the recommenders whose lists are batched or cheap (``--executor ray``:
  the sessions on a local Ray).

Each stage's wall time and peak RSS (its manifest's, the stage's own high-water mark)
are printed and written as JSON.

    .venv/bin/python benchmarks/simulate_scale.py --synthetic 100000 [--work /tmp/scale]
    .venv/bin/python benchmarks/simulate_scale.py --synthetic 1000000 --sample 100000 --no-others
    .venv/bin/python benchmarks/simulate_scale.py --run runs/all36 --users 1000 6040
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from feedback_loop import copy_run, prior_only_config  # noqa: E402

SYNTHETIC_RECOMMENDERS = ["random", "popular", "unpopular", "mf", "bpr"]


def _stage_row(workdir: Path, folder: str, seconds: float) -> dict[str, Any]:
    manifest = json.loads((workdir / folder / "manifest.json").read_text())
    return {
        "stage": manifest["stage"],
        "seconds": round(seconds, 1),
        "peak_rss_mib": manifest.get("peak_rss_mib"),
        "peak_rss_scope": manifest.get("peak_rss_scope"),
    }


def _synthetic_config(
    ratings: Path, items: Path, sample: int, others: bool, executor: str
) -> dict[str, Any]:
    return {
        "seed": 0,
        "data": {"dataset": "custom", "path": str(ratings), "items_path": str(items)},
        "split": {
            "users": sample,
            "min_ratings": 1,
            "max_ratings": 0,
            "include_other_users": others,
        },
        "scale": {"tables": "duckdb", "memory_limit": "4GB", "executor": executor},
        "llm": {"backend": "template"},
        "profile": {"rationales": False},
        "agents": {
            "language_model": "off",
            "use_rationales": False,
            "prior_model": "biased_mf",
            "watch_prior": "implicit_mf",
            "modes": ["persona"],
        },
        "evaluate": {"agents": [], "taste": False, "baselines": ["global_mean"]},
        "simulate": {
            "users": 0,
            "recommenders": SYNTHETIC_RECOMMENDERS,
            "feedback_rounds": 0,
            "ladder": [],
            "leave_family_out": False,
            "other_watch_priors": [],
        },
    }


def synthetic(
    users: int, work: Path, sample: int = 0, others: bool = True, executor: str = "in-process"
) -> dict[str, Any]:
    """The whole pipeline up to `simulate` on a synthetic log of `users` users (`sample`
    of them simulated, 0: all; `others`: the other users' histories in the fits)."""
    from personasim.config import load_config
    from personasim.pipeline import (
        IngestStage,
        PersonasStage,
        ProfileStage,
        SimulateStage,
        TrainStage,
        run_stage,
    )
    from personasim.testing import write_large_log
    from personasim.workspace import Workspace

    log = work / f"log-{users}"
    if not (log / "done").exists():
        shutil.rmtree(log, ignore_errors=True)
        write_large_log(log, users)
        (log / "done").write_text("")
    workdir = work / f"run-{users}-{sample}{'' if others else '-alone'}"
    settings = _synthetic_config(
        log / "ratings.parquet", log / "items.csv", sample, others, executor
    )
    config = load_config([("scale", settings)])
    ws = Workspace(workdir)
    rows = []
    for stage in (IngestStage, ProfileStage, PersonasStage, TrainStage, SimulateStage):
        if stage is SimulateStage:  # timed afresh: no session restored from a checkpoint
            shutil.rmtree(workdir / ".checkpoints" / "simulate", ignore_errors=True)
        t0 = time.perf_counter()
        run_stage(stage, ws, config, force=stage is SimulateStage)
        rows.append(_stage_row(workdir, stage.folder, time.perf_counter() - t0))
        print(json.dumps(rows[-1]), flush=True)
    metrics = json.loads((workdir / "simulate" / "metrics.json").read_text())
    return {
        "source": f"synthetic {users} users" + ("" if others else ", models on the sample"),
        "executor": executor,
        "users": metrics["settings"]["users"],
        "stages": rows,
        "simulate_recommenders_s": metrics["wall_time_s"]["recommenders"],
        "decisions": metrics["decisions"],
    }


def sampled(run: Path, users: int) -> dict[str, Any]:
    """`simulate` again on a copy of a trained run, for a sample of `users` users."""
    from personasim.pipeline import SimulateStage, run_stage
    from personasim.workspace import Workspace

    with tempfile.TemporaryDirectory() as scratch:
        workdir = copy_run(run, Path(scratch))
        config = prior_only_config(run, {"users": users, "feedback_rounds": 0})
        t0 = time.perf_counter()
        run_stage(SimulateStage, Workspace(workdir), config)
        row = _stage_row(workdir, "simulate", time.perf_counter() - t0)
        metrics = json.loads((workdir / "simulate" / "metrics.json").read_text())
    return {
        "source": str(run),
        "users": metrics["settings"]["users"],
        "stages": [row],
        "simulate_recommenders_s": metrics["wall_time_s"]["recommenders"],
        "decisions": metrics["decisions"],
    }


def main() -> None:
    """Run the sizes asked for and print one JSON line per stage and a summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path)
    parser.add_argument("--users", type=int, nargs="*", default=[])
    parser.add_argument("--synthetic", type=int, nargs="*", default=[])
    parser.add_argument("--sample", type=int, default=0)
    parser.add_argument("--no-others", action="store_true")
    parser.add_argument("--executor", choices=["in-process", "ray"], default="in-process")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "scale")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.users and args.run is None:
        parser.error("--users needs --run (a trained run folder)")
    results = [sampled(args.run, n) for n in args.users]
    results += [
        synthetic(n, args.work, args.sample, not args.no_others, args.executor)
        for n in args.synthetic
    ]
    for result in results:
        print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
