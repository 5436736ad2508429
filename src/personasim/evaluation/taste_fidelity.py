"""Taste alignment of every model (:mod:`personasim.evaluation.taste` builds and scores
the lists): the baselines' scores, thresholds calibrated on train lists, per-user
metrics on test lists with intervals, and paired comparisons of the agents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personasim.agents.watch_prior import WatchPrior
from personasim.cf.implicit import fit_implicit
from personasim.config import AGENT_ADAPTERS, EvaluateConfig
from personasim.data.tables import write_parquet
from personasim.evaluation.bootstrap import mean_interval
from personasim.evaluation.checkpoints import UnitStore
from personasim.evaluation.ratings import FittedBaselines
from personasim.evaluation.taste import (
    SHOWN,
    best_f1_threshold,
    calibration,
    candidate_lists,
    list_metrics,
)
from personasim.progress import progress
from personasim.run_folder import EVAL
from personasim.workspace import atomic_write_text

__all__ = [
    "TASTE_METRICS",
    "WATCH_PRIOR_MODEL",
    "baseline_taste_scores",
    "taste_lists",
    "taste_metrics",
    "taste_users",
]

WATCH_PRIOR_MODEL = "watch-prior"
"""The agents' watch prior alone (no language model), as a taste model."""

TASTE_METRICS = ("accuracy", "precision", "recall", "f1", "auc")
"""Per-list taste-alignment metrics, averaged over users."""


def taste_users(interactions: pd.DataFrame, cfg: EvaluateConfig, seed: int) -> list[str]:
    """The users whose taste lists are built (a seeded sample of `taste_users`)."""
    users = sorted(interactions["user_id"].astype(str).unique())
    if cfg.taste_users and cfg.taste_users < len(users):
        rng = np.random.default_rng(seed)
        users = sorted(rng.choice(users, cfg.taste_users, replace=False).tolist())
    return users


def taste_lists(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    cfg: EvaluateConfig,
    seed: int,
    shown: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Test lists to measure on (with `shown`, recommenders' lists of
    :func:`~personasim.evaluation.taste.shown_lists`), train lists to calibrate
    thresholds on, every (user, item) pair of both, and the items' train popularity."""
    users = taste_users(interactions, cfg, seed)
    built = {}
    for part in ("test", "train"):
        built[part] = candidate_lists(
            interactions,
            items,
            users,
            part=part,
            candidates=cfg.taste_candidates,
            ratios=cfg.taste_ratios,
            samplers=cfg.taste_samplers,
            seed=seed + (0 if part == "test" else 1),
        )
    test = built["test"].lists
    if shown is not None and not shown.empty:
        test = pd.concat([test, shown], ignore_index=True)
    all_pairs = pd.concat([test[["user_id", "item_id"]], built["train"].pairs]).drop_duplicates()
    return {
        "test": test,
        "train": built["train"].lists,
        "pairs": all_pairs.reset_index(drop=True),
        "popularity": dict(
            zip(items["item_id"].astype(str), items["train_count"].astype(float), strict=True)
        ),
    }


def baseline_taste_scores(
    lists: dict[str, Any],
    fitted: FittedBaselines,
    watch_prior: WatchPrior | None,
    store: UnitStore,
    *,
    ratings: bool = True,
) -> list[pd.DataFrame]:
    """Scores of the implicit-feedback baselines (popularity, item-kNN, implicit MF,
    fitted on the same training data as the rating baselines), of the agents' watch
    prior alone when there is one, and of the rating baselines (predicted rating; the
    global mean is constant and left out; not for a log without ratings: `ratings`
    False); each restored from `store` when there."""
    pairs = lists["pairs"]

    def implicit(kind: str) -> tuple[pd.DataFrame, dict[str, Any]]:
        scorer = fit_implicit(kind, fitted.training, seed=fitted.seed)
        return pairs.assign(model=kind, score=scorer.score_pairs(pairs)), {}

    def prior_odds(prior: WatchPrior) -> tuple[pd.DataFrame, dict[str, Any]]:
        odds = np.zeros(len(pairs))
        items = pairs["item_id"].astype(str).to_numpy()
        for user, idx in pairs.groupby(pairs["user_id"].astype(str)).indices.items():
            odds[idx] = prior.log_odds(str(user), items[idx].tolist())
        return pairs.assign(model=WATCH_PRIOR_MODEL, score=odds), {}

    def rating(name: str) -> tuple[pd.DataFrame, dict[str, Any]]:
        scores = fitted.predict(name, pairs, None).predicted
        scores = np.where(np.isnan(scores), np.nanmin(scores), scores)
        return pairs.assign(model=name, score=scores), {}

    out = []
    kinds = fitted.config.taste_baselines
    with progress("taste baselines", total=len(kinds), unit="models") as advance:
        for kind in kinds:
            out.append(store.get(kind, lambda kind=kind: implicit(kind))[0])
            advance(1)
    if watch_prior is not None:
        out.append(store.get(WATCH_PRIOR_MODEL, lambda: prior_odds(watch_prior))[0])
    for name in fitted.config.baselines if ratings else []:
        if name != "global_mean":
            out.append(store.get(name, lambda name=name: rating(name))[0])
    return out


def taste_metrics(
    lists: dict[str, Any],
    scores: list[pd.DataFrame],
    cfg: EvaluateConfig,
    seed: int,
    out: Path,
) -> dict[str, Any]:
    """Calibrate each model's threshold on train lists, measure on test lists;
    writes ``taste.json`` (summary), ``taste.parquet`` (per user and list),
    ``taste_scores.parquet`` (every score) and ``taste_lists.parquet``."""
    scored = pd.concat(scores, ignore_index=True)
    write_parquet(scored, EVAL.taste_scores.under(out))
    write_parquet(
        pd.concat([lists["test"].assign(part="test"), lists["train"].assign(part="train")]),
        EVAL.taste_lists.under(out),
    )
    per_user: list[pd.DataFrame] = []
    summary: dict[str, Any] = {}
    for sampler in cfg.taste_samplers:
        for ratio in cfg.taste_ratios:
            key = f"{sampler} 1:{ratio}"
            summary[key] = {}
            for model, mine in scored.groupby("model", sort=False):
                parts = {}
                for part in ("train", "test"):
                    frame = lists[part]
                    frame = frame[(frame.sampler == sampler) & (frame.ratio == ratio)]
                    parts[part] = frame.merge(
                        mine[["user_id", "item_id", "score"]], on=["user_id", "item_id"]
                    )
                threshold = best_f1_threshold(
                    parts["train"]["score"].to_numpy(), parts["train"]["positive"].to_numpy()
                )
                result = list_metrics(parts["test"], threshold)
                result.insert(0, "model", model)
                result.insert(1, "sampler", sampler)
                result.insert(2, "ratio", ratio)
                per_user.append(result.assign(threshold=threshold))
                entry: dict[str, Any] = {"users": int(len(result)), "threshold": threshold}
                if model in AGENT_ADAPTERS or model == WATCH_PRIOR_MODEL:  # probabilities
                    p = parts["test"]["score"].to_numpy("float64")
                    if model == WATCH_PRIOR_MODEL:
                        p = 1.0 / (1.0 + np.exp(-p))  # its score is log-odds
                    entry["calibration"] = calibration(p, parts["test"]["positive"])
                for metric in TASTE_METRICS:
                    interval = mean_interval(
                        result[metric].to_numpy(), rounds=cfg.bootstrap_rounds, seed=seed
                    )
                    entry[metric] = round(interval.estimate, 6)
                    entry[f"{metric}_ci"] = interval.as_list()
                summary[key][str(model)] = entry
            rows = pd.concat(per_user, ignore_index=True)
            rows = rows[(rows.sampler == sampler) & (rows.ratio == ratio)]
            _compare_agents(summary[key], rows, cfg.bootstrap_rounds, seed)
    test = lists["test"]
    for sampler in test.loc[test["sampler"].str.startswith(SHOWN), "sampler"].unique():
        key = f"shown {sampler.removeprefix(SHOWN)}"
        frame = test[test["sampler"] == sampler]
        summary[key] = {}
        rows = []
        for model, mine in scored.groupby("model", sort=False):
            both = frame.merge(mine[["user_id", "item_id", "score"]], on=["user_id", "item_id"])
            result = list_metrics(both, np.inf)[["user_id", "auc"]].dropna()
            result.insert(0, "model", model)
            result.insert(1, "sampler", sampler)
            result.insert(2, "ratio", 0)
            rows.append(result)
            interval = mean_interval(
                result["auc"].to_numpy(), rounds=cfg.bootstrap_rounds, seed=seed
            )
            summary[key][str(model)] = {
                "users": int(len(result)),
                "positives": round(float(frame["positive"].mean()), 4) if len(frame) else None,
                "auc": round(interval.estimate, 6),
                "auc_ci": interval.as_list(),
            }
        per_user += rows
        _compare_agents(
            summary[key], pd.concat(rows, ignore_index=True), cfg.bootstrap_rounds, seed, ("auc",)
        )
    write_parquet(pd.concat(per_user, ignore_index=True), EVAL.taste_per_user.under(out))
    atomic_write_text(EVAL.taste.under(out), json.dumps(summary, indent=2) + "\n")
    return summary


def _compare_agents(
    models: dict[str, Any],
    rows: pd.DataFrame,
    rounds: int,
    seed: int,
    metrics: tuple[str, ...] = ("auc", "f1"),
) -> None:
    """Add to each agent's (and the watch prior's) entry its paired difference from the
    best baseline of this list kind (by AUC) and, for the LoRA agents, from the watch
    prior alone: per-user AUC and F1 differences, bootstrap over users."""
    baselines = [m for m in models if m not in AGENT_ADAPTERS and m != WATCH_PRIOR_MODEL]
    if not baselines:
        return
    best = max(baselines, key=lambda m: models[m]["auc"])
    rows = rows.set_index(["model", "user_id"])

    def paired(model: str, other: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"against": other}
        for metric in metrics:
            diff = (rows.loc[model, metric] - rows.loc[other, metric]).dropna()
            interval = mean_interval(diff.to_numpy(), rounds=rounds, seed=seed)
            entry[metric] = round(interval.estimate, 6)
            entry[f"{metric}_ci"] = interval.as_list()
        low, high = entry["auc_ci"]
        entry["verdict"] = "better" if low > 0 else "worse" if high < 0 else "no clear difference"
        return entry

    for model in models:
        if model in AGENT_ADAPTERS or model == WATCH_PRIOR_MODEL:
            models[model]["vs_best_baseline"] = paired(model, best)
        if model in AGENT_ADAPTERS and WATCH_PRIOR_MODEL in models and model != "zero-shot":
            models[model]["vs_prior_alone"] = paired(model, WATCH_PRIOR_MODEL)
