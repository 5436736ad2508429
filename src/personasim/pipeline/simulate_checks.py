"""Checks of the simulation's verdict against its own model, run by `simulate`:

- *the ladder*: the best built-in recommender's pages with 10%, 25%, 50%, 100% of each
  user's session items replaced by random unseen ones; the simulated watch rate and
  likes must fall as the share grows, and the smallest share whose drop (paired over
  users) has an interval excluding 0 is the simulator's resolution, beside nDCG's on
  the same lists;
- *leave-family-out*: each built-in recommender simulated again with its own family left
  out of the stacked watch prior; its rank among the others must hold (within one place).

:func:`simulation_checks` runs those the configuration asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from personasim.evaluation.bootstrap import mean_interval
from personasim.evaluation.session_intervals import session_intervals
from personasim.pipeline.simulate_agents import LazyAgents
from personasim.pipeline.simulate_priors import watch_prior_fitter
from personasim.pipeline.simulate_sessions import SessionRunner
from personasim.simulation import SessionLog
from personasim.simulation.ladder import degrade_pages
from personasim.simulation.measures import offline_metrics

__all__ = ["FAMILY_OF", "ladder_check", "leave_family_out_check", "simulation_checks"]

FAMILY_OF = {
    "popular": "popularity",
    "itemknn": "itemknn",
    "userknn": "userknn",
    "mf": "implicit_mf",
    "bpr": "bpr",
    "sasrec": "sasrec",
}
"""The stacked prior's feature family of each built-in recommender."""

Simulate = Callable[..., SessionLog]
"""``(recommender, pages, variant[, prepare]) -> its sessions``: restored from a
checkpoint when there, else `prepare()` (e.g. swap the prior in) and run."""


MEASURES = ("watch_rate", "likes")
"""The simulated measures the checks follow (a log without ratings: the watch rate)."""


def _rows(log: SessionLog, name: str) -> pd.DataFrame:
    return log.sessions[["user_id", "shown", "watched", "liked"]].assign(recommender=name)


def _top(pages: Mapping[str, list[list[str]]], k: int) -> dict[str, list[str]]:
    return {u: [i for page in mine for i in page][:k] for u, mine in pages.items()}


def ladder_check(
    best: str,
    pages: dict[str, list[list[str]]],
    undegraded: SessionLog,
    history: Mapping[str, Sequence[str]],
    catalogue: Sequence[str],
    test: pd.DataFrame,
    simulate: Simulate,
    *,
    shares: Sequence[float],
    k: int,
    seed: int,
    rounds: int,
    measures: tuple[str, ...] = MEASURES,
) -> dict[str, Any]:
    """The ladder of `best` (see the module docstring); `measures`: the simulated ones
    (a log without ratings has no likes).

    Returns:
        Per share the watch rate and likes with their paired differences from the
        undegraded lists and nDCG@k's; whether both fall monotonically; the resolutions
        (smallest share with an interval below 0) of the simulation and of nDCG; and a
        sentence for the report.
    """
    frames = [_rows(undegraded, best)]
    tops = {0.0: _top(pages, k)}
    for share in sorted(shares):
        degraded = degrade_pages(pages, history, catalogue, share, seed=seed)
        label = f"{best} {share:.0%} random"
        frames.append(_rows(simulate(best, degraded, f"ladder-{share:g}"), label))
        tops[share] = _top(degraded, k)
    intervals = session_intervals(
        pd.concat(frames, ignore_index=True),
        rounds=rounds,
        seed=seed,
        reference=best,
        measures=measures,
    )
    ndcg = {
        share: offline_metrics(top, test, k).set_index("user_id")["ndcg"]
        for share, top in tops.items()
    }
    steps: list[dict[str, Any]] = []
    for share in sorted(shares):
        label = f"{best} {share:.0%} random"
        step: dict[str, Any] = {"share": share}
        for measure in measures:
            step[measure] = intervals["recommenders"][label][measure]
            step[f"{measure}_drop"] = intervals["vs_best"][measure][label]
        diff = (ndcg[share] - ndcg[0.0]).to_numpy()
        interval = mean_interval(diff, rounds=rounds, seed=seed)
        step["ndcg"] = round(float(ndcg[share].mean()), 6)
        step["ndcg_drop"] = {"difference": round(interval.estimate, 6), "ci": interval.as_list()}
        steps.append(step)

    def resolution(measure: str) -> float | None:
        for step in steps:
            if step[f"{measure}_drop"]["ci"][1] < 0:
                return float(step["share"])
        return None

    base = intervals["recommenders"][best]
    monotone = {m: bool(np.all(np.diff([base[m]] + [s[m] for s in steps]) <= 0)) for m in measures}
    monotone["ndcg"] = bool(
        np.all(np.diff([float(ndcg[0.0].mean())] + [s["ndcg"] for s in steps]) <= 0)
    )
    found = {m: resolution(m) for m in measures}
    found["ndcg"] = next((s["share"] for s in steps if s["ndcg_drop"]["ci"][1] < 0), None)

    def shown(share: float | None) -> str:
        return "none of the shares" if share is None else f"{share:.0%}"

    likes = "likes" in measures
    sentence = (
        f"Ladder ({best} with random items in its pages): the simulated watch rate "
        f"{'falls' if monotone['watch_rate'] else 'does not fall'} monotonically"
        + (f" and likes {'fall' if monotone['likes'] else 'do not fall'}" if likes else "")
        + f"; the simulation tells a page with {shown(found['watch_rate'])} random items "
        "from the original (watch rate"
        + (f"; likes: {shown(found['likes'])}" if likes else "")
        + f"), nDCG@{k} {shown(found['ndcg'])}."
    )
    return {
        "recommender": best,
        **{m: base[m] for m in measures},
        "ndcg": round(float(ndcg[0.0].mean()), 6),
        "steps": steps,
        "monotone": monotone,
        "resolution": found,
        "sentence": sentence,
    }


def _ranks(values: Mapping[str, float]) -> dict[str, int]:
    order = sorted(values, key=lambda n: -values[n])
    return {n: order.index(n) + 1 for n in values}


def leave_family_out_check(
    metrics: Mapping[str, Mapping[str, Any]],
    pages: Mapping[str, dict[str, list[list[str]]]],
    fit_prior: Callable[[str], Any],
    use_prior: Callable[[Any], None],
    simulate: Simulate,
    only: Sequence[str] | None = None,
    measures: tuple[str, ...] = MEASURES,
) -> dict[str, Any]:
    """Each built-in recommender's rank with and without its own family in the prior.

    Args:
        metrics: Per recommender the simulation's row (``watch_rate``, ``likes``) under
            the full prior.
        pages: Per recommender the pages it showed.
        fit_prior: Family -> the stacked prior without it (fitted only for sessions that
            are not restored from a checkpoint).
        use_prior: Makes the agents answer with a prior (None: their own again).
        simulate: Runs (or restores) a recommender's sessions under the prior in use.
        only: The recommenders to check (unset: every built-in one in `metrics`).
        measures: The simulated measures (a log without ratings has no likes).

    Returns:
        Per recommender its family, its watch rate and likes without it, its ranks by
        both with and without; whether every rank holds within one place; a sentence.
    """
    out: dict[str, Any] = {"recommenders": {}}
    try:
        for name, family in FAMILY_OF.items():
            if name not in metrics or (only is not None and name not in only):
                continue
            log = simulate(
                name,
                pages[name],
                f"without-{family}",
                lambda family=family: use_prior(fit_prior(family)),
            )
            shown = max(int(log.sessions["shown"].sum()), 1)
            alone = {
                "watch_rate": float(log.sessions["watched"].sum()) / shown,
                "likes": float(log.sessions["liked"].mean()),
            }
            entry: dict[str, Any] = {"family": family}
            for measure in measures:
                full = {n: float(m[measure]) for n, m in metrics.items()}
                without = {**full, name: alone[measure]}
                entry[measure] = round(alone[measure], 6)
                entry[f"{measure}_rank"] = _ranks(full)[name]
                entry[f"{measure}_rank_without"] = _ranks(without)[name]
            out["recommenders"][name] = entry
    finally:
        use_prior(None)
    moved = {
        n: max(abs(e[f"{m}_rank"] - e[f"{m}_rank_without"]) for m in measures)
        for n, e in out["recommenders"].items()
    }
    out["holds"] = all(v <= 1 for v in moved.values())
    named = measures[-1]  # likes, else the watch rate
    detail = ", ".join(
        f"{n} {e[f'{named}_rank']}→{e[f'{named}_rank_without']}"
        for n, e in out["recommenders"].items()
    )
    out["sentence"] = (
        f"Leave-family-out: {sum(v <= 1 for v in moved.values())} of {len(moved)} "
        f"recommenders keep their rank within one place when their own family leaves the "
        f"watch prior ({named.replace('_', ' ')} rank with → without: {detail})."
        if moved
        else ""
    )
    return out


def simulation_checks(
    runner: SessionRunner,
    agent: LazyAgents,
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    shown: dict[str, dict[str, list[list[str]]]],
    logs: dict[str, SessionLog],
    history: dict[str, list[str]],
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """The ladder and leave-family-out checks that ``[simulate]`` asks for.

    Args:
        runner: Runs (or restores) the checks' sessions.
        agent: The agents, whose prior the leave-family-out check swaps (and puts back).
        interactions: The run's interactions (the held-out log, the priors' data).
        items: The items (the ladder's random ones: those with training ratings).
        shown: Each recommender's pages per user.
        logs: Each recommender's first-round sessions.
        history: Each simulated user's training items (never shown).
        metrics: The metrics so far (each recommender's row).

    Returns:
        ``ladder`` and ``leave_family_out``, where they ran.
    """
    config = runner.config
    cfg = config.simulate
    seed = config.seed

    def simulate(
        name: str,
        pages: dict[str, list[list[str]]],
        variant: str,
        prepare: Callable[[], None] | None = None,
    ) -> SessionLog:
        return runner.sessions(name, 0, pages, variant, prepare=prepare)

    checks: dict[str, Any] = {}
    table = metrics["recommenders"]
    measures = ("watch_rate",) if config.data.implicit else ("watch_rate", "likes")
    strong = [n for n in cfg.recommenders if n in FAMILY_OF]
    if cfg.ladder and strong:
        best = max(strong, key=lambda n: table[n]["ndcg"])
        test = interactions[interactions["split"] == "test"]
        catalogue = items.loc[items["train_count"] > 0, "item_id"].astype(str).tolist()
        checks["ladder"] = ladder_check(
            best,
            shown[best],
            logs[best],
            history,
            catalogue,
            test.astype({"user_id": str, "item_id": str}),
            simulate,
            shares=cfg.ladder,
            k=cfg.offline_k,
            seed=seed,
            rounds=config.evaluate.bootstrap_rounds,
            measures=measures,
        )
    agents_cfg = config.agents
    if cfg.leave_family_out and agents_cfg.watch_prior == "stacked" and strong:
        fit = watch_prior_fitter(runner.workspace, config, interactions, items)
        own: dict[str, Any] = {}

        def use(prior: Any) -> None:
            """Swap the agents' prior; None puts their own back (loads nothing when
            every session came from a checkpoint)."""
            if prior is None:
                if own:
                    agent.get().watch_prior = own["prior"]
                return
            loaded = agent.get()
            own.setdefault("prior", loaded.watch_prior)
            loaded.watch_prior = prior

        checks["leave_family_out"] = leave_family_out_check(
            {n: table[n] for n in cfg.recommenders},
            shown,
            lambda family: fit("stacked", [*agents_cfg.watch_prior_exclude, family]),
            use,
            simulate,
            measures=measures,
        )
    return checks
