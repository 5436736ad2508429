"""Loading a log into typed tables: interactions, items and users, all validated."""

from __future__ import annotations

import logging
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from personasim.config import ColumnMap
from personasim.data.reading import RawTable, read_table_file
from personasim.data.sources import LogSpec
from personasim.data.validation import parse_ids, parse_ratings, parse_timestamps, parse_years
from personasim.errors import ColumnError, DataError

__all__ = ["Log", "load_log", "read_items_file", "read_users_file"]

logger = logging.getLogger(__name__)

_YEAR_IN_TITLE = re.compile(r"\((\d{4})\)\s*$")


@dataclass
class Log:
    """A validated interaction log.

    Attributes:
        interactions: ``user_id, item_id, rating, timestamp`` plus ``row``, the row of
            each rating in `file` (for error messages). Ids are strings.
        items: ``item_id, title, year, genres`` for every item of the log and of the
            items file.
        users: ``user_id`` plus attribute columns (strings), one row per user.
        file: The interaction file (for messages).
        user_column: Name of the user column in `file` (for messages).
        inputs: Every file read, for hashing into the manifest.
    """

    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    file: Path
    user_column: str
    inputs: list[Path] = field(default_factory=list)
    timestamps_from_order: bool = False


def load_log(spec: LogSpec) -> Log:
    """Read and validate a log.

    Raises:
        DataError: With file, row and column of the first problem found.
        ColumnError: A mapped column is missing (usage error).
    """
    if spec.movielens_dir:
        return _load_movielens_dir(spec)
    cols = spec.columns
    raw = read_table_file(
        spec.path, delimiter=spec.delimiter, encoding=spec.encoding, quoting=spec.quoting
    )
    needed = [("user", cols.user), ("item", cols.item)]
    if cols.rating:
        needed.append(("rating", cols.rating))
    if cols.timestamp:
        needed.append(("timestamp", cols.timestamp))
    if spec.items_path is None:
        spec = _with_present_item_columns(spec, raw)
        needed += _item_meta_columns(spec)
    if spec.users_path is None:
        needed += [("user_attributes", a) for a in cols.user_attributes]
    raw.require_columns(needed)

    frame = pd.DataFrame(
        {
            "user_id": _strings(parse_ids(raw, cols.user)),
            "item_id": _strings(parse_ids(raw, cols.item)),
            "rating": (
                parse_ratings(raw, cols.rating, spec.scale)
                if cols.rating
                else np.full(raw.table.num_rows, np.nan)  # a click log: no rating
            ),
        }
    )
    if cols.timestamp:
        frame["timestamp"] = parse_timestamps(raw, cols.timestamp)
    else:
        frame["timestamp"] = np.arange(len(frame), dtype="int64")
    frame["row"] = np.arange(raw.first_row, raw.first_row + len(frame), dtype="int64")
    frame = _resolve_duplicates(frame, raw, spec)

    if spec.items_path is not None:
        items = _items_from_file(spec, frame, raw)
    else:
        items = _items_from_log(spec, raw, frame)
    if spec.users_path is not None:
        users = _users_from_file(spec, frame, raw)
    else:
        users = _users_from_log(spec, raw, frame)

    inputs = [p for p in (spec.path, spec.items_path, spec.users_path) if p is not None]
    return Log(
        interactions=frame.reset_index(drop=True),
        items=items,
        users=users,
        file=spec.path,
        user_column=cols.user,
        inputs=inputs,
        timestamps_from_order=not cols.timestamp,
    )


_OPTIONAL_ITEM_COLUMNS = ("title", "year", "genres")


def _with_present_item_columns(spec: LogSpec, raw: RawTable) -> LogSpec:
    """Drop the optional item columns that are left at their default name and absent.

    A column named explicitly (not the default) must exist; `require_columns` says so.
    """
    defaults = ColumnMap()
    cols = spec.columns
    unset = {
        key: ""
        for key in _OPTIONAL_ITEM_COLUMNS
        if getattr(cols, key) == getattr(defaults, key) and getattr(cols, key) not in raw.columns
    }
    if not unset:
        return spec
    return replace(spec, columns=cols.model_copy(update=unset))


def _item_meta_columns(spec: LogSpec) -> list[tuple[str, str]]:
    cols = spec.columns
    return [(k, getattr(cols, k)) for k in _OPTIONAL_ITEM_COLUMNS if getattr(cols, k)]


def _strings(column: pa.ChunkedArray) -> np.ndarray:
    """Arrow strings as a NumPy object array (what pandas and LensKit take as ids)."""
    return column.to_numpy(zero_copy_only=False)


def _pair_keys(frame: pd.DataFrame) -> np.ndarray:
    """One int64 per (user, item) pair: hashing two ints is much cheaper than two strings."""
    users = pd.factorize(frame["user_id"])[0].astype("int64")
    items, item_ids = pd.factorize(frame["item_id"])
    return users * len(item_ids) + items


def _resolve_duplicates(frame: pd.DataFrame, raw: RawTable, spec: LogSpec) -> pd.DataFrame:
    keys = pd.Series(_pair_keys(frame))
    if not keys.duplicated().any():
        return frame
    if spec.duplicates == "keep_last":
        kept = frame.sort_values(["timestamp", "row"]).drop_duplicates(
            ["user_id", "item_id"], keep="last"
        )
        logger.warning(
            "%s: %d repeated ratings of the same item by the same user; kept the latest of each",
            raw.file,
            len(frame) - len(kept),
        )
        return kept.sort_values("row")
    later = keys.duplicated(keep="first")
    i = int(np.flatnonzero(later.to_numpy())[0])
    user, item = frame.iloc[i]["user_id"], frame.iloc[i]["item_id"]
    same = frame[(frame.user_id == user) & (frame.item_id == item)]
    first_row = int(same["row"].iloc[0])
    raise DataError(
        f"user {user!r} rated item {item!r} again (first in row {first_row}); remove the "
        'duplicate or set data.duplicates = "keep_last"',
        file=raw.file,
        row=raw.row_number(i),
        column=spec.columns.item,
    )


def _split_genres(values: pd.Series, separator: str) -> list[list[str]]:
    out = []
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append([])
        else:
            out.append([g.strip() for g in str(v).split(separator) if g.strip()])
    return out


def _item_table(raw: RawTable, ids: np.ndarray, spec: LogSpec) -> pd.DataFrame:
    """Item metadata from the mapped columns of `raw`, one row per position of `ids`."""
    cols = spec.columns
    n = len(ids)
    items = pd.DataFrame({"item_id": ids})
    if cols.title:
        items["title"] = raw.frame[cols.title].astype("string").str.strip().to_numpy()
    else:
        items["title"] = pd.array([None] * n, dtype="string")
    from_title = pd.to_numeric(
        items["title"].str.extract(_YEAR_IN_TITLE, expand=False), errors="coerce"
    ).astype("Int32")
    if cols.year:
        years, bad = parse_years(raw, cols.year, spec.missing_markers)
        items["year"] = pd.Series(years).fillna(from_title).to_numpy()
        unrecovered = bad & items["year"].isna().to_numpy()
        if unrecovered.any():
            i = int(np.flatnonzero(unrecovered)[0])
            logger.warning(
                "%s, row %d, column %r: %r is not a year; %d such value(s) read as unknown",
                raw.file,
                raw.row_number(i),
                cols.year,
                raw.frame[cols.year].iloc[i],
                int(unrecovered.sum()),
            )
    else:
        items["year"] = from_title
    items["genres"] = (
        _split_genres(raw.frame[cols.genres], spec.genres_separator)
        if cols.genres
        else [[] for _ in range(n)]
    )
    return items


def _items_from_file(spec: LogSpec, log: pd.DataFrame, log_raw: RawTable) -> pd.DataFrame:
    items = read_items_file(spec)
    assert spec.items_path is not None
    known = set(items["item_id"])
    _require_known(log, "item_id", known, log_raw, spec.columns.item, spec.items_path, "item")
    return items


def read_items_file(spec: LogSpec) -> pd.DataFrame:
    """The items file of `spec`: ``item_id, title, year, genres``, one row per item.

    Raises:
        DataError: An item is listed twice, or a value is bad (with file, row, column).
        ColumnError: The file has none of the title, year and genres columns (the item
            metadata would be lost without a word).
    """
    assert spec.items_path is not None
    raw = read_table_file(
        spec.items_path, delimiter=spec.delimiter, encoding=spec.encoding, quoting=spec.quoting
    )
    found = _with_present_item_columns(spec, raw)
    absent = [
        getattr(spec.columns, key)
        for key in _OPTIONAL_ITEM_COLUMNS
        if getattr(spec.columns, key) and not getattr(found.columns, key)
    ]
    has = ", ".join(raw.columns)
    mapped = sum(bool(getattr(spec.columns, key)) for key in _OPTIONAL_ITEM_COLUMNS)
    if absent and len(absent) == mapped:
        raise ColumnError(
            f"the items file has none of the columns {', '.join(absent)} (it has: {has}): "
            "map them with --title-col, --year-col and --genres-col (data.columns), or "
            'set the ones it lacks to "" to ingest items without them',
            file=raw.file,
            row=1,
        )
    if absent:
        logger.warning(
            "%s has no column %s (it has: %s): the items have none (map it with data.columns)",
            raw.file,
            " or ".join(absent),
            has,
        )
    spec = found
    raw.require_columns([("item", spec.columns.item), *_item_meta_columns(spec)])
    ids = _strings(parse_ids(raw, spec.columns.item))
    dup = pd.Series(ids).duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(
            f"item {ids[i]!r} is listed twice in the items file",
            file=raw.file,
            row=raw.row_number(i),
            column=spec.columns.item,
        )
    return _item_table(raw, ids, spec).reset_index(drop=True)


def _items_from_log(spec: LogSpec, raw: RawTable, log: pd.DataFrame) -> pd.DataFrame:
    first = ~pd.Series(log["item_id"].to_numpy()).duplicated().to_numpy()
    positions = (log["row"].to_numpy() - raw.first_row)[first]
    sub = raw.take(positions)
    items = _item_table(sub, log["item_id"].to_numpy()[first], spec)
    return items.reset_index(drop=True)


def _require_known(
    log: pd.DataFrame,
    key: str,
    known: set[str],
    log_raw: RawTable,
    column: str,
    mapping_file: Path,
    what: str,
) -> None:
    unknown = ~log[key].isin(known).to_numpy()
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise DataError(
            f"{what} {log[key].iloc[i]!r} is not in {mapping_file} "
            f"({int(unknown.sum())} rating(s) name {what}s missing there); check that both "
            "files use the same ids",
            file=log_raw.file,
            row=int(log["row"].iloc[i]),
            column=column,
        )


def _user_table(
    raw: RawTable, ids: np.ndarray, spec: LogSpec, attributes: list[str]
) -> pd.DataFrame:
    users = pd.DataFrame({"user_id": ids})
    for col in attributes:
        name = spec.attribute_names.get(col, col)
        values = raw.frame[col].astype("string").str.strip()
        decode = spec.attribute_decoders.get(name)
        if decode is not None:
            values = values.map(lambda v, d=decode: d(v) if isinstance(v, str) else v)
        users[name] = values.astype("string").to_numpy()
    return users


def _users_from_file(spec: LogSpec, log: pd.DataFrame, log_raw: RawTable) -> pd.DataFrame:
    users = read_users_file(spec)
    assert spec.users_path is not None
    known = set(users["user_id"])
    _require_known(log, "user_id", known, log_raw, spec.columns.user, spec.users_path, "user")
    return users[users.user_id.isin(set(log.user_id))].reset_index(drop=True)


def read_users_file(spec: LogSpec) -> pd.DataFrame:
    """The users file of `spec`: ``user_id`` plus attribute columns, one row per user.

    Raises:
        DataError: A user is listed twice (with file, row and column).
    """
    assert spec.users_path is not None
    raw = read_table_file(
        spec.users_path, delimiter=spec.delimiter, encoding=spec.encoding, quoting=spec.quoting
    )
    attributes = list(spec.columns.user_attributes) or [
        c for c in raw.frame.columns if c != spec.columns.user
    ]
    raw.require_columns(
        [("user", spec.columns.user), *[("user_attributes", a) for a in attributes]]
    )
    ids = _strings(parse_ids(raw, spec.columns.user))
    dup = pd.Series(ids).duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(
            f"user {ids[i]!r} is listed twice in the users file",
            file=raw.file,
            row=raw.row_number(i),
            column=spec.columns.user,
        )
    return _user_table(raw, ids, spec, attributes)


def _users_from_log(spec: LogSpec, raw: RawTable, log: pd.DataFrame) -> pd.DataFrame:
    first = ~pd.Series(log["user_id"].to_numpy()).duplicated().to_numpy()
    positions = (log["row"].to_numpy() - raw.first_row)[first]
    sub = raw.take(positions)
    return _user_table(sub, log["user_id"].to_numpy()[first], spec, spec.columns.user_attributes)


def _load_movielens_dir(spec: LogSpec) -> Log:
    """A GroupLens MovieLens download (folder or zip), read with LensKit's loader.

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
    frame = _resolve_duplicates(frame, raw, spec)

    items = _movielens_items_from_files(Path(spec.path))
    if items is None:
        items = _movielens_items_from_lenskit(ds)
    items["year"] = pd.to_numeric(
        items["title"].str.extract(_YEAR_IN_TITLE, expand=False), errors="coerce"
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
    return Log(
        interactions=frame.reset_index(drop=True),
        items=items,
        users=users,
        file=spec.path,
        user_column="user_id",
        inputs=inputs,
    )


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
