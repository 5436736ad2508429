"""Out-of-core ingestion (DuckDB) writes what the in-memory path writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from personasim.data.tables import read_parquet
from personasim.errors import DataError
from personasim.pipeline.ingest import IngestStage
from personasim.run_folder import DATA, PROFILES
from personasim.workspace import Workspace

TABLES = ("interactions", "items", "users", "others")


def _ingest(tmp_path: Path, name: str, config) -> dict[str, pd.DataFrame]:
    ws = Workspace(tmp_path / name)
    IngestStage(ws, config).run()
    return {t: read_parquet(ws.path(getattr(DATA, t))) for t in TABLES}


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for column in a.columns:
        left, right = a[column], b[column]
        if column == "train_mean_rating":
            np.testing.assert_allclose(left.to_numpy(float), right.to_numpy(float), rtol=1e-12)
        elif column == "genres":
            assert [list(g) for g in left] == [list(g) for g in right]
        else:
            assert left.astype(str).tolist() == right.astype(str).tolist(), column


@pytest.mark.parametrize(
    "split",
    [
        {"users": 20, "min_ratings": 20, "max_ratings": 0, "include_other_users": True},
        {"users": 0, "min_ratings": 20, "max_ratings": 35, "include_other_users": False},
    ],
)
def test_duckdb_ingest_equals_in_memory(log_files, log_config, tmp_path, split):
    memory = _ingest(tmp_path, "memory", log_config(log_files, split=split))
    duck = _ingest(
        tmp_path,
        "duckdb",
        log_config(log_files, split=split, scale={"tables": "duckdb", "memory_limit": "256MB"}),
    )
    for table in TABLES:
        _same(memory[table], duck[table])
    assert (memory["interactions"].split == "test").any()


def test_duckdb_ingest_log_without_items_file_or_timestamps(small_log, tmp_path):
    from personasim.config import load_config

    items = small_log.items.assign(genres=small_log.items.genres.map("|".join))
    log = small_log.ratings.drop(columns="timestamp").merge(items, on="item_id")
    path = tmp_path / "log.csv"
    log.sample(frac=1.0, random_state=0).to_csv(path, index=False)

    def config(**scale):
        data = {"dataset": "custom", "path": str(path), "columns": {"timestamp": ""}}
        split = {"users": 10, "min_ratings": 20}
        return load_config([("test", {"data": data, "split": split, **scale})])

    memory = _ingest(tmp_path, "memory", config())
    duck = _ingest(tmp_path, "duckdb", config(scale={"tables": "duckdb"}))
    for table in TABLES:
        _same(memory[table], duck[table])
    assert memory["items"]["title"].notna().all()


def test_duckdb_ingest_refuses_bad_rating_with_its_row(log_files, log_config, tmp_path):
    ratings = pd.read_csv(log_files[0])
    ratings.loc[41, "rating"] = 9
    ratings.to_csv(log_files[0], index=False)
    config = log_config(log_files, scale={"tables": "duckdb"})
    with pytest.raises(DataError) as info:
        IngestStage(Workspace(tmp_path / "run"), config).run()
    assert info.value.row == 43 and info.value.column == "rating"
    assert not (tmp_path / "run" / "data").exists()


def test_duckdb_ingest_refuses_duplicate_like_in_memory(log_files, log_config, tmp_path):
    ratings = pd.read_csv(log_files[0])
    pd.concat([ratings, ratings.iloc[[5]]]).to_csv(log_files[0], index=False)
    errors = []
    for name, scale in (("memory", {}), ("duckdb", {"tables": "duckdb"})):
        config = log_config(log_files, scale=scale) if scale else log_config(log_files)
        with pytest.raises(DataError) as info:
            IngestStage(Workspace(tmp_path / name), config).run()
        errors.append(str(info.value))
    assert errors[0] == errors[1]
    assert f"row {len(ratings) + 2}" in errors[0]


def test_out_of_core_template_profiles_equal_in_memory(log_files, log_config, tmp_path):
    from personasim.pipeline.profile import ProfileStage

    split = {"users": 0, "min_ratings": 20, "max_ratings": 0}
    frames = []
    for name, scale in (("memory", {}), ("duckdb", {"tables": "duckdb", "batch_users": 7})):
        config = log_config(
            log_files,
            split=split,
            profile={"rationales": False},
            **({"scale": scale} if scale else {}),
        )
        ws = Workspace(tmp_path / name)
        IngestStage(ws, config).run()
        ProfileStage(ws, config).run()
        frames.append(read_parquet(ws.path(PROFILES.profiles)))
    memory, duck = frames
    assert len(duck) == 60
    assert list(memory.columns) == list(duck.columns)
    assert duck["profile_text"].tolist() == memory["profile_text"].tolist()
    for column in ("activity", "conformity", "diversity", "diversity_genres", "activity_count"):
        assert duck[column].tolist() == memory[column].tolist(), column
    np.testing.assert_allclose(duck["conformity_gap"], memory["conformity_gap"], rtol=1e-12)


def test_duckdb_keep_last_keeps_what_in_memory_keeps(log_files, log_config, tmp_path):
    ratings = pd.read_csv(log_files[0])
    again = ratings.iloc[[5, 17]].assign(rating=1.0, timestamp=ratings.timestamp.max() + 10)
    pd.concat([ratings, again]).to_csv(log_files[0], index=False)
    data = {"duplicates": "keep_last"}
    frames = []
    for name, scale in (("m", {}), ("d", {"tables": "duckdb"})):
        cfg = log_config(
            log_files, split={"users": 0, "min_ratings": 20}, **({"scale": scale} if scale else {})
        )
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update=data)})
        frames.append(_ingest(tmp_path, name, cfg))
    for table in TABLES:
        _same(frames[0][table], frames[1][table])
    kept = frames[1]["interactions"]
    row = ratings.iloc[5]
    mine = kept[(kept.user_id == row.user_id) & (kept.item_id == row.item_id)]
    assert mine["rating"].tolist() == [1.0]
