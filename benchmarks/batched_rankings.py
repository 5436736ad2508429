"""Recommenders' lists for every simulated user: batched (:func:`recommend_many`) against
one LensKit pipeline run per user (the naive path), same run and same fitted models.

Each recommender is fitted once on a run folder's training log (the simulate stage's:
the simulated users' train part plus the other users); then every simulated user's top
`n` new items are asked for user by user (``recommend``) and all at once
(``recommend_many``: one batched scoring per 256 users where the scorer has a batched
form, else the same per-user calls). The note gives the share of users whose two lists
are identical and the largest score gap between positions where they differ (ties and
float32 rounding only).

    .venv/bin/python benchmarks/batched_rankings.py runs/all36 [--n 60]
        [--recommenders popular mf bpr sasrec itemknn userknn]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from common import Row, peak_mib, print_rows  # noqa: E402


def _training(workdir: Path) -> tuple[Any, list[str], list[list[str]]]:
    """What the run's simulate stage fits the recommenders on, and each simulated user's
    train items."""
    import pandas as pd

    from personasim.cf.dataset import training_log
    from personasim.workspace import Workspace

    interactions = pd.read_parquet(workdir / "data" / "interactions.parquet")
    interactions = interactions.astype({"user_id": str, "item_id": str})
    training, _ = training_log(Workspace(workdir), interactions)
    columns = ["user_id", "item_id", "rating", "timestamp"]
    training = training[columns].astype({"user_id": str, "item_id": str})
    train = interactions[interactions["split"] == "train"]
    history = train.groupby("user_id")["item_id"].agg(list)
    return training.reset_index(drop=True), list(history.index), list(history)


def main() -> None:
    """Time both paths per recommender and print the table (JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument(
        "--recommenders", nargs="+", default=["popular", "mf", "bpr", "sasrec", "itemknn"]
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from personasim.config import SimulateConfig
    from personasim.simulation.batched_lists import recommend_many
    from personasim.simulation.recommenders import create_recommender

    training, users, histories = _training(args.workdir)
    rows: list[Row] = []
    for name in args.recommenders:
        recommender = create_recommender(name, SimulateConfig())
        t0 = time.perf_counter()
        recommender.fit(training, seed=0)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        one_by_one = [
            [i for i in recommender.recommend(u, h, args.n + len(h)) if i not in set(h)][: args.n]
            for u, h in zip(users, histories, strict=True)
        ]
        naive_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        batched = recommend_many(recommender, users, histories, args.n)
        fast_s = time.perf_counter() - t0
        same = sum(a == b for a, b in zip(one_by_one, batched, strict=True)) / len(users)
        sets = sum(set(a) == set(b) for a, b in zip(one_by_one, batched, strict=True))
        note = (
            f"{len(users)} users, top {args.n}; fit {fit_s:.1f} s; identical lists "
            f"{same:.1%}, same items {sets / len(users):.1%}"
        )
        rows.append(Row(name, "per user", len(users), "users", naive_s, peak_mib(), True, note))
        rows.append(Row(name, "batched", len(users), "users", fast_s, peak_mib(), False, note))
        print_rows(rows[-2:])
    print_rows(rows, "Rankings of every simulated user: batched vs per user")
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in rows], indent=2) + "\n")


if __name__ == "__main__":
    main()
