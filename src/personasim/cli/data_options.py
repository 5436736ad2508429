"""The command-line options that say which log to read and how (`ingest` and `run`)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from personasim.cli._common import nested

__all__ = [
    "DATA_OPTIONS",
    "DatasetOpt",
    "DelimiterOpt",
    "GenresColOpt",
    "GenresSeparatorOpt",
    "ItemColOpt",
    "ItemsOpt",
    "PathOpt",
    "RatingColOpt",
    "RatingScaleOpt",
    "RatingStepOpt",
    "TimestampColOpt",
    "TitleColOpt",
    "UserColOpt",
    "UsersFileOpt",
    "YearColOpt",
    "data_overrides",
]

DatasetOpt = Annotated[
    str | None,
    typer.Option(
        help='"ml-100k", "ml-1m" (built in), "movielens" (your download at '
        '--path) or "custom" (your log at --path).'
    ),
]
PathOpt = Annotated[
    Path | None, typer.Option(help="Your log (CSV/TSV/Parquet) or MovieLens folder/zip.")
]
ItemsOpt = Annotated[Path | None, typer.Option(help="Item metadata file (custom logs).")]
UsersFileOpt = Annotated[Path | None, typer.Option(help="User attribute file (custom logs).")]
UserColOpt = Annotated[str | None, typer.Option(help="User id column.")]
ItemColOpt = Annotated[str | None, typer.Option(help="Item id column.")]
RatingColOpt = Annotated[str | None, typer.Option(help="Rating column.")]
TimestampColOpt = Annotated[
    str | None, typer.Option(help='Time column ("" if none: file order is time order).')
]
TitleColOpt = Annotated[str | None, typer.Option(help="Item title column (items file).")]
YearColOpt = Annotated[str | None, typer.Option(help="Item year column (items file).")]
GenresColOpt = Annotated[str | None, typer.Option(help="Item genres column (items file).")]
GenresSeparatorOpt = Annotated[
    str | None, typer.Option(help='Separator of the genres of one item (default "|").')
]
DelimiterOpt = Annotated[
    str | None, typer.Option(help="Field delimiter of CSV files (guessed when unset).")
]
RatingScaleOpt = Annotated[
    tuple[float, float] | None,
    typer.Option(help="Lowest and highest rating, e.g. --rating-scale 0.5 5 (default 1 5)."),
]
RatingStepOpt = Annotated[
    float | None,
    typer.Option(help="Distance between two ratings: 1 (default), 0.5 for half stars."),
]


def data_overrides(
    *,
    dataset: str | None = None,
    path: Path | None = None,
    items: Path | None = None,
    users_file: Path | None = None,
    user_col: str | None = None,
    item_col: str | None = None,
    rating_col: str | None = None,
    timestamp_col: str | None = None,
    title_col: str | None = None,
    year_col: str | None = None,
    genres_col: str | None = None,
    genres_separator: str | None = None,
    delimiter: str | None = None,
    rating_scale: tuple[float, float] | None = None,
    rating_step: float | None = None,
) -> dict[str, Any]:
    """The `[data]` settings the log options give (unset ones left out). A --path
    without --dataset is "movielens" for a folder or zip, else "custom"; a built-in
    dataset clears the custom paths of earlier runs."""
    if path is not None and dataset is None:
        dataset = "movielens" if Path(path).is_dir() or str(path).endswith(".zip") else "custom"
    overrides = nested(
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
    )
    if dataset in ("ml-100k", "ml-1m"):
        # (None removes a key when the layers are merged)
        overrides.setdefault("data", {}).update(path=None, items_path=None, users_path=None)
    return overrides


DATA_OPTIONS = tuple(inspect.signature(data_overrides).parameters)
"""The names of the log options (the keyword arguments of :func:`data_overrides`)."""
