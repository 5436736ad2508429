"""Render the fidelity report: one self-contained HTML file and a Markdown summary.

:func:`render_html` turns a :class:`~personasim.evaluation.report_data.ReportData`
(read by :func:`~personasim.evaluation.report_data.collect_report`) into a single HTML
file whose figures are inlined PNGs and whose style is inline CSS, so it opens offline
and can be mailed; its Jinja template ships with the package
(``personasim/evaluation/templates/report.html.j2``). :func:`render_markdown` writes the
tables for pasting into a paper or an issue.
"""

from __future__ import annotations

import base64
import datetime as dt

import pandas as pd

from personasim.evaluation import plots
from personasim.evaluation.report_data import ReportData
from personasim.evaluation.report_sentences import (
    decisions_text,
    feedback_sentences,
    user_agreement_text,
    verdict,
)
from personasim.evaluation.report_tables import (
    agreement_rows,
    feedback_rows,
    format_value,
    group_rows,
    new_item_rows,
    rating_rows,
    simulation_persona_rows,
    simulation_rows,
    taste_matrix,
)

__all__ = ["render_html", "render_markdown"]

_TEMPLATE = "report.html.j2"
"""The HTML report's Jinja template, in the package data folder ``evaluation/templates``."""


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
            f"{format_value(head['kendall_tau'], 3)}, "
            f"Spearman {format_value(head['spearman'], 3)}; "
            f"{user_agreement_text(data.simulation)}.\n"
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
                        "seconds": format_value(s["wall_time_s"], 1),
                        "peak RSS (MiB)": format_value(s.get("peak_rss_mib"), 0),
                    }
                    for s in data.stages
                ]
            )
        )
    return "\n".join(parts)


def _data_uri(png: bytes | None) -> str | None:
    return None if png is None else "data:image/png;base64," + base64.b64encode(png).decode()


def render_html(data: ReportData) -> str:
    """The whole report as one HTML document (figures inlined, no external resource)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

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
                    "truth": format_value(float(row["rating"]), 0),
                    "answer": row["answer"],
                    "parsed": format_value(row["parsed"], 1) if row["valid"] else "no rating",
                }
            )
    env = Environment(
        loader=PackageLoader("personasim.evaluation", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    template = env.get_template(_TEMPLATE)
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
        user_agreement=user_agreement_text(simulation) if simulation else "",
        not_measured=data.not_measured,
    )
