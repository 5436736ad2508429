"""The simulation of a trained run with its adapters at LM weight 0, once with the
language model answering (``agents.language_model = "on"``) and once with the priors
alone ("auto", which then never loads the model): the same sessions, and the time each
took.

The run's data, profiles, personas and adapters are copied to a scratch folder (the run
is not touched), every adapter's rating and watch LM weights are set to 0 in the copy's
train manifest, and `simulate` runs each way with no checks and no feedback rounds (the
first round's sessions of every recommender; session recency off, so that both read
the prior the train stage fitted).

    .venv/bin/python benchmarks/prior_vs_model.py runs/a34 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from feedback_loop import RECOMMENDERS, copy_run


def _simulate(workdir: Path, settings: dict[str, Any], language_model: str) -> dict[str, Any]:
    import pandas as pd

    from personasim.config import load_config
    from personasim.pipeline import SimulateStage, run_stage
    from personasim.workspace import Workspace

    settings = json.loads(json.dumps(settings))
    settings["agents"]["language_model"] = language_model
    shutil.rmtree(workdir / ".checkpoints" / "simulate", ignore_errors=True)
    started = time.perf_counter()
    run_stage(SimulateStage, Workspace(workdir), load_config([("benchmark", settings)]), force=True)
    seconds = time.perf_counter() - started
    metrics = json.loads((workdir / "simulate" / "metrics.json").read_text())
    events = pd.read_parquet(workdir / "simulate" / "events.parquet")
    return {"seconds": seconds, "metrics": metrics, "events": events}


def run(source: Path, users: int) -> dict[str, Any]:
    """Both simulations of a copy of `source` at weight 0; their measures and times."""
    import numpy as np

    from personasim.config import load_config

    with tempfile.TemporaryDirectory() as scratch:
        workdir = copy_run(source, Path(scratch))
        manifest_path = workdir / "adapters" / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        for adapter in manifest["summary"]["adapters"].values():
            adapter["lm_weight"] = adapter["watch_lm_weight"] = 0.0
        manifest_path.write_text(json.dumps(manifest))
        raw = tomllib.loads((source / "config.toml").read_text())
        settings = json.loads(load_config([("run", raw)]).model_dump_json())
        settings["simulate"].update(
            {
                "users": users,
                "recommenders": RECOMMENDERS,
                "feedback_rounds": 0,
                "ladder": [],
                "leave_family_out": False,
                "other_watch_priors": [],
                "session_recency": False,
            }
        )
        priors = _simulate(workdir, settings, "auto")
        model = _simulate(workdir, settings, "on")
    gap = float(np.abs(priors["events"]["p_watch"] - model["events"]["p_watch"]).max())
    same = priors["events"].drop(columns="p_watch").equals(model["events"].drop(columns="p_watch"))
    rows = {}
    for name in RECOMMENDERS:
        a, b = priors["metrics"]["recommenders"][name], model["metrics"]["recommenders"][name]
        rows[name] = {
            "watch_rate": [a["watch_rate"], b["watch_rate"]],
            "likes": [a["likes"], b["likes"]],
        }
    return {
        "source": str(source),
        "users": priors["metrics"]["settings"]["users"],
        "seconds": {"priors": round(priors["seconds"], 1), "model": round(model["seconds"], 1)},
        "decisions": {
            "priors": priors["metrics"]["decisions"],
            "model": model["metrics"]["decisions"],
        },
        "p_watch_max_difference": gap,
        "same_sessions": bool(same),
        "recommenders (priors, model)": rows,
    }


def main() -> None:
    """Run both and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--users", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = run(args.run, args.users)
    text = json.dumps(result, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
