"""Build the fidelity report's tables: rows of formatted cells, one dict per row.

Each function turns a part of :class:`~personasim.evaluation.report_data.ReportData`
(the metrics, the taste results, the simulation's metrics) into rows whose keys are the
column titles; both renderers (:mod:`personasim.evaluation.report`) show the same rows.
:func:`format_value` and :func:`format_interval` write the cells.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from personasim.evaluation.fidelity import TRAITS

__all__ = [
    "agreement_rows",
    "feedback_rows",
    "format_interval",
    "format_value",
    "group_rows",
    "new_item_rows",
    "rating_rows",
    "simulation_persona_rows",
    "simulation_rows",
    "taste_matrix",
]

_LEVELS = {"1": "low", "2": "medium", "3": "high"}


def format_value(value: Any, digits: int = 4) -> str:
    """A table cell: a float to `digits` decimals, a dash for a missing or NaN value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_interval(values: list[float] | None, digits: int = 3) -> str:
    """A 95% interval as ``low–high``, or empty where a bound is missing or NaN."""
    if not values or any(v is None or math.isnan(v) for v in values):
        return ""
    return f"{values[0]:.{digits}f}–{values[1]:.{digits}f}"


def rating_rows(metrics: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """One row per model: RMSE/MAE with intervals, URRs, distribution distances and the
    paired comparison with the best baseline (all on the shared pairs)."""
    rows = []
    for name, m in metrics.items():
        c = m.get("compared") or {}
        vs = c.get("vs_best_baseline") or {}
        free = m.get("free_generation") or {}
        rows.append(
            {
                "model": name,
                "kind": m.get("kind", ""),
                "RMSE": format_value(c.get("rmse", m.get("rmse"))),
                "RMSE 95%": format_interval(c.get("rmse_ci")),
                "MAE": format_value(c.get("mae", m.get("mae"))),
                "URR scored": format_value(m.get("urr"), 3),
                "URR free text": format_value(free.get("urr"), 3) if free else "–",
                "W1": format_value(c.get("wasserstein"), 3),
                "KL": format_value(c.get("kl"), 3),
                "vs best baseline": (
                    _versus(vs) if vs else "(best)" if m.get("kind") == "baseline" and c else "–"
                ),
                "vs prior alone": _versus(c.get("vs_prior_alone")),
                "pairs": str(c.get("n", m.get("n", ""))),
            }
        )
    return rows


def new_item_rows(new_items: dict[str, Any]) -> list[dict[str, str]]:
    """One row per model on the pairs of items nobody rated in training."""
    rows = []
    for name, m in new_items.get("models", {}).items():
        rows.append(
            {
                "model": name,
                "kind": m.get("kind") or "",
                "RMSE": format_value(m["rmse"]),
                "RMSE 95%": format_interval(m.get("rmse_ci")),
                "MAE": format_value(m["mae"]),
                "vs best baseline": _versus(m.get("vs_best_baseline"))
                if m.get("vs_best_baseline")
                else "(best)"
                if name == new_items.get("best_baseline")
                else "–",
                "vs prior alone": _versus(m.get("vs_prior_alone")),
                "pairs": str(m["n"]),
            }
        )
    return rows


def _versus(vs: dict[str, Any] | None) -> str:
    """A paired RMSE difference, its interval and verdict, or a dash."""
    if not vs:
        return "–"
    return f"{vs['rmse_difference']:+.4f} ({format_interval(vs['ci'], 4)}) {vs['verdict']}"


def taste_matrix(
    taste: dict[str, dict[str, dict[str, Any]]], metric: str = "auc"
) -> tuple[list[str], list[dict[str, str]]]:
    """Models x list kinds: `metric` with its 95% interval; the best of each list kind
    is marked with a star.

    Returns:
        The list kinds (the columns after "model") and one row per model.
    """
    kinds = [k for k in taste if any(metric in e for e in taste[k].values())]
    models = list(dict.fromkeys(m for kind in kinds for m in taste[kind]))
    best = {k: max(taste[k], key=lambda m: taste[k][m][metric]) for k in kinds}
    rows = []
    for model in models:
        row = {"model": model}
        for kind in kinds:
            entry = taste[kind].get(model)
            if entry is None or metric not in entry:
                row[kind] = "–"
                continue
            star = " ★" if best[kind] == model else ""
            interval = format_interval(entry.get(f"{metric}_ci"))
            row[kind] = f"{format_value(entry[metric], 3)} {interval}{star}"
        rows.append(row)
    return kinds, rows


def group_rows(groups: pd.DataFrame | None) -> tuple[list[str], list[dict[str, str]]]:
    """RMSE per persona and trait level: one row per group, one column per model."""
    if groups is None or groups.empty:
        return [], []
    models = list(dict.fromkeys(groups["model"]))
    rows = []
    for (grouping, group), part in groups.groupby(["grouping", "group"], sort=True):
        by_model = dict(zip(part["model"], part["rmse"], strict=True))
        users = int(part["n_users"].max()) if "n_users" in part else ""
        label = _LEVELS.get(str(group), str(group)) if grouping in TRAITS else str(group)
        row = {"grouping": grouping, "group": label, "users": str(users)}
        row.update({m: format_value(by_model.get(m)) for m in models})
        rows.append(row)
    return models, rows


_SIMULATED_COLUMNS = (
    ("watch rate", "watch_rate", 3),
    ("likes/session", "likes", 2),
    ("like rate", "like_rate", 3),
    ("mean rating", "mean_rating", 2),
    ("exit page", "exit_page", 2),
    ("coverage", "coverage", 3),
    ("novelty (bits)", "novelty", 2),
    ("log hits: watched", "log_hit_rate_watched", 3),
    ("log hits: skipped", "log_hit_rate_skipped", 3),
)


def simulation_rows(simulation: dict[str, Any]) -> list[dict[str, str]]:
    """One row per recommender: simulated metrics, then the offline ones."""
    k = simulation.get("settings", {}).get("offline_k", 10)
    table = simulation.get("recommenders", {})
    columns = [c for c in _SIMULATED_COLUMNS if any(c[1] in m for m in table.values())]
    rows = []
    for name, m in table.items():
        row = {"recommender": name}
        row.update({title: format_value(m.get(key), digits) for title, key, digits in columns})
        spread = simulation.get("intervals", {}).get("recommenders", {}).get(name, {})
        for title, key in (("watch rate", "watch_rate"), ("likes/session", "likes")):
            if f"{key}_ci" in spread and title in row:
                row[title] += f" {format_interval(spread[f'{key}_ci'])}"
        row[f"nDCG@{k}"] = format_value(m.get("ndcg"), 4)
        row[f"Recall@{k}"] = format_value(m.get("recall"), 4)
        rows.append(row)
    return rows


def agreement_rows(simulation: dict[str, Any]) -> list[dict[str, str]]:
    """Kendall and Spearman of each simulated metric against each offline one."""
    rows = []
    for pair, result in simulation.get("agreement", {}).get("pairs", {}).items():
        simulated, offline = pair.split("~")
        rows.append(
            {
                "simulated": simulated,
                "offline": offline,
                "Kendall tau": format_value(result.get("kendall_tau"), 3),
                "Spearman": format_value(result.get("spearman"), 3),
                "recommenders": str(result.get("n")),
            }
        )
    return rows


def simulation_persona_rows(simulation: dict[str, Any]) -> list[dict[str, str]]:
    """Liked items per session (and watch rate) per persona and recommender."""
    personas = simulation.get("personas", {})
    names = sorted({p for by in personas.values() for p in by})
    rows = []
    for persona in names:
        row = {"persona": persona}
        for rec, by in personas.items():
            m = by.get(persona, {})
            watch = format_value(m.get("watch_rate"), 2)
            row[rec] = f"{format_value(m.get('likes'), 2)} / {watch}" if "likes" in m else watch
        rows.append(row)
    return rows


def feedback_rows(simulation: dict[str, Any]) -> list[dict[str, str]]:
    """The feedback study, per recommender and round (likes only where rated)."""
    rows = []
    for r in simulation.get("feedback", []):
        row = {
            "recommender": r["recommender"],
            "round": str(r["round"]),
            "watch rate": format_value(r.get("watch_rate"), 3),
        }
        if "likes" in r:
            row["likes/session"] = format_value(r.get("likes"), 2)
        row.update(
            {
                "coverage": format_value(r.get("coverage"), 3),
                "Gini of exposure": format_value(r.get("gini_exposure"), 3),
                "genre entropy": format_value(r.get("genre_entropy"), 3),
                "popularity": format_value(r.get("popularity"), 3),
                "history drift": format_value(r.get("history_drift"), 4),
                "items added": str(r.get("items_added", r.get("liked_added"))),
            }
        )
        rows.append(row)
    return rows
