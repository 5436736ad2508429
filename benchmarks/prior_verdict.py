"""The simulation's verdict when the watch prior alone plays the users (no language
model): what our agents answer where the fitted LM weight is 0, at CPU speed.

On a trained run folder (its watch examples and rating prior): sessions of the run's
users with each built-in recommender, where P(watch) is the stacked prior's calibrated
probability and a rating is drawn from the rating prior's Gaussian over the digits;
common random numbers, pages of 4, at most 5 pages; what a user watched earlier in the
session moves their stacked prior (``simulate.session_recency``). A rankings file
holding item-kNN's pages is simulated too, as "file:itemknn": identical lists, identical
results. Then the verdict's intervals, the ladder, leave-family-out, and Kendall's tau
of watch rate and likes against nDCG@10, under the stacked prior and under the old
single-scorer priors.

    .venv/bin/python benchmarks/prior_verdict.py --workdir runs/m34 [--priors itemknn implicit_mf]
        [--refit-prior] [--no-leave-out | --leave-out-only sasrec ...] [--json out.json]

``--refit-prior`` fits the stacked prior with this code's families (a run trained
before a family was added stores a prior without it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from personasim.agents.choice_prior import fit_choice_prior, session_model
from personasim.agents.prior import CFPrior, prior_logits
from personasim.agents.watch_prior import WatchPrior
from personasim.cf.dataset import training_log
from personasim.config import BUILTIN_RECOMMENDERS
from personasim.evaluation.session_intervals import session_intervals
from personasim.pipeline.simulate_checks import FAMILY_OF, ladder_check, leave_family_out_check
from personasim.run_folder import ADAPTERS, DATA, PROFILES
from personasim.simulation import SessionLog, pages_of, run_sessions
from personasim.simulation.measures import offline_metrics, rank_agreement
from personasim.simulation.rankings import RankingsRecommender
from personasim.simulation.recommenders import create_recommender
from personasim.workspace import Workspace, resolve_config

RECOMMENDERS = list(BUILTIN_RECOMMENDERS)


class PriorUsers:
    """Simulated users answered by the priors alone."""

    def __init__(self, watch: WatchPrior, rating: CFPrior, sigma: float) -> None:
        self.watch, self.rating, self.sigma = watch, rating, sigma
        self.session_watched: dict[str, list[str]] = {}

    def remember(self, user_id: str, item_ids: list[str]) -> None:
        """What the user watched on a page (the stacked prior reads it next)."""
        self.session_watched.setdefault(user_id, []).extend(item_ids)

    def forget_sessions(self) -> None:
        """Sessions over."""
        self.session_watched.clear()

    def watch_probabilities(self, requests: Any) -> list[np.ndarray]:
        """P(watch) of each item: the calibrated prior."""
        out = []
        for user, items in requests:
            recent = self.session_watched.get(user, ())
            out.append(1 / (1 + np.exp(-self.watch.log_odds(user, list(items), None, recent))))
        return out

    def rating_distributions(self, requests: Any) -> list[dict[str, np.ndarray]]:
        """The rating prior's Gaussian over the digits."""
        out = []
        for user, items in requests:
            logits = prior_logits(torch.tensor(self.rating.predict(user, list(items))), self.sigma)
            out.append({"probs": torch.softmax(logits, dim=-1).numpy()})
        return out


def main() -> None:
    """Simulate, check, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--priors", nargs="*", default=["itemknn", "implicit_mf"])
    parser.add_argument("--json", default=None)
    parser.add_argument("--no-leave-out", action="store_true", help="skip leave-family-out")
    parser.add_argument(
        "--leave-out-only", nargs="*", default=None, help="leave-family-out for these only"
    )
    parser.add_argument("--refit-prior", action="store_true", help="fit the stacked prior")
    args = parser.parse_args()
    ws = Workspace(Path(args.workdir))
    cfg = resolve_config(ws)
    sim = cfg.simulate.model_copy(update={"users": 0, "max_pages": 5, "page_size": 4})
    seed = cfg.seed
    interactions = pd.read_parquet(ws.path(DATA.interactions))
    items = pd.read_parquet(ws.path(DATA.items))
    others = pd.read_parquet(ws.path(DATA.others))
    examples = pd.read_parquet(ws.path(ADAPTERS.examples))
    profiles = pd.read_parquet(ws.path(PROFILES.profiles))
    watch = examples[examples["task"] == "watch"][["user_id", "item_id", "target"]]
    train = interactions[interactions["split"] == "train"]
    test = interactions[interactions["split"] == "test"].astype({"user_id": str, "item_id": str})
    users = sorted(interactions["user_id"].astype(str).unique())
    history = train.groupby("user_id")["item_id"].agg(lambda s: [str(i) for i in s]).to_dict()
    activity = dict(
        zip(profiles["user_id"].astype(str), profiles["activity"].astype(int), strict=True)
    )
    training, _ = training_log(ws, interactions)
    training = training[["user_id", "item_id", "rating", "timestamp"]]
    exclude = cfg.agents.watch_prior_exclude
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if args.refit_prior:
        own, _, _ = fit_choice_prior(
            "stacked", train, others, items, users, watch, seed=seed, exclude=exclude
        )
    else:  # the stored matrix, and its model for the sessions (as simulate does)
        own = WatchPrior.load(ws.stage_dir("adapters"))
        own.session = session_model(train, others, items, seed=seed, exclude=exclude)
    timings["prior"] = round(time.perf_counter() - started, 1)
    agents = PriorUsers(own, CFPrior.load(ws.stage_dir("adapters")), cfg.agents.prior_sigma)

    need = sim.page_size * sim.max_pages
    pages, ndcg = {}, {}
    started = time.perf_counter()
    for name in RECOMMENDERS:
        recommender = create_recommender(name, sim, cfg.cf)
        recommender.fit(training, seed=seed)
        pages[name] = {}
        top = {}
        for user in users:
            ranking = recommender.recommend(user, history[user], need + len(history[user]))
            flat = next(iter(pages_of(ranking, set(history[user]), need, 1)), [])
            top[user] = flat[: sim.offline_k]
            pages[name][user] = pages_of(flat, set(), sim.page_size, sim.max_pages)
        ndcg[name] = float(offline_metrics(top, test, sim.offline_k)["ndcg"].mean())
    copy = "file:itemknn"  # a rankings file of item-kNN's pages: a recommender like any
    path = Path(tempfile.mkdtemp()) / "itemknn.parquet"
    pd.DataFrame(
        [
            (user, item, rank + 1)
            for user, shown in pages["itemknn"].items()
            for rank, item in enumerate(i for page in shown for i in page)
        ],
        columns=["user_id", "item_id", "rank"],
    ).to_parquet(path)
    listed = RankingsRecommender(copy, path)
    pages[copy] = {
        user: pages_of(
            listed.recommend(user, history[user], need), set(), sim.page_size, sim.max_pages
        )
        for user in users
    }
    ndcg[copy] = ndcg["itemknn"]
    timings["recommenders"] = round(time.perf_counter() - started, 1)

    def simulate(name: str, shown: dict, variant: str = "", prepare: Any = None) -> SessionLog:
        if prepare is not None:
            prepare()
        return run_sessions(agents, shown, activity, sim, seed=seed, label="round0")

    def table(logs: dict[str, SessionLog]) -> dict[str, dict[str, float]]:
        rows = {}
        for name, log in logs.items():
            s = log.sessions
            rows[name] = {
                "watch_rate": float(s["watched"].sum() / max(s["shown"].sum(), 1)),
                "likes": float(s["liked"].mean()),
                "ndcg": ndcg[name],
            }
            hits = log.events.assign(
                hit=[
                    (u, i) in test_pairs
                    for u, i in zip(log.events.user_id, log.events.item_id, strict=True)
                ]
            )
            watched = hits[hits.watched]["hit"].mean()
            skipped = hits[~hits.watched]["hit"].mean()
            rows[name]["log_hit_ratio"] = float(watched / skipped) if skipped > 0 else float("nan")
        return rows

    test_pairs = set(zip(test.user_id, test.item_id, strict=True))
    started = time.perf_counter()
    logs = {name: simulate(name, pages[name]) for name in [*RECOMMENDERS, copy]}
    timings["sessions"] = round(time.perf_counter() - started, 1)
    rows = table(logs)
    frames = [
        log.sessions[["user_id", "shown", "watched", "liked"]].assign(recommender=n)
        for n, log in logs.items()
    ]
    intervals = session_intervals(pd.concat(frames), rounds=2000, seed=seed)
    result: dict[str, Any] = {"stacked": {"recommenders": rows, "intervals": intervals}}
    for measure in ("watch_rate", "likes"):
        result["stacked"][f"tau_{measure}"] = rank_agreement(  # the copy is not a ranker
            {n: rows[n][measure] for n in RECOMMENDERS}, {n: rows[n]["ndcg"] for n in RECOMMENDERS}
        )
    best = max((n for n in RECOMMENDERS if n in FAMILY_OF), key=lambda n: ndcg[n])
    catalogue = items.loc[items["train_count"] > 0, "item_id"].astype(str).tolist()
    started = time.perf_counter()
    result["ladder"] = ladder_check(
        best,
        pages[best],
        logs[best],
        history,
        catalogue,
        test,
        simulate,
        shares=[0.1, 0.25, 0.5, 1.0],
        k=sim.offline_k,
        seed=seed,
        rounds=2000,
    )
    timings["ladder"] = round(time.perf_counter() - started, 1)

    def fit(kind: str, exclude: list[str]) -> WatchPrior:
        prior, _, _ = fit_choice_prior(
            kind, train, others, items, users, watch, seed=seed, exclude=exclude
        )
        return prior

    def use(prior: WatchPrior | None) -> None:
        agents.watch = own if prior is None else prior

    started = time.perf_counter()
    result["leave_family_out"] = (
        {"sentence": "(skipped)"}
        if args.no_leave_out
        else leave_family_out_check(
            {n: rows[n] for n in RECOMMENDERS},
            pages,
            lambda family: fit("stacked", [family]),
            use,
            simulate,
            only=args.leave_out_only,
        )
    )
    timings["leave_family_out"] = round(time.perf_counter() - started, 1)
    for kind in args.priors:
        started = time.perf_counter()
        agents.watch = fit(kind, [])
        other = table({name: simulate(name, pages[name]) for name in RECOMMENDERS})
        agents.watch = own
        result[kind] = {"recommenders": other}
        for measure in ("watch_rate", "likes"):
            result[kind][f"tau_{measure}"] = rank_agreement(
                {n: r[measure] for n, r in other.items()}, {n: r["ndcg"] for n, r in other.items()}
            )
        timings[f"prior {kind}"] = round(time.perf_counter() - started, 1)
    result["timings"] = timings

    print("\n| recommender | watch rate (95%) | likes/session (95%) | log-hit ratio | nDCG@10 |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        mine = intervals["recommenders"][name]
        (wl, wh), (ll, lh) = mine["watch_rate_ci"], mine["likes_ci"]
        print(
            f"| {name} | {row['watch_rate']:.3f} ({wl:.3f}-{wh:.3f}) "
            f"| {row['likes']:.2f} ({ll:.2f}-{lh:.2f}) "
            f"| {row['log_hit_ratio']:.2f} | {row['ndcg']:.4f} |"
        )
    for kind in ["stacked", *args.priors]:
        print(
            kind,
            "tau(watch rate, nDCG)",
            result[kind]["tau_watch_rate"],
            "tau(likes, nDCG)",
            result[kind]["tau_likes"],
        )
    print(result["ladder"]["sentence"])
    for step in result["ladder"]["steps"]:
        print(
            step["share"],
            step["watch_rate"],
            step["watch_rate_drop"],
            step["ndcg"],
            step["ndcg_drop"],
        )
    print(result["leave_family_out"]["sentence"])
    print("timings (s):", timings)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
