"""Write the fidelity report's sentences: the verdict, who decided, the feedback trends.

:func:`verdict` answers at a glance (the simulation's preferred recommender, the best
agent against the best classical baseline for the ratings and for taste), each with its
paired 95% interval; the other functions write the sentences the renderers
(:mod:`personasim.evaluation.report`) put beside the simulation's tables.
"""

from __future__ import annotations

from typing import Any

from personasim.evaluation.report_data import ReportData
from personasim.evaluation.report_tables import format_interval, format_value

__all__ = [
    "decisions_text",
    "feedback_sentences",
    "simulation_verdict",
    "user_agreement_text",
    "verdict",
]

_AGENTS = ("zero-shot", "global-lora", "persona-lora")


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
            f"Ratings: {best} RMSE {format_value(compared[best]['rmse'])} against {vs['baseline']} "
            f"{format_value(compared[vs['baseline']]['rmse'])}: difference "
            f"{vs['rmse_difference']:+.4f} {format_interval(vs['ci'])}, {vs['verdict']}."
        )
        alone = compared[best].get("vs_prior_alone")
        if alone:
            lines.append(
                f"What the text adds: {best} minus its CF prior alone (no language model) "
                f"{alone['rmse_difference']:+.4f} {format_interval(alone['ci'])}, "
                f"{alone['verdict']}."
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
                f"{kind}: {top} AUC {format_value(models[top]['auc'], 3)} vs {vs['against']} "
                f"{vs['auc']:+.3f} {format_interval(vs['auc_ci'])}"
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
            f"Simulation: the simulated users prefer {best} "
            f"({format_value(mine[measure], 2)} {unit}, "
            f"95% {format_interval(mine[f'{measure}_ci'], 2)}), {sure} ahead of {second} "
            f"(by {-vs['difference']:+.2f}, "
            f"95% {format_interval([-vs['ci'][1], -vs['ci'][0]], 2)}); "
            f"{sum(v['verdict'] == 'worse' for v in rivals.values())} of {len(rivals)} "
            "recommenders are clearly below it."
        )
    for check in simulation.get("checks", {}).values():
        if check.get("sentence"):
            lines.append(check["sentence"])
    return lines


def feedback_sentences(simulation: dict[str, Any]) -> list[str]:
    """One sentence per recommender: does the feedback loop narrow its lists, broaden
    them or leave them as they were (with the numbers)."""
    return [t["sentence"] for t in (simulation.get("feedback_trends") or {}).values()]


def user_agreement_text(simulation: dict[str, Any]) -> str:
    """The per-user agreement of the simulated metric with nDCG: mean Kendall tau and
    Spearman over the users, with their spread."""
    user = simulation.get("per_user_agreement", {})
    tau = user.get("kendall_tau", {})
    rho = user.get("spearman", {})
    simulated = str(user.get("simulated", "likes")).replace("_", " ")
    return (
        f"per user ({simulated} vs nDCG over the recommenders, {user.get('defined_users', 0)} of "
        f"{user.get('users', 0)} users with both sides varying): Kendall tau "
        f"{format_value(tau.get('mean'), 3)} ({format_value(tau.get('low'), 3)} to "
        f"{format_value(tau.get('high'), 3)}), "
        f"Spearman {format_value(rho.get('mean'), 3)} ({format_value(rho.get('low'), 3)} to "
        f"{format_value(rho.get('high'), 3)})"
    )
