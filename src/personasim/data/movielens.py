"""GroupLens MovieLens downloads (folder or zip): ratings, items and users, read with
LensKit's loader, and the item files it misreads parsed here."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from personasim.data.duplicates import resolve_duplicates
from personasim.data.items import YEAR_IN_TITLE
from personasim.data.raw_table import RawTable
from personasim.data.sources import LogSpec
from personasim.data.validation import parse_ratings
from personasim.errors import DataError

__all__ = ["read_movielens"]


def read_movielens(
    spec: LogSpec,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[Path]]:
    """A GroupLens MovieLens download (folder or zip), read with LensKit's loader.

    Returns the tables of a :class:`~personasim.data.log.Log` (interactions, items and
    users) and the files read.

    LensKit reads the ratings, users and modern ``movies.csv`` well. Two item files it
    does not: in ML-1M/10M ``movies.dat`` it splits on single colons, which truncates
    titles such as "Star Wars: Episode IV ..." and drops their genres, and for
    ML-100K it reads no genres. Those two files are parsed here instead.
    """
    from lenskit.data import load_movielens

    try:
        ds = load_movielens(spec.path)
    except (RuntimeError, OSError, ValueError, KeyError) as e:
        raise DataError(
            f"not a MovieLens download that LensKit recognises ({e}); for other logs use "
            'data.dataset = "custom"',
            file=spec.path,
            exit_code=2,
        ) from None
    table = ds.interaction_table(format="pandas", original_ids=True)
    frame = pd.DataFrame(
        {
            "user_id": table["user_id"].astype(str).to_numpy(dtype=object),
            "item_id": table["item_id"].astype(str).to_numpy(dtype=object),
            "rating": table["rating"].astype("float64").to_numpy(),
            "timestamp": _epoch_seconds(table["timestamp"]),
        }
    )
    frame["row"] = np.arange(1, len(frame) + 1, dtype="int64")
    raw = RawTable(table=pa.Table.from_pandas(frame[["rating"]]), file=spec.path, first_row=1)
    if spec.columns.rating:
        parse_ratings(raw, "rating", spec.scale)
    else:  # read as a click log
        frame["rating"] = np.nan
    frame = resolve_duplicates(frame, raw, spec)

    items = _movielens_items_from_files(Path(spec.path))
    if items is None:
        items = _movielens_items_from_lenskit(ds)
    items["year"] = pd.to_numeric(
        items["title"].str.extract(YEAR_IN_TITLE, expand=False), errors="coerce"
    ).astype("Int32")

    users = pd.DataFrame({"user_id": pd.unique(frame["user_id"])})
    entity = ds.entities("user")
    if entity.attributes:
        attrs = entity.pandas().astype({"user_id": str}).astype("string")
        if "occupation" in attrs and attrs["occupation"].str.fullmatch(r"\d+").all():
            # ML-1M codes ages and occupations as numbers (its README gives the words).
            from personasim.data.sources import ML1M_AGES, ML1M_OCCUPATIONS

            attrs["occupation"] = attrs["occupation"].map(lambda v: ML1M_OCCUPATIONS.get(v, v))
            if "age" in attrs:
                attrs["age"] = attrs["age"].map(lambda v: ML1M_AGES.get(v, v))
        users = users.merge(attrs, on="user_id", how="left")
    path = Path(spec.path)
    inputs = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return frame.reset_index(drop=True), items, users, inputs


def _read_movielens_member(path: Path, name: str) -> str | None:
    """The text of `name` in a MovieLens folder or zip, or None if absent."""
    if path.is_dir():
        found = path / name
        return found.read_text(encoding="latin-1") if found.exists() else None
    with zipfile.ZipFile(path) as zf:
        for member in zf.namelist():
            if member.rsplit("/", 1)[-1] == name:
                return zf.read(member).decode("latin-1")
    return None


def _movielens_items_from_files(path: Path) -> pd.DataFrame | None:
    """Items of ML-1M/10M (``movies.dat``) or ML-100K (``u.item``), or None."""
    text = _read_movielens_member(path, "movies.dat")
    if text is not None:
        rows = [line.split("::") for line in text.splitlines() if line.strip()]
        return pd.DataFrame(
            {
                "item_id": [r[0] for r in rows],
                "title": pd.array([r[1] for r in rows], dtype="string"),
                "genres": [[g for g in r[2].split("|") if g != "(no genres listed)"] for r in rows],
            }
        )
    text = _read_movielens_member(path, "u.item")
    if text is None:
        return None
    genre_text = _read_movielens_member(path, "u.genre") or ""
    genre_names = [line.split("|")[0] for line in genre_text.splitlines() if line.strip()]
    rows = [line.split("|") for line in text.splitlines() if line.strip()]
    return pd.DataFrame(
        {
            "item_id": [r[0] for r in rows],
            "title": pd.array([r[1] for r in rows], dtype="string"),
            "genres": [
                [g for g, flag in zip(genre_names, r[5:], strict=False) if flag == "1"]
                for r in rows
            ],
        }
    )


def _movielens_items_from_lenskit(ds: object) -> pd.DataFrame:
    entity = ds.entities("item")  # type: ignore[attr-defined]
    ids = entity.ids()
    items = pd.DataFrame({"item_id": pd.Series(ids).astype(str).to_numpy(dtype=object)})
    attrs = entity.attributes
    if "title" in attrs:
        titles = entity.attribute("title").pandas().reindex(ids)
        items["title"] = pd.array(titles.astype("string").to_numpy(), dtype="string")
    else:
        items["title"] = pd.array([None] * len(items), dtype="string")
    if "genres" in attrs:
        genres = entity.attribute("genres").pandas().reindex(ids)
        items["genres"] = [list(g) if g is not None and not _is_na(g) else [] for g in genres]
    else:
        items["genres"] = [[] for _ in range(len(items))]
    return items


def _is_na(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _epoch_seconds(values: pd.Series) -> np.ndarray:
    if values.dtype.kind == "M":
        return (pd.to_datetime(values, utc=True).astype("int64") // 10**9).to_numpy("int64")
    return values.astype("int64").to_numpy()
