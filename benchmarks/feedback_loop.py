"""The feedback study on a trained run folder, with the agents answered by their priors:
wall time per round, peak memory, the measures and each recommender's trend.

The run's data, profiles, personas and trained priors are copied to a scratch folder
(the run itself is not touched) and `simulate` runs there with the given recommenders,
users and rounds, ``agents.language_model = "off"`` (no model loaded) and no checks
(ladder, leave-family-out, other priors), so the time is the loop's: each round refits
every recommender on the log plus what the agents watched, ranks and simulates again.

    .venv/bin/python benchmarks/feedback_loop.py runs/a34 --rounds 10 [--users 0]
        [--recommenders random popular ...] [--json benchmarks/results/feedback_a34.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

STAGES = ("data", "profiles", "personas", "adapters")
RECOMMENDERS = ["random", "popular", "unpopular", "itemknn", "userknn", "mf", "bpr", "sasrec"]


def copy_run(source: Path, scratch: Path) -> Path:
    """A copy of the run folder `source` (its config and the stages simulate reads)
    inside `scratch`."""
    workdir = scratch / source.name
    workdir.mkdir()
    for name in [*STAGES, "config.toml"]:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, workdir / name)
        elif path.exists():
            shutil.copy2(path, workdir / name)
    return workdir


def prior_only_config(source: Path, simulate: dict[str, Any]) -> Any:
    """The run folder's configuration with the agents on their priors
    (``agents.language_model = "off"``), no checks or other priors, and `simulate` on top
    of its `[simulate]`."""
    from personasim.config import load_config

    settings = tomllib.loads((source / "config.toml").read_text())
    base = json.loads(load_config([("run", settings)]).model_dump_json())
    base["agents"]["language_model"] = "off"
    checks_off = {"ladder": [], "leave_family_out": False, "other_watch_priors": []}
    base["simulate"].update({**checks_off, **simulate})
    return load_config([("benchmark", base)])


def run(
    source: Path, rounds: int, users: int, recommenders: list[str], recency: bool
) -> dict[str, Any]:
    """Run the study on a copy of `source`; its metrics, timings and peak memory."""
    import pandas as pd

    from personasim.pipeline import SimulateStage, run_stage
    from personasim.workspace import Workspace

    with tempfile.TemporaryDirectory() as scratch:
        workdir = copy_run(source, Path(scratch))
        cfg = prior_only_config(
            source,
            {
                "users": users,
                "recommenders": recommenders,
                "feedback_rounds": rounds,
                "feedback_users": 0,
                "session_recency": recency,
            },
        )
        started = time.perf_counter()
        run_stage(SimulateStage, Workspace(workdir), cfg)
        seconds = time.perf_counter() - started
        metrics = json.loads((workdir / "simulate" / "metrics.json").read_text())
        feedback = pd.read_parquet(workdir / "simulate" / "feedback.parquet")
    per_round = feedback[feedback["round"] > 0].groupby("round")["seconds"].sum()
    return {
        "source": str(source),
        "users": metrics["settings"]["users"],
        "recommenders": recommenders,
        "rounds": rounds,
        "session_recency": recency,
        "wall_s": round(seconds, 1),
        "first_round_s": metrics["wall_time_s"]["recommenders"],
        "seconds_per_round": round(float(per_round.mean()), 1) if len(per_round) else None,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "decisions": metrics["decisions"],
        "trends": {n: t["sentence"] for n, t in metrics["feedback_trends"].items()},
        "trend": {n: t["trend"] for n, t in metrics["feedback_trends"].items()},
        "feedback": metrics["feedback"],
    }


def main() -> None:
    """Run the study and print its time per round, peak memory and trends."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--users", type=int, default=0)
    parser.add_argument("--recommenders", nargs="+", default=RECOMMENDERS)
    parser.add_argument("--no-recency", action="store_true", help="session_recency = false")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args.run, args.rounds, args.users, args.recommenders, not args.no_recency)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{result['users']} users x {len(args.recommenders)} recommenders x "
        f"{args.rounds} rounds: {result['wall_s']:.0f} s in all, "
        f"{result['seconds_per_round']} s per round, peak {result['peak_rss_mib']:.0f} MiB"
    )
    for sentence in result["trends"].values():
        print("-", sentence)


if __name__ == "__main__":
    main()
