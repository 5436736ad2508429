"""A rankings file from any system is read strictly and simulated as a recommender."""

from __future__ import annotations

import pandas as pd
import pytest

from personasim.config import SimulateConfig
from personasim.errors import ColumnError, DataError
from personasim.simulation.rankings import RankingsRecommender, read_rankings
from personasim.simulation.recommenders import create_recommender


def _write(tmp_path, text, name="prod.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_lists_follow_the_ranks_and_skip_what_the_user_has_seen(tmp_path):
    path = _write(tmp_path, "user_id,item_id,rank\nu1,b,2\nu1,a,1\nu1,c,3\nu2,z,1\n")
    recommender = RankingsRecommender("prod", path)
    recommender.fit(pd.DataFrame(), seed=0)
    assert recommender.recommend("u1", [], 5) == ["a", "b", "c"]
    assert recommender.recommend("u1", ["a"], 1) == ["b"]
    assert recommender.recommend("u9", [], 5) == []
    parquet = tmp_path / "prod.parquet"
    read_rankings(path).to_parquet(parquet)
    assert RankingsRecommender("p", parquet).recommend("u1", [], 2) == ["a", "b"]


def test_the_config_simulates_every_rankings_file(tmp_path):
    path = _write(tmp_path, "user_id,item_id,rank\nu1,a,1\n")
    cfg = SimulateConfig(recommenders=["random"], rankings={"prod": str(path)})
    assert cfg.recommenders == ["random", "prod"]
    assert isinstance(create_recommender("prod", cfg), RankingsRecommender)


@pytest.mark.parametrize(
    ("text", "error", "row", "column", "message"),
    [
        ("user,item_id,rank\nu1,a,1\n", ColumnError, 1, "user_id", "needs the columns"),
        ("user_id,item_id,rank\nu1,a,1\nu1,b,first\n", DataError, 3, "rank", "'first'"),
        ("user_id,item_id,rank\nu1,a,1\nu1,b,0\n", DataError, 3, "rank", "positive rank"),
        ("user_id,item_id,rank\nu1,a,1\n,b,2\n", DataError, 3, "user_id", "empty"),
        ("user_id,item_id,rank\nu1,a,1\nu2,a,1\nu1,a,2\n", DataError, 4, "item_id", "twice"),
    ],
)
def test_bad_rankings_name_the_file_row_and_column(tmp_path, text, error, row, column, message):
    path = _write(tmp_path, text)
    with pytest.raises(error) as caught:
        read_rankings(path)
    text_of = str(caught.value)
    assert str(path) in text_of and f"row {row}" in text_of and repr(column) in text_of
    assert message in text_of


def test_the_deliberately_poor_recommender_lists_the_least_rated_first():
    training = pd.DataFrame(
        {"user_id": ["u1", "u2", "u3", "u1", "u2", "u3"], "item_id": ["a", "a", "a", "b", "b", "c"]}
    )
    recommender = create_recommender("unpopular", SimulateConfig())
    recommender.fit(training, seed=0)
    assert recommender.recommend("u3", ["c"], 5) == ["b", "a"]
    assert recommender.recommend("u1", [], 2) == ["c", "b"]
