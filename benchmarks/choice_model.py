"""Which unseen item a user takes next: the stacked choice model against every implicit
baseline, on every taste list kind, the recommenders' shown lists included.

On a run folder's ingested data (by default the paper's protocol: ML-1M, 200 users with
100-200 ratings, per-user 60:40 split in time): the taste lists of the evaluate stage
(uniform and popularity-matched at 1:1 and 1:9) and each strong recommender's top 20
(`evaluate.taste_shown`: popular, item-kNN, user-kNN, implicit MF, BPR, SASRec),
labelled by the held-out log. Scored by the implicit scorers (LensKit's and SASRec,
fitted on the training data) and by the stacked
choice model (and, with ``--leave-out``, the stacked model without each family); per
list kind the mean per-user AUC with its 95% user-bootstrap interval, and the stacked
model minus the best baseline of that column, paired over users. The stacked model's
scores are ranked as the agents' watch prior ranks them (its calibration is strictly
monotone). No language model runs here.

    .venv/bin/python benchmarks/choice_model.py [--config configs/ml1m-cpu.toml]
        [--workdir runs/choice] [--leave-out itemknn implicit_mf ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import pandas as pd
from common import peak_mib  # type: ignore[import-not-found]

from personasim import run_pipeline
from personasim.cf.choice import fit_stacked_choice
from personasim.cf.choice_features import item_genres
from personasim.cf.implicit import IMPLICIT_SCORERS, fit_implicit
from personasim.config import EvaluateConfig, load_config
from personasim.evaluation.taste import shown_lists
from personasim.evaluation.taste_fidelity import (
    WATCH_PRIOR_MODEL,
    taste_lists,
    taste_metrics,
    taste_users,
)
from personasim.pipeline.ingest import IngestStage
from personasim.run_folder import DATA
from personasim.simulation.recommenders import create_recommender
from personasim.workspace import Workspace

SHOWN = EvaluateConfig().taste_shown
COLUMNS = ["uniform 1:1", "uniform 1:9", "popularity 1:1", "popularity 1:9"] + [
    f"shown {n}" for n in SHOWN
]


def main() -> None:
    """Ingest (or reuse) the run folder's data, score every list, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/ml1m-cpu.toml")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--leave-out", nargs="*", default=[])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="choice-"))
    raw = tomllib.loads(Path(args.config).read_text())
    config = load_config(
        [
            (args.config, raw),
            ("benchmark", {"evaluate": {"taste_ratios": [1, 9], "taste_shown": SHOWN}}),
        ]
    )
    run_pipeline(workdir, config, stages=(IngestStage,))
    ws = Workspace(workdir)
    interactions = pd.read_parquet(ws.path(DATA.interactions))
    items = pd.read_parquet(ws.path(DATA.items))
    others = pd.read_parquet(ws.path(DATA.others))
    cols = ["user_id", "item_id", "rating", "timestamp"]
    train = interactions[interactions["split"] == "train"][cols]
    training = pd.concat([train, others[cols]], ignore_index=True)
    seed = config.seed
    cfg = config.evaluate

    recommend = {}
    for name in SHOWN:
        recommender = create_recommender(name, config.simulate, config.cf)
        recommender.fit(training, seed=seed)
        recommend[name] = recommender.recommend
    users = taste_users(interactions, cfg, seed)
    shown = shown_lists(interactions, recommend, users, candidates=cfg.taste_candidates)
    lists = taste_lists(interactions, items, cfg, seed, shown)
    pairs = lists["pairs"]
    scores = []
    for kind in IMPLICIT_SCORERS:
        scorer = fit_implicit(kind, training, seed=seed)
        scores.append(pairs.assign(model=kind, score=scorer.score_pairs(pairs)))
    timings: dict[str, float] = {}
    variants: dict[str, list[str]] = {WATCH_PRIOR_MODEL: []}
    variants.update({f"stacked without {f}": [f] for f in args.leave_out})
    reports: dict[str, Any] = {}
    for name, exclude in variants.items():
        started = time.perf_counter()
        stacked = fit_stacked_choice(train, others, item_genres(items), seed=seed, exclude=exclude)
        timings[f"fit {name}"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        scores.append(pairs.assign(model=name, score=stacked.scorer.score_pairs(pairs)))
        timings[f"score {name} ({len(pairs)} pairs)"] = round(time.perf_counter() - started, 1)
        reports[name] = stacked.report
    baselines = scores[: len(IMPLICIT_SCORERS)]
    stacked_scores = {frame["model"].iloc[0]: frame for frame in scores[len(baselines) :]}
    # the paired comparisons are with the single scorers only; the variants are tabled
    summary = taste_metrics(
        lists, [*baselines, stacked_scores[WATCH_PRIOR_MODEL]], cfg, seed, workdir
    )
    if len(stacked_scores) > 1:
        variants_dir = workdir / "variants"
        variants_dir.mkdir(exist_ok=True)
        others_summary = taste_metrics(
            lists, list(stacked_scores.values()), cfg, seed, variants_dir
        )
        for column, models in others_summary.items():
            for model, entry in models.items():
                summary[column].setdefault(model, entry)
    print(
        f"\nAUC per list kind (mean over users with both labels; 95% user bootstrap), {workdir}\n"
    )
    header = "| model | " + " | ".join(COLUMNS) + " |"
    print(header)
    print("|" + "---|" * (len(COLUMNS) + 1))
    for model in [*IMPLICIT_SCORERS, *variants]:
        cells = []
        for column in COLUMNS:
            entry = summary.get(column, {}).get(model)
            cells.append("-" if entry is None else f"{entry['auc']:.3f}")
        print(f"| {model} | " + " | ".join(cells) + " |")
    print("\nthe stacked model minus the best baseline of each column (paired, 95%):")
    for column in COLUMNS:
        vs = summary.get(column, {}).get(WATCH_PRIOR_MODEL, {}).get("vs_best_baseline")
        if vs:
            print(
                f"  {column}: vs {vs['against']} {vs['auc']:+.3f} {vs['auc_ci']} ({vs['verdict']})"
            )
    f1 = {
        c: summary[c][WATCH_PRIOR_MODEL]["f1"]
        for c in COLUMNS
        if "f1" in summary[c].get(WATCH_PRIOR_MODEL, {})
    }
    print("F1 of the stacked model:", f1)
    print("timings (s):", timings, f"peak {peak_mib():.0f} MiB")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"taste": summary, "timings": timings, "stacked": reports}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
