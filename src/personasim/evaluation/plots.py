"""The report's figures, drawn with matplotlib and returned as PNG bytes.

Every function takes plain tables or the dictionaries of ``eval/metrics.json`` and
``eval/taste.json`` and returns the PNG of one figure, so the report can inline them
and stay a single file.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "feedback_drift",
    "rating_calibration",
    "rating_histograms",
    "rmse_bars",
    "simulated_vs_offline",
    "taste_bars",
    "watch_calibration",
]

_AGENT_COLOUR = "#c2410c"
_BASELINE_COLOUR = "#1d4ed8"
_OTHER_COLOUR = "#6b7280"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def _colour(kind: str | None) -> str:
    colours = {"agent": _AGENT_COLOUR, "baseline": _BASELINE_COLOUR, "prior": _BASELINE_COLOUR}
    return colours.get(kind or "", _OTHER_COLOUR)


def rmse_bars(metrics: dict[str, dict[str, Any]]) -> bytes:
    """RMSE and MAE of every model on the shared pairs, with 95% intervals."""
    plt = _pyplot()
    names = [m for m in metrics if "compared" in metrics[m]]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(names) + 1.6), dpi=110)
    for ax, metric in zip(axes, ("rmse", "mae"), strict=True):
        values = np.array([metrics[m]["compared"][metric] for m in names])
        ci = np.array([metrics[m]["compared"][f"{metric}_ci"] for m in names])
        errors = np.abs(ci.T - values)
        colours = [_colour(metrics[m].get("kind")) for m in names]
        ax.barh(names, values, xerr=errors, color=colours, capsize=3, alpha=0.85)
        ax.invert_yaxis()
        ax.set_xlabel(f"{metric.upper()} (lower is better), 95% interval")
        ax.grid(axis="x", alpha=0.3)
    axes[1].set_yticklabels([])
    fig.suptitle("Rating error on the pairs every model scored")
    return _png(fig)


def taste_bars(taste: dict[str, dict[str, dict[str, Any]]], metric: str = "f1") -> bytes:
    """One panel per list kind (sampler and ratio): `metric` of every model with its
    95% interval."""
    plt = _pyplot()
    kinds = [k for k in taste if any(metric in e for e in taste[k].values())]
    models = list(dict.fromkeys(m for k in kinds for m in taste[k]))
    columns = min(3, len(kinds))
    rows = int(np.ceil(len(kinds) / columns))
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(4.2 * columns, 0.32 * len(models) * rows + 1.2 * rows),
        dpi=110,
        squeeze=False,
    )
    for ax, kind in zip(axes.flat, kinds, strict=False):
        names = [m for m in models if metric in taste[kind].get(m, {})]
        values = np.array([taste[kind][m][metric] for m in names])
        ci = np.array([taste[kind][m][f"{metric}_ci"] for m in names], dtype=float)
        errors = np.nan_to_num(np.abs(ci.T - values))
        colours = [
            _AGENT_COLOUR
            if "lora" in m or m == "zero-shot"
            else _OTHER_COLOUR
            if m == "popularity"
            else _BASELINE_COLOUR
            for m in names
        ]
        ax.barh(names, values, xerr=errors, color=colours, capsize=2, alpha=0.85)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(kind, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        if metric == "auc":
            ax.axvline(0.5, color="black", lw=0.8, ls="--")
    for ax in list(axes.flat)[len(kinds) :]:
        ax.axis("off")
    fig.suptitle(f"Taste alignment: {metric.upper()} (higher is better), 95% interval")
    fig.tight_layout()
    return _png(fig)


def rating_histograms(metrics: dict[str, dict[str, Any]]) -> bytes:
    """Predicted vs true share of each rating, one small panel per model."""
    plt = _pyplot()
    names = [m for m in metrics if (metrics[m].get("compared") or {}).get("histogram")]
    columns = min(4, len(names))
    rows = int(np.ceil(len(names) / columns))
    fig, axes = plt.subplots(
        rows, columns, figsize=(3.2 * columns, 2.6 * rows), dpi=110, squeeze=False, sharey=True
    )
    for ax, name in zip(axes.flat, names, strict=False):
        compared = metrics[name]["compared"]
        hist = compared["histogram"]
        x = np.asarray(hist["values"])
        ax.bar(x - 0.2, hist["true"], width=0.4, color="#9ca3af", label="true")
        ax.bar(
            x + 0.2,
            hist["predicted"],
            width=0.4,
            color=_colour(metrics[name].get("kind")),
            label="predicted",
        )
        ax.set_title(
            f"{name}\nW1 {compared['wasserstein']:.2f}  KL {compared['kl']:.2f}", fontsize=9
        )
        ax.set_xticks(x)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Rating distribution: true vs predicted (rounded)")
    fig.tight_layout()
    return _png(fig)


def _reliability_axes(ax: Any, span: tuple[float, float], x: str, y: str, title: str) -> None:
    """Square axes over `span` with the diagonal a calibrated model lies on."""
    ax.plot(span, span, color="black", lw=0.8, ls="--")
    ax.set_xlabel(f"{x} (bin mean)")
    ax.set_ylabel(f"{y} (bin mean)")
    ax.set_xlim(*span)
    ax.set_ylim(*span)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)


def rating_calibration(predictions: pd.DataFrame, models: Sequence[str]) -> bytes:
    """Mean true rating against the predicted rating (binned by 0.5), per model: a
    calibrated model lies on the diagonal."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=110)
    cmap = plt.get_cmap("tab10")
    bins = np.arange(0.75, 5.76, 0.5)
    for k, name in enumerate(models):
        mine = predictions[(predictions["model"] == name) & predictions["valid"]]
        if mine.empty:
            continue
        which = np.digitize(mine["predicted"].to_numpy("float64"), bins)
        grouped = mine.assign(bin=which).groupby("bin")
        stats = grouped.agg(
            pred=("predicted", "mean"), true=("rating", "mean"), n=("rating", "size")
        )
        stats = stats[stats["n"] >= 5]
        ax.plot(stats["pred"], stats["true"], marker="o", ms=4, color=cmap(k % 10), label=name)
    _reliability_axes(ax, (1, 5), "predicted rating", "true rating", "Rating calibration")
    return _png(fig)


def watch_calibration(scores: pd.DataFrame, lists: pd.DataFrame) -> bytes | None:
    """Share of held-out positives against the agents' P(watch), in ten bins (with 5+
    candidates), on the test lists; None when no agent was scored."""
    agents = [m for m in dict.fromkeys(scores["model"]) if "lora" in m or m == "zero-shot"]
    if not agents:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=110)
    cmap = plt.get_cmap("tab10")
    labelled = lists[["user_id", "item_id", "positive"]].drop_duplicates(["user_id", "item_id"])
    for k, name in enumerate(agents):
        mine = scores[scores["model"] == name].merge(labelled, on=["user_id", "item_id"])
        if mine.empty:
            continue
        which = np.minimum((mine["score"].to_numpy("float64") * 10).astype(int), 9)
        stats = (
            mine.assign(bin=which)
            .groupby("bin")
            .agg(p=("score", "mean"), rate=("positive", "mean"), n=("score", "size"))
        )
        stats = stats[stats["n"] >= 5]
        ax.plot(stats["p"], stats["rate"], marker="o", ms=4, color=cmap(k % 10), label=name)
    _reliability_axes(
        ax, (0, 1), "P(watch) of the agent", "share of held-out positives", "Watch calibration"
    )
    return _png(fig)


def simulated_vs_offline(recommenders: dict[str, dict[str, Any]], k: int) -> bytes:
    """Each recommender at (offline nDCG@k, simulated likes per session), and at
    (nDCG@k, watch rate): agreeing rankings fall on an increasing line."""
    plt = _pyplot()
    names = list(recommenders)
    panels = [
        (metric, label)
        for metric, label in (("likes", "liked items per session"), ("watch_rate", "watch rate"))
        if any(metric in recommenders[n] for n in names)  # no likes in a log without ratings
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), dpi=110, squeeze=False)
    for ax, (metric, label) in zip(axes[0], panels, strict=True):
        x = [recommenders[n].get("ndcg", np.nan) for n in names]
        y = [recommenders[n].get(metric, np.nan) for n in names]
        ax.scatter(x, y, color=_AGENT_COLOUR, zorder=3)
        for name, xi, yi in zip(names, x, y, strict=True):
            ax.annotate(name, (xi, yi), textcoords="offset points", xytext=(5, 4), fontsize=9)
        ax.set_xlabel(f"offline nDCG@{k} (held-out log)")
        ax.set_ylabel(f"simulated: {label}")
        ax.grid(alpha=0.3)
    fig.suptitle("Recommenders: simulated sessions vs the held-out log")
    return _png(fig)


_FEEDBACK_PANELS = {
    "watch_rate": "watch rate of the sessions",
    "likes": "likes per session",
    "coverage": "share of the catalogue listed",
    "gini_exposure": "Gini of item exposure",
    "genre_entropy": "genre entropy of a list (bits)",
    "popularity": "popularity percentile of listed items",
    "history_drift": "drift of users' histories (JS, bits)",
}
"""The feedback study's measures (personasim.simulation.feedback), one panel each."""


def feedback_drift(feedback: pd.DataFrame) -> bytes:
    """One line plot per measure of the feedback study: rounds on x, one line per
    recommender."""
    plt = _pyplot()
    panels = [(m, label) for m, label in _FEEDBACK_PANELS.items() if m in feedback]
    columns = 4
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(14, 3.2 * rows), dpi=110, squeeze=False)
    for ax, (column, label) in zip(axes.flat, panels, strict=False):
        for name, part in feedback.groupby("recommender", sort=False):
            ax.plot(part["round"], part[column], marker="o", markersize=3, label=str(name))
        ax.set_xlabel("feedback round")
        ax.set_title(label, fontsize=9)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Feedback loop: what the agents watched retrains every recommender")
    fig.tight_layout()
    return _png(fig)
