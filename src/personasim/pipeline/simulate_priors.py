"""Watch priors in the simulate stage: refitted as the train stage fits them, and swapped in.

The stacked prior's session model (``simulate.session_recency``) is fitted again for the
loaded agents (:func:`session_model_attacher`); other priors, and the stacked prior with
a feature family left out, are fitted on the train stage's watch examples
(:func:`watch_prior_fitter`); :func:`other_priors_sessions` runs the sessions again
under each of ``simulate.other_watch_priors``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from personasim.config import RunConfig
from personasim.data.tables import read_parquet
from personasim.pipeline.simulate_agents import LazyAgents
from personasim.pipeline.simulate_sessions import SessionRunner
from personasim.progress import progress
from personasim.run_folder import ADAPTERS, DATA
from personasim.simulation.measures import rank_agreement, session_metrics
from personasim.simulation.summary import RATING_MEASURES, log_hits, rounded
from personasim.workspace import Workspace

__all__ = ["choice_logs", "other_priors_sessions", "session_model_attacher", "watch_prior_fitter"]


def choice_logs(
    workspace: Workspace, interactions: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the watch priors are fitted on: the simulated users' train part and the
    other users' rows (as the train stage fits them)."""
    others = read_parquet(workspace.require(DATA.others))
    return interactions[interactions["split"] == "train"], others


def session_model_attacher(
    workspace: Workspace, config: RunConfig, interactions: pd.DataFrame, items: pd.DataFrame
) -> Callable[[Any], None]:
    """Gives loaded agents' stacked watch prior its model back (fitted as the train
    stage fitted it: same data, seed and families), so that what a user watched
    earlier in a session moves their prior (``simulate.session_recency``)."""
    from personasim.agents.choice_prior import session_model

    def attach(agent: Any) -> None:
        prior = agent.watch_prior
        if not config.simulate.session_recency or prior is None:
            return
        if prior.kind != "stacked" or prior.session is not None:
            return
        train, others = choice_logs(workspace, interactions)
        with progress("watch prior (stacked): its model, for the sessions", total=None):
            prior.session = session_model(
                train,
                others,
                items,
                seed=config.seed,
                exclude=config.agents.watch_prior_exclude,
            )

    return attach


def watch_prior_fitter(
    workspace: Workspace, config: RunConfig, interactions: pd.DataFrame, items: pd.DataFrame
) -> Callable[[str, list[str]], Any]:
    """``(kind, families left out) -> a watch prior`` fitted as the train stage fits
    the agents' own (on the same watch examples)."""
    from personasim.agents.choice_prior import fit_choice_prior

    examples = read_parquet(workspace.require(ADAPTERS.examples))
    watch = examples[examples["task"] == "watch"][["user_id", "item_id", "target"]]
    train, others = choice_logs(workspace, interactions)
    simulated = sorted(interactions["user_id"].astype(str).unique())

    def fit(kind: str, exclude: list[str]) -> Any:
        with progress(f"watch prior ({kind}, without {exclude or 'nothing'})", total=None):
            prior, _, _ = fit_choice_prior(
                kind,
                train,
                others,
                items,
                simulated,
                watch,
                seed=config.seed,
                exclude=exclude,
            )
        return prior

    return fit


def other_priors_sessions(
    runner: SessionRunner,
    agent: LazyAgents,
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    pages: dict[str, dict[str, list[list[str]]]],
    test_items: set[tuple[str, str]],
    metrics: dict[str, Any],
) -> dict[str, Any]:
    """The sessions again under each other watch prior: per recommender the watch
    rate, likes and log-hit ratio, how the recommenders' order agrees with nDCG, and
    with their order under the agents' own prior.

    Args:
        runner: Runs (or restores) the sessions.
        agent: The agents, whose prior is swapped (and put back at the end).
        interactions: The run's interactions (the priors' training data).
        items: The items.
        pages: Each recommender's pages per user.
        test_items: The ``(user, item)`` pairs of the held-out log.
        metrics: The metrics so far (each recommender's nDCG and watch rate).

    Returns:
        Per other prior: its table of recommenders and the two agreements.
    """
    config = runner.config
    fit = watch_prior_fitter(runner.workspace, config, interactions, items)
    swapped: dict[str, Any] = {}

    def swap_to(kind: str) -> Callable[[], None]:
        """Fit and swap in `kind` before the first of its sessions that must run
        (none when all are restored: no agents loaded, no prior fitted)."""

        def prepare() -> None:
            if swapped.get("kind") != kind:
                loaded = agent.get()
                swapped.setdefault("own", loaded.watch_prior)
                loaded.watch_prior = fit(kind, [])
                swapped["kind"] = kind

        return prepare

    cfg = config.simulate
    out: dict[str, Any] = {}
    try:
        for kind in cfg.other_watch_priors:
            table = {}
            for name in pages:
                log = runner.sessions(name, 0, pages[name], kind, prepare=swap_to(kind))
                row = session_metrics(log.events, log.sessions, catalogue=1, novelty={})
                row.update(log_hits(log.events, test_items))
                row["ndcg"] = metrics["recommenders"][name]["ndcg"]
                kept = ("watch_rate", "likes", "log_hit_ratio", "ndcg")
                if config.data.implicit:
                    kept = tuple(k for k in kept if k not in RATING_MEASURES)
                table[name] = rounded({k: row[k] for k in kept})
            own_order = {n: r["watch_rate"] for n, r in metrics["recommenders"].items()}
            out[kind] = {
                "recommenders": table,
                "watch_rate~ndcg": rounded(
                    rank_agreement(
                        {n: r["watch_rate"] for n, r in table.items()},
                        {n: r["ndcg"] for n, r in table.items()},
                    )
                ),
                "watch_rate~own_prior": rounded(
                    rank_agreement({n: r["watch_rate"] for n, r in table.items()}, own_order)
                ),
            }
    finally:
        if "own" in swapped:
            agent.get().watch_prior = swapped["own"]
    return out
