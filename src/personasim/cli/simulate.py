"""`personasim simulate`: recommenders evaluated by the agents and by the held-out log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from personasim.cli._common import ConfigOpt, ForceOpt, WorkdirOpt, nested, print_results
from personasim.errors import ConfigError
from personasim.pipeline import SimulateStage, resolve_config, run_stage
from personasim.progress import console
from personasim.run_folder import SIMULATE
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


def _rankings(specs: list[str] | None) -> dict[str, str]:
    out = {}
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).stem, spec
        if not Path(path).expanduser().is_file():
            raise ConfigError(f"--rankings {spec!r}: {path} is not a file")
        out[name.strip()] = str(Path(path).expanduser().resolve())
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
    rankings: Annotated[
        list[str] | None,
        typer.Option(
            "--rankings",
            help="Simulate a rankings file (user_id, item_id, rank; CSV or Parquet) as one "
            "more recommender, named after the file or NAME=FILE (repeatable).",
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
    files = _rankings(rankings)
    if plugins or files:
        current = resolve_config(workspace, config).simulate
        section = overrides.setdefault("simulate", {})
        section["plugins"] = {**current.plugins, **(plugins or {})}
        section["rankings"] = {**current.rankings, **files}
        section["recommenders"] = list(
            dict.fromkeys([*current.recommenders, *(plugins or {}), *files])
        )
    cfg = resolve_config(workspace, config, overrides)
    result = run_stage(SimulateStage, workspace, cfg, force=force)
    print_results([result])
    metrics_path = workspace.path(SIMULATE.metrics)
    print_simulation(json.loads(metrics_path.read_text()))
    console.print(f"written: {workspace.stage_dir(SIMULATE.stage)}")


def print_simulation(metrics: dict[str, Any]) -> None:
    """The simulated and offline metrics per recommender and their agreement."""
    rows = metrics.get("recommenders", {})
    if not rows:
        console.print("no recommenders simulated ([simulate] recommenders is empty)")
        return
    k = metrics.get("settings", {}).get("offline_k", 10)
    table = Table(
        title="recommenders: simulated sessions (watch rate, likes/session, mean rating, exit "
        "page, coverage; novelty and more in simulate/metrics.json) | held-out log",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    columns = [
        ("watch", "watch_rate", 3),
        ("likes", "likes", 2),
        ("rating", "mean_rating", 2),
        ("exit pg", "exit_page", 2),
        ("cover", "coverage", 3),
        (f"nDCG@{k}", "ndcg", 3),
        (f"R@{k}", "recall", 3),
    ]
    # a log without ratings has no likes or mean rating
    columns = [c for c in columns if any(c[1] in row for row in rows.values())]
    table.add_column("recommender", no_wrap=True)
    for title, _, _ in columns:
        table.add_column(title, justify="right", no_wrap=True)
    for name, row in rows.items():
        table.add_row(
            name, *[f"{row.get(key, float('nan')):.{digits}f}" for _, key, digits in columns]
        )
    console.print(table)
    head = metrics["agreement"]["headline"]
    user = metrics.get("per_user_agreement", {})
    simulated = head.get("simulated", "likes").replace("_", " ")
    console.print(
        f"agreement of the rankings ({simulated} vs nDCG@{k}, {head['n']} recommenders): "
        f"Kendall tau {head['kendall_tau']:.3f}, Spearman {head['spearman']:.3f}; "
        f"per user (mean over {user.get('defined_users', 0)}): "
        f"Kendall {user.get('kendall_tau', {}).get('mean', float('nan')):.3f}"
    )
