"""`personasim tune`: the agents' settings chosen on held-out train ratings."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from personasim.cli._common import ConfigOpt, WorkdirOpt
from personasim.pipeline import resolve_config
from personasim.pipeline.tune import parse_grid
from personasim.pipeline.tune import tune as run_tuning
from personasim.progress import console
from personasim.workspace import Workspace

__all__ = ["tune"]


def tune(
    workdir: WorkdirOpt,
    grid: Annotated[
        list[str],
        typer.Option(
            "--grid",
            help='A setting and its values, e.g. "agents.lora_rank=8,16" (repeat the option).',
        ),
    ],
    config: ConfigOpt = None,
    validation_share: Annotated[
        float,
        typer.Option(help="Share of each user's train ratings held out (by time).", min=0.01),
    ] = 0.1,
) -> None:
    """Train and score the agents for every point of a grid on held-out train ratings
    (never the test split); rank the points (writes tune/results.json)."""
    cfg = resolve_config(Workspace(workdir), config)
    points = parse_grid(grid)

    def announce(number: int, count: int, point: dict[str, Any]) -> None:
        console.print(f"tuning point {number + 1}/{count}: {point}")

    result = run_tuning(workdir, cfg, points, validation_share=validation_share, on_point=announce)
    table = Table(title=f"validation RMSE (last {validation_share:g} of each user's train)")
    for column in ("point", "agent", "RMSE", "95%", "prior alone", "vs prior (95%)"):
        table.add_column(column)
    for row in result["points"]:
        for name, m in row["agents"].items():
            vs = m.get("vs_prior_alone") or {}
            table.add_row(
                ", ".join(f"{k}={v}" for k, v in row["point"].items()),
                name,
                f"{m['rmse']:.4f}",
                f"{m['rmse_ci'][0]:.4f}-{m['rmse_ci'][1]:.4f}",
                f"{m.get('prior_rmse', float('nan')):.4f}",
                f"{vs['rmse_difference']:+.4f} ({vs['ci'][0]:+.4f} .. {vs['ci'][1]:+.4f})"
                if vs
                else "-",
            )
    console.print(table)
    console.print(f"best ({result['ranked_by']}): {result['best']}")
