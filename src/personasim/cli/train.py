"""`personasim train`: RAFT examples and LoRA adapters of the user agents."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from personasim.cli._common import (
    ConfigOpt,
    ExecutorOpt,
    ForceOpt,
    RayAddressOpt,
    WorkdirOpt,
    nested,
    print_results,
    scale_overrides,
)
from personasim.config import deep_merge
from personasim.pipeline import TrainStage, resolve_config, run_stage
from personasim.progress import console
from personasim.run_folder import ADAPTERS
from personasim.workspace import Workspace

__all__ = ["train"]


def train(
    workdir: WorkdirOpt,
    config: ConfigOpt = None,
    modes: Annotated[
        str | None, typer.Option(help='Comma-separated: "persona", "global" ("" trains none).')
    ] = None,
    max_examples: Annotated[
        int | None, typer.Option(help="Rating examples per adapter at most (0: all).", min=0)
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs per adapter.", min=1)] = None,
    preset: Annotated[str | None, typer.Option(help='"paper": rank 256, alpha 32.')] = None,
    force: ForceOpt = False,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Build RAFT examples and train one LoRA adapter per persona (writes adapters/)."""
    overrides = nested(
        agents__modes=None if modes is None else [m.strip() for m in modes.split(",") if m.strip()],
        agents__max_examples_per_adapter=max_examples,
        agents__epochs=epochs,
        agents__preset=preset,
    )
    overrides = deep_merge(overrides, scale_overrides(executor, ray_address))
    workspace = Workspace(workdir)
    cfg = resolve_config(workspace, config, overrides)
    result = run_stage(TrainStage, workspace, cfg, force=force)
    print_results([result])
    table = Table(title="adapters", title_justify="left")
    for col in ("adapter", "users", "examples", "steps", "seconds", "examples/s", "final loss"):
        table.add_column(col, justify="left" if col == "adapter" else "right")
    for name, a in result.summary["adapters"].items():
        final = a["curve"][-1][1] if a["curve"] else float("nan")
        table.add_row(
            name,
            str(a["users"]),
            str(a["examples"]),
            str(a["steps"]),
            f"{a['seconds']:.1f}",
            f"{a['examples_per_s']:.2f}",
            f"{final:.3f}",
        )
    console.print(table)
    console.print(f"written: {workspace.stage_dir(ADAPTERS.stage)}")
