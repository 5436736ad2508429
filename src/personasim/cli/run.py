"""`personasim run`: every stage in order, skipping the finished ones."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from personasim.cli._common import (
    ConfigOpt,
    ExecutorOpt,
    RayAddressOpt,
    WorkdirOpt,
    nested,
    print_metrics,
    print_results,
    scale_overrides,
)
from personasim.cli.data_options import (
    DATA_OPTIONS,
    DatasetOpt,
    DelimiterOpt,
    GenresColOpt,
    GenresSeparatorOpt,
    ItemColOpt,
    ItemsOpt,
    PathOpt,
    RatingColOpt,
    RatingScaleOpt,
    RatingStepOpt,
    TimestampColOpt,
    TitleColOpt,
    UserColOpt,
    UsersFileOpt,
    YearColOpt,
    data_overrides,
)
from personasim.cli.simulate import print_simulation
from personasim.config import deep_merge
from personasim.pipeline import STAGES, resolve_config, run_stage
from personasim.progress import console
from personasim.run_folder import REPORT, SIMULATE
from personasim.workspace import Workspace

__all__ = ["run"]


def run(
    workdir: WorkdirOpt,
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    path: PathOpt = None,
    items: ItemsOpt = None,
    users_file: UsersFileOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    rating_col: RatingColOpt = None,
    timestamp_col: TimestampColOpt = None,
    title_col: TitleColOpt = None,
    year_col: YearColOpt = None,
    genres_col: GenresColOpt = None,
    genres_separator: GenresSeparatorOpt = None,
    delimiter: DelimiterOpt = None,
    rating_scale: RatingScaleOpt = None,
    rating_step: RatingStepOpt = None,
    users: Annotated[
        int | None, typer.Option(help="Users to sample (0: all eligible).", min=0)
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every random choice.")] = None,
    backend: Annotated[
        str | None, typer.Option(help='LLM backend: "hf", "llamacpp", "openai", "template".')
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo every stage.")] = False,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Run the whole pipeline on the run folder; finished stages are skipped."""
    options = locals()  # the log options, as given
    given = {name: options[name] for name in DATA_OPTIONS}
    workspace = Workspace(workdir)
    cfg = resolve_config(
        workspace,
        config,
        deep_merge(
            deep_merge(
                data_overrides(**given),
                nested(seed=seed, split__users=users, llm__backend=backend),
            ),
            scale_overrides(executor, ray_address),
        ),
    )
    results = []
    for stage in STAGES:
        results.append(run_stage(stage, workspace, cfg, force=force))
    print_results(results)
    metrics = next((r.summary.get("metrics") for r in results if r.stage == "evaluate"), None)
    if metrics:
        print_metrics(metrics)
    simulation = workspace.path(SIMULATE.metrics)
    if simulation.exists():
        print_simulation(json.loads(simulation.read_text()))
    console.print(f"report: {workspace.path(REPORT.html)}")
    total = sum(r.wall_time_s for r in results)
    console.print(f"run folder: {workspace.root} ({total:.1f} s this time)")
