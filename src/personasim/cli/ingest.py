"""`personasim ingest`: read a log, sample and split users into the run folder."""

from __future__ import annotations

from typing import Annotated

import typer

from personasim.cli._common import ConfigOpt, ForceOpt, WorkdirOpt, nested, print_results
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
from personasim.config import deep_merge
from personasim.pipeline import IngestStage, resolve_config, run_stage
from personasim.progress import console
from personasim.run_folder import DATA
from personasim.workspace import Workspace

__all__ = ["ingest"]


def ingest(
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
    min_ratings: Annotated[
        int | None, typer.Option(help="Fewest ratings of an eligible user.", min=1)
    ] = None,
    max_ratings: Annotated[
        int | None, typer.Option(help="Most ratings of an eligible user (0: no limit).", min=0)
    ] = None,
    train_fraction: Annotated[
        float | None, typer.Option(help="Share of each user's ratings (oldest first) for train.")
    ] = None,
    other_users: Annotated[
        bool | None,
        typer.Option(
            "--other-users/--sampled-users-only",
            help="Train baselines and item statistics also on users outside the sample.",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the user sample.")] = None,
    tables: Annotated[
        str | None,
        typer.Option(help='"pandas" (in memory) or "duckdb" (out of core; scale.tables).'),
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Read a log, validate it, sample users and split their ratings in time (writes data/)."""
    options = locals()  # the log options, as given
    given = {name: options[name] for name in DATA_OPTIONS}
    overrides = deep_merge(
        data_overrides(**given),
        nested(
            seed=seed,
            split__users=users,
            split__min_ratings=min_ratings,
            split__max_ratings=max_ratings,
            split__train_fraction=train_fraction,
            split__include_other_users=other_users,
            scale__tables=tables,
        ),
    )
    workspace = Workspace(workdir)
    cfg = resolve_config(workspace, config, overrides)
    result = run_stage(IngestStage, workspace, cfg, force=force)
    print_results([result])
    s = result.summary
    console.print(
        f"{s['users']} users sampled of {s['eligible_users']} eligible in {s['source']} "
        f"({s['log_users']} users, {s['log_items']} items, {s['log_ratings']} ratings); "
        f"{s['train_ratings']} train / {s['test_ratings']} test ratings; "
        f"{s['other_ratings']} ratings of {s['other_users']} other users as training context"
    )
    console.print(f"written: {workspace.stage_dir(DATA.stage)}")
