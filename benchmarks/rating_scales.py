"""Each rating scale (1-5, half stars, 1-10) and a log without ratings, on ML-100K written
as CSV logs, through every stage with the real agent model (SmolLM2-135M); the run
folders hold what docs/agents.md's table reads (eval/, simulate/, report/).

    RUNS=runs/scales .venv/bin/python benchmarks/rating_scales.py [1-5 half 1-10 none]
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from personasim.config import DataConfig, load_config
from personasim.data.log import load_log
from personasim.data.sources import log_spec
from personasim.pipeline import run_pipeline

ROOT = Path(os.environ.get("RUNS", "runs/scales"))
SCALES = {
    "1-5": ((1.0, 5.0), 1.0, lambda r, odd: r),
    "half": ((0.5, 5.0), 0.5, lambda r, odd: r - 0.5 * odd),
    "1-10": ((1.0, 10.0), 1.0, lambda r, odd: 2 * r - odd),
    "none": (None, None, None),
}

SETTINGS = {
    "seed": 0,
    "split": {"users": 40, "min_ratings": 100, "max_ratings": 300},
    "llm": {"backend": "template"},
    "profile": {"rationale_backend": "template"},
    "agents": {
        "modes": ["global"],
        "max_examples_per_adapter": 300,
        "epochs": 1,
        "watch_prior": "itemknn",
        "lm_weight_examples": 100,
    },
    "evaluate": {
        "agents": ["global-lora"],
        "agent_pairs_per_user": 5,
        "free_generation_pairs": 60,
        "taste_users": 40,
        "taste_ratios": [1],
        "taste_samplers": ["uniform", "popularity"],
        "taste_shown": [],
        "bootstrap_rounds": 1000,
    },
    "simulate": {
        "agent": "global-lora",
        "users": 40,
        "recommenders": ["random", "popular", "itemknn", "mf", "unpopular"],
        "ladder": [],
        "leave_family_out": False,
    },
}


def write_log(folder: Path, scale: str) -> dict:
    """The ML-100K log on `scale` as CSV files; the `[data]` settings that read it."""
    log = load_log(log_spec(DataConfig()))
    bounds, step, move = SCALES[scale]
    frame = log.interactions[["user_id", "item_id", "rating", "timestamp"]].copy()
    columns = {"rating": "rating"}
    if move is None:
        frame = frame.drop(columns="rating")
        columns = {"rating": "none"}
    else:
        frame["rating"] = move(frame["rating"], np.arange(len(frame)) % 2)
    items = log.items[["item_id", "title", "year", "genres"]].copy()
    items["genres"] = items["genres"].map(lambda g: "|".join(g) if g is not None else "")
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "log.csv", index=False)
    items.to_csv(folder / "items.csv", index=False)
    data = {
        "dataset": "custom",
        "path": str(folder / "log.csv"),
        "items_path": str(folder / "items.csv"),
        "columns": columns,
    }
    if bounds is not None:
        data.update(rating_scale=list(bounds), rating_step=step)
    return data


def main(scales: list[str]) -> None:
    for scale in scales:
        folder = ROOT / scale
        settings = json.loads(json.dumps(SETTINGS))
        settings["data"] = write_log(folder / "input", scale)
        config = load_config([("exp35", settings)])
        started = time.perf_counter()
        run_pipeline(folder / "run", config)
        print(f"{scale}: done in {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(SCALES))
