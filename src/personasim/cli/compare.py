"""`personasim compare`: models of several run folders, paired on shared test pairs."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from personasim.errors import ConfigError
from personasim.evaluation.compare import compare_runs, parse_run_model
from personasim.progress import console

__all__ = ["compare"]


def compare(
    runs: Annotated[
        list[str],
        typer.Argument(
            help="Run folders, each FOLDER or FOLDER:MODEL (e.g. runs/a:global-lora); "
            "the first is the reference.",
            show_default=False,
        ),
    ],
    rounds: Annotated[int, typer.Option(help="User-bootstrap resamples.", min=100)] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the resamples.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """RMSE of each later run's model minus the first's, on the test pairs both rated,
    with the paired user-bootstrap interval (an ablation's verdict). Without a MODEL,
    every model both runs evaluated is compared with its namesake."""
    if len(runs) < 2:
        raise ConfigError("compare needs a reference run and at least one other")
    specs = [parse_run_model(spec) for spec in runs]
    rows = compare_runs(specs[0], specs[1:], rounds=rounds, seed=seed)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:  # one sentence each: it reads at any terminal width
        low, high = r["ci"]
        verdict = "no clear difference" if low <= 0 <= high else "better" if high < 0 else "worse"
        console.print(
            f"{escape(r['candidate'])} minus {escape(r['reference'])}:"
            f" [bold]{r['difference']:+.4f}[/bold] RMSE"
            f" (95% {low:+.4f} .. {high:+.4f}), {r['rmse_candidate']:.4f} against"
            f" {r['rmse_reference']:.4f} on {r['pairs']:,} pairs of {r['users']} users:"
            f" {verdict}",
            highlight=False,
        )
