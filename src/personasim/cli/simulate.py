"""`personasim simulate`: recommenders evaluated by the agents and by the held-out log."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from personasim.cli._common import ConfigOpt, ForceOpt, WorkdirOpt, nested, print_results
from personasim.errors import ConfigError
from personasim.pipeline import SimulateStage, resolve_config, run_stage
from personasim.progress import console
from personasim.workspace import Workspace

__all__ = ["simulate"]


def _plugins(specs: list[str] | None) -> dict[str, str] | None:
    if not specs:
        return None
    out = {}
    for spec in specs:
        name, sep, target = spec.partition("=")
        if not sep or not name or ":" not in target:
            raise ConfigError(f"--recommender {spec!r}: expected NAME=module:object")
        out[name.strip()] = target.strip()
    return out


def simulate(
    workdir: WorkdirOpt,
    config: ConfigOpt = None,
    recommender: Annotated[
        list[str] | None,
        typer.Option(
            "--recommender",
            help="Add your own recommender, NAME=module:object (repeatable).",
        ),
    ] = None,
    users: Annotated[int | None, typer.Option(help="Simulated users (0: all).")] = None,
    rounds: Annotated[
        int | None, typer.Option("--feedback-rounds", help="Feedback-loop rounds (0: off).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every draw.")] = None,
    force: ForceOpt = False,
) -> None:
    """Run the agents through sessions with each recommender (pages, watch, rate, exit),
    score the same recommenders on the held-out log, and compare the two rankings."""
    workspace = Workspace(workdir)
    overrides: dict[str, Any] = nested(
        seed=seed, simulate__users=users, simulate__feedback_rounds=rounds
    )
    plugins = _plugins(recommender)
    if plugins:
        current = resolve_config(workspace, config).simulate
        overrides.setdefault("simulate", {})["plugins"] = {**current.plugins, **plugins}
        overrides["simulate"]["recommenders"] = list(
            dict.fromkeys([*current.recommenders, *plugins])
        )
    cfg = resolve_config(workspace, config, overrides)
    result = run_stage(SimulateStage, workspace, cfg, force=force)
    print_results([result])
    metrics_path = workspace.path("simulate", "metrics.json")
    print_simulation(json.loads(metrics_path.read_text()))
    console.print(f"written: {workspace.stage_dir('simulate')}")


def print_simulation(metrics: dict[str, Any]) -> None:
    """The simulated and offline metrics per recommender and their agreement."""
    rows = metrics.get("recommenders", {})
    if not rows:
        console.print("no recommenders simulated ([simulate] recommenders is empty)")
        return
    k = metrics.get("settings", {}).get("offline_k", 10)
    table = Table(title="recommenders: simulated sessions | held-out log", title_justify="left")
    columns = [
        ("watch rate", "watch_rate"),
        ("likes/user", "likes"),
        ("mean rating", "mean_rating"),
        ("exit page", "exit_page"),
        ("coverage", "coverage"),
        ("novelty", "novelty"),
        (f"nDCG@{k}", "ndcg"),
        (f"Recall@{k}", "recall"),
    ]
    table.add_column("recommender")
    for title, _ in columns:
        table.add_column(title, justify="right")
    for name, row in rows.items():
        table.add_row(name, *[f"{row.get(key, float('nan')):.3f}" for _, key in columns])
    console.print(table)
    head = metrics["agreement"]["headline"]
    user = metrics.get("per_user_agreement", {})
    console.print(
        f"agreement of the rankings (likes vs nDCG@{k}, {head['n']} recommenders): "
        f"Kendall tau {head['kendall_tau']:.3f}, Spearman {head['spearman']:.3f}; "
        f"per user (mean over {user.get('defined_users', 0)}): "
        f"Kendall {user.get('kendall_tau', {}).get('mean', float('nan')):.3f}"
    )
