"""The fidelity report: one self-contained HTML file and a Markdown summary.

:func:`collect_report` reads a run folder's ``eval/`` (and the persona cards and map
when there); :func:`render_html` turns it into a single HTML file whose figures are
inlined PNGs and whose style is inline CSS, so it opens offline and can be mailed;
:func:`render_markdown` writes the tables for pasting into a paper or an issue.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from personasim.evaluation import plots
from personasim.evaluation.fidelity import TRAITS
from personasim.evaluation.report_template import HTML_TEMPLATE

__all__ = [
    "ReportData",
    "agreement_rows",
    "collect_report",
    "feedback_rows",
    "feedback_sentences",
    "decisions_text",
    "render_html",
    "render_markdown",
    "simulation_persona_rows",
    "simulation_rows",
    "simulation_verdict",
    "taste_matrix",
    "verdict",
]

_LEVELS = {"1": "low", "2": "medium", "3": "high"}
_STAGES = ("data", "profiles", "personas", "adapters", "eval", "simulate")


@dataclass
class ReportData:
    """Everything the report shows, read from a run folder."""

    title: str
    metrics: dict[str, dict[str, Any]]
    taste: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    groups: pd.DataFrame | None = None
    predictions: pd.DataFrame | None = None
    taste_scores: pd.DataFrame | None = None
    taste_lists: pd.DataFrame | None = None
    free_answers: pd.DataFrame | None = None
    personas: list[dict[str, Any]] = field(default_factory=list)
    persona_map: bytes | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    simulation: dict[str, Any] = field(default_factory=dict)
    """``simulate/metrics.json`` when the simulate stage ran."""
    new_items: dict[str, Any] = field(default_factory=dict)
    """``eval/new_items.json``: the models on items no training rating holds."""
    not_measured: dict[str, str] = field(default_factory=dict)
    """What the stages did not measure, and why (a log without ratings: the ratings)."""


def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.exists() else None


def collect_report(root: Path, title: str | None = None) -> ReportData:
    """Read what the report shows from the run folder `root` (``eval/`` must exist)."""
    eval_dir = root / "eval"
    manifest = json.loads((eval_dir / "manifest.json").read_text())
    data = ReportData(
        title=title or f"personasim fidelity report: {root.name}",
        metrics=json.loads((eval_dir / "metrics.json").read_text()),
    )
    if (eval_dir / "taste.json").exists():
        data.taste = json.loads((eval_dir / "taste.json").read_text())
    if (eval_dir / "new_items.json").exists():
        data.new_items = json.loads((eval_dir / "new_items.json").read_text())
    data.groups = _read(eval_dir / "groups.parquet")
    data.predictions = _read(eval_dir / "predictions.parquet")
    data.taste_scores = _read(eval_dir / "taste_scores.parquet")
    data.taste_lists = _read(eval_dir / "taste_lists.parquet")
    data.free_answers = _read(eval_dir / "free_generation.parquet")
    cards = root / "personas" / "cards.json"
    if cards.exists():
        data.personas = json.loads(cards.read_text())
    if (root / "personas" / "map.png").exists():
        data.persona_map = (root / "personas" / "map.png").read_bytes()
    simulation = root / "simulate" / "metrics.json"
    if simulation.exists():
        data.simulation = json.loads(simulation.read_text())
    for stage in _STAGES:
        path = root / stage / "manifest.json"
        if path.exists():
            m = json.loads(path.read_text())
            data.stages.append(
                {
                    "stage": m["stage"],
                    "wall_time_s": m.get("wall_time_s"),
                    "peak_rss_mib": m.get("peak_rss_mib"),
                    "at": m.get("started_at"),
                }
            )
    summary = manifest.get("summary", {})
    data.not_measured.update(summary.get("not_measured", {}))
    data.not_measured.update(data.simulation.get("not_measured", {}))
    rated = "ratings" not in data.not_measured
    data.facts = {
        "test ratings" if rated else "test interactions": summary.get("test_ratings"),
        "pairs scored by every model": summary.get("agent_pairs") if rated else None,
        "best classical baseline": summary.get("best_baseline"),
        "seed": manifest.get("seed"),
        "evaluated at": manifest.get("started_at"),
        "personasim": manifest.get("versions", {}).get("personasim"),
    }
    return data


# --- tables ---------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ci(values: list[float] | None, digits: int = 3) -> str:
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
                "RMSE": _fmt(c.get("rmse", m.get("rmse"))),
                "RMSE 95%": _ci(c.get("rmse_ci")),
                "MAE": _fmt(c.get("mae", m.get("mae"))),
                "URR scored": _fmt(m.get("urr"), 3),
                "URR free text": _fmt(free.get("urr"), 3) if free else "–",
                "W1": _fmt(c.get("wasserstein"), 3),
                "KL": _fmt(c.get("kl"), 3),
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
                "RMSE": _fmt(m["rmse"]),
                "RMSE 95%": _ci(m.get("rmse_ci")),
                "MAE": _fmt(m["mae"]),
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
    return f"{vs['rmse_difference']:+.4f} ({_ci(vs['ci'], 4)}) {vs['verdict']}"


_AGENTS = ("zero-shot", "global-lora", "persona-lora")


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
            row[kind] = f"{_fmt(entry[metric], 3)} {_ci(entry.get(f'{metric}_ci'))}{star}"
        rows.append(row)
    return kinds, rows


def verdict(data: ReportData) -> list[str]:
    """The answer at a glance: the best agent against the best classical baseline, for
    the ratings and for taste, each with its paired 95% interval."""
    lines = simulation_verdict(data.simulation)
    compared = {name: m["compared"] for name, m in data.metrics.items() if "compared" in m}
    agents = [n for n in compared if n in _AGENTS and "vs_best_baseline" in compared[n]]
    if agents:
        best = min(agents, key=lambda n: compared[n]["rmse"])
        vs = compared[best]["vs_best_baseline"]
        lines.append(
            f"Ratings: {best} RMSE {_fmt(compared[best]['rmse'])} against {vs['baseline']} "
            f"{_fmt(compared[vs['baseline']]['rmse'])}: difference "
            f"{vs['rmse_difference']:+.4f} {_ci(vs['ci'])}, {vs['verdict']}."
        )
        alone = compared[best].get("vs_prior_alone")
        if alone:
            lines.append(
                f"What the text adds: {best} minus its CF prior alone (no language model) "
                f"{alone['rmse_difference']:+.4f} {_ci(alone['ci'])}, {alone['verdict']}."
            )
    if data.taste:
        better = worse = tied = 0
        details = []
        for kind, models in data.taste.items():
            mine = [m for m in models if m in _AGENTS and "vs_best_baseline" in models[m]]
            if not mine:
                continue
            top = max(mine, key=lambda m: models[m]["auc"])
            vs = models[top]["vs_best_baseline"]
            better += vs["verdict"] == "better"
            worse += vs["verdict"] == "worse"
            tied += vs["verdict"] == "no clear difference"
            details.append(
                f"{kind}: {top} AUC {_fmt(models[top]['auc'], 3)} vs {vs['against']} "
                f"{vs['auc']:+.3f} {_ci(vs['auc_ci'])}"
            )
        if details:
            lines.append(
                f"Taste: the best agent is above the best baseline on {better} list kind(s), "
                f"below on {worse}, not clearly different on {tied} ({'; '.join(details)})."
            )
    return lines


def decisions_text(simulation: dict[str, Any]) -> str:
    """Who made the agents' decisions: the language model, the priors alone (an adapter
    whose LM weight is 0), or both; empty for a simulation that did not say."""
    decisions = simulation.get("decisions")
    if not decisions:
        return ""
    model, prior = decisions.get("language_model", 0), decisions.get("prior", 0)
    total = model + prior
    if not total:
        return ""
    return (
        f"Decisions: {model:,} by the language model and {prior:,} by the priors alone "
        f"({prior / total:.0%}: adapters whose fitted LM weight is 0, or agents.language_model "
        f"= {simulation.get('settings', {}).get('language_model')!r})."
    )


def simulation_verdict(simulation: dict[str, Any]) -> list[str]:
    """The simulation's answer, first: which recommender the simulated users prefer (by
    likes per session), by how much over the next and how sure (paired intervals over
    users), and whether the checks against the simulator's own model hold."""
    intervals = simulation.get("intervals")
    if not intervals:
        return []
    measure = "likes" if "likes" in intervals["best"] else "watch_rate"  # no ratings: watches
    best = intervals["best"][measure]
    mine = intervals["recommenders"][best]
    rivals = intervals["vs_best"][measure]
    unit = "likes per session" if measure == "likes" else "of the items shown watched"
    lines = []
    if rivals:
        second = max(rivals, key=lambda n: rivals[n]["difference"])
        vs = rivals[second]
        sure = "clearly" if vs["verdict"] == "worse" else "not clearly"
        lines.append(
            f"Simulation: the simulated users prefer {best} ({_fmt(mine[measure], 2)} {unit}, "
            f"95% {_ci(mine[f'{measure}_ci'], 2)}), {sure} ahead of {second} "
            f"(by {-vs['difference']:+.2f}, 95% {_ci([-vs['ci'][1], -vs['ci'][0]], 2)}); "
            f"{sum(v['verdict'] == 'worse' for v in rivals.values())} of {len(rivals)} "
            "recommenders are clearly below it."
        )
    for check in simulation.get("checks", {}).values():
        if check.get("sentence"):
            lines.append(check["sentence"])
    return lines


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
        row.update({m: _fmt(by_model.get(m)) for m in models})
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
        row.update({title: _fmt(m.get(key), digits) for title, key, digits in columns})
        spread = simulation.get("intervals", {}).get("recommenders", {}).get(name, {})
        for title, key in (("watch rate", "watch_rate"), ("likes/session", "likes")):
            if f"{key}_ci" in spread and title in row:
                row[title] += f" {_ci(spread[f'{key}_ci'])}"
        row[f"nDCG@{k}"] = _fmt(m.get("ndcg"), 4)
        row[f"Recall@{k}"] = _fmt(m.get("recall"), 4)
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
                "Kendall tau": _fmt(result.get("kendall_tau"), 3),
                "Spearman": _fmt(result.get("spearman"), 3),
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
            watch = _fmt(m.get("watch_rate"), 2)
            row[rec] = f"{_fmt(m.get('likes'), 2)} / {watch}" if "likes" in m else watch
        rows.append(row)
    return rows


def feedback_rows(simulation: dict[str, Any]) -> list[dict[str, str]]:
    """The feedback study, per recommender and round (likes only where rated)."""
    rows = []
    for r in simulation.get("feedback", []):
        row = {
            "recommender": r["recommender"],
            "round": str(r["round"]),
            "watch rate": _fmt(r.get("watch_rate"), 3),
        }
        if "likes" in r:
            row["likes/session"] = _fmt(r.get("likes"), 2)
        row.update(
            {
                "coverage": _fmt(r.get("coverage"), 3),
                "Gini of exposure": _fmt(r.get("gini_exposure"), 3),
                "genre entropy": _fmt(r.get("genre_entropy"), 3),
                "popularity": _fmt(r.get("popularity"), 3),
                "history drift": _fmt(r.get("history_drift"), 4),
                "items added": str(r.get("items_added", r.get("liked_added"))),
            }
        )
        rows.append(row)
    return rows


def feedback_sentences(simulation: dict[str, Any]) -> list[str]:
    """One sentence per recommender: does the feedback loop narrow its lists, broaden
    them or leave them as they were (with the numbers)."""
    return [t["sentence"] for t in (simulation.get("feedback_trends") or {}).values()]


def _user_agreement_text(simulation: dict[str, Any]) -> str:
    user = simulation.get("per_user_agreement", {})
    tau = user.get("kendall_tau", {})
    rho = user.get("spearman", {})
    simulated = str(user.get("simulated", "likes")).replace("_", " ")
    return (
        f"per user ({simulated} vs nDCG over the recommenders, {user.get('defined_users', 0)} of "
        f"{user.get('users', 0)} users with both sides varying): Kendall tau "
        f"{_fmt(tau.get('mean'), 3)} ({_fmt(tau.get('low'), 3)} to {_fmt(tau.get('high'), 3)}), "
        f"Spearman {_fmt(rho.get('mean'), 3)} ({_fmt(rho.get('low'), 3)} to "
        f"{_fmt(rho.get('high'), 3)})"
    )


def _markdown_table(rows: list[dict[str, str]]) -> str:
    if not rows:
        return "_none_\n"
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r[h] for h in header) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def render_markdown(data: ReportData) -> str:
    """The report's tables as Markdown."""
    parts = [f"# {data.title}\n"]
    parts.append("\n".join(f"- {k}: {v}" for k, v in data.facts.items() if v is not None) + "\n")
    lines = verdict(data)
    if lines:
        parts.append("\n## Verdict\n")
        parts.append("\n".join(f"- {line}" for line in lines) + "\n")
    if data.not_measured:
        parts.append("\n## Not measured\n")
        parts.append("\n".join(f"- {why}" for why in data.not_measured.values()) + "\n")
    if data.metrics:
        parts.append("\n## Rating fidelity (pairs every model scored, 95% user-bootstrap)\n")
        parts.append(_markdown_table(rating_rows(data.metrics)))
    if data.new_items:
        parts.append(f"\n## New items ({data.new_items['items']} items no training rating holds)\n")
        parts.append(_markdown_table(new_item_rows(data.new_items)))
    if data.taste:
        parts.append("\n## Taste alignment: AUC per list kind (★ best; 95% user-bootstrap)\n")
        parts.append(_markdown_table(taste_matrix(data.taste, "auc")[1]))
        parts.append("\n## Taste alignment: F1 (thresholds calibrated on train lists)\n")
        parts.append(_markdown_table(taste_matrix(data.taste, "f1")[1]))
    _, rows = group_rows(data.groups)
    if rows:
        parts.append("\n## RMSE per persona and trait level\n")
        parts.append(_markdown_table(rows))
    if data.simulation.get("recommenders"):
        head = data.simulation["agreement"]["headline"]
        parts.append("\n## Recommenders: simulated sessions and the held-out log\n")
        parts.append(_markdown_table(simulation_rows(data.simulation)))
        parts.append(
            f"\nAgreement ({head.get('simulated', 'likes').replace('_', ' ')} vs nDCG, {head['n']} "
            "recommenders): Kendall tau "
            f"{_fmt(head['kendall_tau'], 3)}, Spearman {_fmt(head['spearman'], 3)}; "
            f"{_user_agreement_text(data.simulation)}.\n"
        )
        if decisions_text(data.simulation):
            parts.append(decisions_text(data.simulation) + "\n")
        if data.simulation.get("feedback"):
            parts.append("\n## Feedback loop\n")
            parts.extend(f"- {sentence}" for sentence in feedback_sentences(data.simulation))
            parts.append("")
            parts.append(_markdown_table(feedback_rows(data.simulation)))
    if data.stages:
        parts.append("\n## Wall time and peak memory per stage\n")
        parts.append(
            _markdown_table(
                [
                    {
                        "stage": s["stage"],
                        "seconds": _fmt(s["wall_time_s"], 1),
                        "peak RSS (MiB)": _fmt(s.get("peak_rss_mib"), 0),
                    }
                    for s in data.stages
                ]
            )
        )
    return "\n".join(parts)


# --- HTML -----------------------------------------------------------------------------


def _data_uri(png: bytes | None) -> str | None:
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode()


def render_html(data: ReportData) -> str:
    """The whole report as one HTML document (figures inlined, no external resource)."""
    from jinja2 import Environment, select_autoescape

    figures: list[tuple[str, str, str | None]] = []
    if any("compared" in m for m in data.metrics.values()):
        figures.append(
            (
                "Rating error with 95% intervals",
                "RMSE and MAE on the pairs every model scored; intervals from resampling "
                "users. Orange: LM agents; blue: classical baselines.",
                _data_uri(plots.rmse_bars(data.metrics)),
            )
        )
    if data.taste:
        for metric, text in (
            ("f1", "F1 of the yes/no decisions, each model's threshold set on train lists."),
            ("auc", "AUC: threshold-free ranking of a user's items above the negatives."),
        ):
            figures.append(
                (
                    f"Taste alignment: {metric.upper()}",
                    text + " Popularity-matched negatives take away popularity's edge.",
                    _data_uri(plots.taste_bars(data.taste, metric)),
                )
            )
    if any((m.get("compared") or {}).get("histogram") for m in data.metrics.values()):
        figures.append(
            (
                "Rating distributions",
                "Share of each rating, true (grey) and predicted (rounded to the scale). "
                "W1: Wasserstein distance in rating points; KL(true || predicted).",
                _data_uri(plots.rating_histograms(data.metrics)),
            )
        )
    if data.predictions is not None:
        figures.append(
            (
                "Rating calibration",
                "Mean true rating per bin of predicted rating: on the diagonal is calibrated.",
                _data_uri(plots.rating_calibration(data.predictions, list(data.metrics))),
            )
        )
    if data.taste_scores is not None and data.taste_lists is not None:
        test_lists = data.taste_lists[data.taste_lists["part"] == "test"]
        png = plots.watch_calibration(data.taste_scores, test_lists)
        if png is not None:
            figures.append(
                (
                    "Watch calibration",
                    "Share of held-out positives per bin of the agents' P(watch) on the "
                    "test lists (the share depends on the ratios of the lists).",
                    _data_uri(png),
                )
            )
    simulation = data.simulation if data.simulation.get("recommenders") else {}
    if simulation:
        k = simulation.get("settings", {}).get("offline_k", 10)
        figures.append(
            (
                "Simulated vs offline",
                "Each recommender's liked items per session and watch rate in the agents' "
                f"sessions against its nDCG@{k} on the held-out log.",
                _data_uri(plots.simulated_vs_offline(simulation["recommenders"], k)),
            )
        )
        if simulation.get("feedback"):
            figures.append(
                (
                    "Feedback loop",
                    "Round 0 is the first simulation; each later round retrains every "
                    "recommender with the items the agents watched. Measured on each round's "
                    "sessions and top-k lists of the same users.",
                    _data_uri(plots.feedback_drift(pd.DataFrame(simulation["feedback"]))),
                )
            )
    models, groups = group_rows(data.groups)
    free = []
    if data.free_answers is not None and not data.free_answers.empty:
        for _, row in data.free_answers.groupby("model", sort=False).head(4).iterrows():
            free.append(
                {
                    "model": row["model"],
                    "truth": _fmt(float(row["rating"]), 0),
                    "answer": row["answer"],
                    "parsed": _fmt(row["parsed"], 1) if row["valid"] else "no rating",
                }
            )
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    template = env.from_string(HTML_TEMPLATE)
    return template.render(
        title=data.title,
        generated=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        facts={k: v for k, v in data.facts.items() if v is not None},
        rating_rows=rating_rows(data.metrics),
        new_items=data.new_items,
        new_item_rows=new_item_rows(data.new_items) if data.new_items else [],
        verdict=verdict(data),
        taste_auc=taste_matrix(data.taste, "auc")[1] if data.taste else [],
        taste_f1=taste_matrix(data.taste, "f1")[1] if data.taste else [],
        group_models=models,
        group_rows=groups,
        figures=figures,
        persona_map=_data_uri(data.persona_map),
        personas=data.personas,
        free_answers=free,
        stages=data.stages,
        simulation=simulation,
        simulation_rows=simulation_rows(simulation) if simulation else [],
        agreement_rows=agreement_rows(simulation) if simulation else [],
        simulation_persona_rows=simulation_persona_rows(simulation) if simulation else [],
        feedback_rows=feedback_rows(simulation) if simulation else [],
        feedback_sentences=feedback_sentences(simulation) if simulation else [],
        decisions_text=decisions_text(simulation) if simulation else "",
        user_agreement=_user_agreement_text(simulation) if simulation else "",
        not_measured=data.not_measured,
    )
