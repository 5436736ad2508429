"""`personasim ingest`: read a log, sample and split users into the run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from personasim.cli._common import ConfigOpt, ForceOpt, WorkdirOpt, nested, print_results
from personasim.pipeline import IngestStage, resolve_config, run_stage
from personasim.progress import console
from personasim.workspace import Workspace

__all__ = ["ingest"]


def ingest(
    workdir: WorkdirOpt,
    config: ConfigOpt = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            help='"ml-100k", "ml-1m" (built in), "movielens" (your download at '
            '--path) or "custom" (your log at --path).'
        ),
    ] = None,
    path: Annotated[
        Path | None, typer.Option(help="Your log (CSV/TSV/Parquet) or MovieLens folder/zip.")
    ] = None,
    items: Annotated[Path | None, typer.Option(help="Item metadata file (custom logs).")] = None,
    users_file: Annotated[
        Path | None, typer.Option(help="User attribute file (custom logs).")
    ] = None,
    user_col: Annotated[str | None, typer.Option(help="User id column.")] = None,
    item_col: Annotated[str | None, typer.Option(help="Item id column.")] = None,
    rating_col: Annotated[str | None, typer.Option(help="Rating column.")] = None,
    timestamp_col: Annotated[
        str | None, typer.Option(help='Time column ("" if none: file order is time order).')
    ] = None,
    title_col: Annotated[str | None, typer.Option(help="Item title column (items file).")] = None,
    year_col: Annotated[str | None, typer.Option(help="Item year column (items file).")] = None,
    genres_col: Annotated[str | None, typer.Option(help="Item genres column (items file).")] = None,
    genres_separator: Annotated[
        str | None, typer.Option(help='Separator of the genres of one item (default "|").')
    ] = None,
    delimiter: Annotated[
        str | None, typer.Option(help="Field delimiter of CSV files (guessed when unset).")
    ] = None,
    rating_scale: Annotated[
        tuple[float, float] | None,
        typer.Option(help="Lowest and highest rating, e.g. --rating-scale 0.5 5 (default 1 5)."),
    ] = None,
    rating_step: Annotated[
        float | None,
        typer.Option(help="Distance between two ratings: 1 (default), 0.5 for half stars."),
    ] = None,
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
    if path is not None and dataset is None:
        dataset = "movielens" if Path(path).is_dir() or str(path).endswith(".zip") else "custom"
    overrides = nested(
        seed=seed,
        data__dataset=dataset,
        data__path=str(path.resolve()) if path else None,
        data__items_path=str(items.resolve()) if items else None,
        data__users_path=str(users_file.resolve()) if users_file else None,
        data__columns__user=user_col,
        data__columns__item=item_col,
        data__columns__rating=rating_col,
        data__columns__timestamp=timestamp_col,
        data__columns__title=title_col,
        data__columns__year=year_col,
        data__columns__genres=genres_col,
        data__genres_separator=genres_separator,
        data__delimiter=delimiter,
        data__rating_scale=list(rating_scale) if rating_scale else None,
        data__rating_step=rating_step,
        split__users=users,
        split__min_ratings=min_ratings,
        split__max_ratings=max_ratings,
        split__train_fraction=train_fraction,
        split__include_other_users=other_users,
        scale__tables=tables,
    )
    if dataset in ("ml-100k", "ml-1m"):
        # Switching back to a built-in dataset clears the custom paths of earlier runs
        # (None removes a key when the layers are merged).
        overrides.setdefault("data", {}).update(path=None, items_path=None, users_path=None)
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
    console.print(f"written: {workspace.stage_dir('data')}")
