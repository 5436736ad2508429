"""Every kind of bad input gets a one-line error naming file, row and column, the right
exit code, and leaves the run folder as it was."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

# The run folder's lock file may exist; no artifact, config or staging folder may.
WORKDIR_ENTRIES_AFTER_FAILURE = {".lock"}


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _log_text(n_users: int = 3, per_user: int = 6) -> str:
    lines = ["user_id,item_id,rating,timestamp"]
    for u in range(n_users):
        for i in range(per_user):
            lines.append(f"u{u},i{i},{1 + (u + i) % 5},{1000 + 10 * i}")
    return "\n".join(lines) + "\n"


def _ingest_args(path: Path, workdir: Path, *extra: str) -> list[str]:
    return [
        "ingest",
        "--workdir",
        str(workdir),
        "--path",
        str(path),
        "--users",
        "0",
        "--min-ratings",
        "2",
        "--max-ratings",
        "0",
        *extra,
    ]


def _assert_nothing_written(workdir: Path) -> None:
    entries = {p.name for p in workdir.iterdir()} if workdir.exists() else set()
    assert entries <= WORKDIR_ENTRIES_AFTER_FAILURE, entries


def _with_line(text: str, line_no: int, new: str) -> str:
    lines = text.splitlines()
    lines[line_no - 1] = new
    return "\n".join(lines) + "\n"


def test_valid_log_is_accepted(cli, tmp_path):
    log = _write(tmp_path / "log.csv", _log_text())
    res = cli(*_ingest_args(log, tmp_path / "w"))
    assert res.code == 0, res.output
    assert (tmp_path / "w" / "data" / "interactions.parquet").exists()


@pytest.mark.parametrize(
    ("flag", "bad_name", "expected"),
    [
        ("--rating-col", "score", "a log without ratings: --rating-col none"),
        ("--user-col", "userid", "did you mean 'user_id'?"),
    ],
)
def test_missing_or_misnamed_column(cli, tmp_path, flag, bad_name, expected):
    log = _write(tmp_path / "log.csv", _log_text())
    res = cli(*_ingest_args(log, tmp_path / "w", flag, bad_name))
    assert res.code == 2
    assert f"{log}, row 1, column {bad_name!r}: no such column" in res.output
    assert expected in res.output
    _assert_nothing_written(tmp_path / "w")


def test_non_numeric_rating(cli, tmp_path):
    text = _with_line(_log_text(), 5, "u0,i3,four,1030")
    log = _write(tmp_path / "log.csv", text)
    res = cli(*_ingest_args(log, tmp_path / "w"))
    assert res.code == 3
    assert f"{log}, row 5, column 'rating': 'four' is not a number" in res.output
    _assert_nothing_written(tmp_path / "w")


def test_missing_rating(cli, tmp_path):
    log = _write(tmp_path / "log.csv", _with_line(_log_text(), 3, "u0,i1,,1010"))
    res = cli(*_ingest_args(log, tmp_path / "w"))
    assert res.code == 3
    assert "row 3, column 'rating': the rating is missing" in res.output


def test_out_of_scale_rating(cli, tmp_path):
    log = _write(tmp_path / "log.csv", _with_line(_log_text(), 7, "u0,i5,7,1050"))
    res = cli(*_ingest_args(log, tmp_path / "w"))
    assert res.code == 3
    assert (
        f"{log}, row 7, column 'rating': rating 7 is outside the rating scale [1, 5]" in res.output
    )
    _assert_nothing_written(tmp_path / "w")


def test_a_rating_between_two_levels_is_refused_with_the_step_to_set(cli, tmp_path):
    log = _write(tmp_path / "log.csv", _with_line(_log_text(), 7, "u0,i5,3.5,1050"))
    res = cli(*_ingest_args(log, tmp_path / "w"))
    assert res.code == 3
    assert f"{log}, row 7, column 'rating': rating 3.5 is not one of the ratings" in res.output
    assert "data.rating_step" in res.output
    _assert_nothing_written(tmp_path / "w")


def test_a_file_of_another_delimiter_is_told_which(cli, tmp_path):
    log = _write(tmp_path / "log.csv", _log_text().replace(",", ";"))
    res = cli(*_ingest_args(log, tmp_path / "w"))
    assert res.code == 2
    assert "the header looks delimited by ';': pass --delimiter ';'" in res.output
    res = cli(*_ingest_args(log, tmp_path / "w", "--delimiter", ";"))
    assert res.code == 0, res.output


def test_empty_file(cli, tmp_path):
    log = _write(tmp_path / "log.csv", "")
    res = cli(*_ingest_args(log, tmp_path / "w"))
    assert res.code == 3
    assert f"{log}, row 1: the file is empty" in res.output
    _assert_nothing_written(tmp_path / "w")


def test_header_only(cli, tmp_path):
    log = _write(tmp_path / "log.csv", "user_id,item_id,rating,timestamp\n")
    res = cli(*_ingest_args(log, tmp_path / "w"))
    assert res.code == 3
    assert f"{log}, row 2: the file has a header but no data rows" in res.output


def test_unknown_item_in_items_file(cli, tmp_path):
    log = _write(tmp_path / "log.csv", _log_text())
    items = _write(
        tmp_path / "items.csv", "item_id,title\n" + "".join(f"i{i},Movie {i}\n" for i in range(5))
    )  # i5 is missing
    res = cli(*_ingest_args(log, tmp_path / "w", "--items", str(items)))
    assert res.code == 3
    # The first rating of i5 is user u0's sixth one: file row 7.
    assert f"{log}, row 7, column 'item_id': item 'i5' is not in {items}" in res.output
    _assert_nothing_written(tmp_path / "w")


def test_unknown_user_in_users_file(cli, tmp_path):
    log = _write(tmp_path / "log.csv", _log_text())
    users = _write(tmp_path / "users.csv", "user_id,age\nu0,20\nu1,30\nU2,40\n")
    res = cli(*_ingest_args(log, tmp_path / "w", "--users-file", str(users)))
    assert res.code == 3
    assert f"{log}, row 14, column 'user_id': user 'u2' is not in {users}" in res.output


def test_items_file_with_catalogue_items_is_accepted(cli, tmp_path):
    """Items nobody rated are catalogue items, not an error."""
    log = _write(tmp_path / "log.csv", _log_text())
    items = _write(
        tmp_path / "items.csv",
        "item_id,title,genres\n"
        + "".join(f"i{i},Movie {i} (1999),Drama|Comedy\n" for i in range(8)),
    )
    res = cli(*_ingest_args(log, tmp_path / "w", "--items", str(items)))
    assert res.code == 0, res.output
    table = pd.read_parquet(tmp_path / "w" / "data" / "items.parquet")
    assert len(table) == 8
    unrated = table.set_index("item_id").loc["i7"]
    assert unrated.train_count == 0 and pd.isna(unrated.train_mean_rating)
    assert unrated.year == 1999 and list(unrated.genres) == ["Drama", "Comedy"]


def test_an_items_file_without_metadata_columns_is_refused_naming_its_columns(cli, tmp_path):
    log = _write(tmp_path / "log.csv", _log_text())
    items = _write(
        tmp_path / "items.csv",
        "item_id,name,kind\n" + "".join(f"i{i},Movie {i},Drama\n" for i in range(8)),
    )
    res = cli(*_ingest_args(log, tmp_path / "w", "--items", str(items)))
    assert res.code == 2
    assert "has none of the columns title, year, genres (it has: item_id, name, kind)" in (
        res.output
    )
    assert "--title-col" in res.output
    _assert_nothing_written(tmp_path / "w")
    mapped = ["--items", str(items), "--title-col", "name", "--genres-col", "kind"]
    res = cli(*_ingest_args(log, tmp_path / "w", *mapped))
    assert res.code == 0, res.output
    table = pd.read_parquet(tmp_path / "w" / "data" / "items.parquet").set_index("item_id")
    assert table.loc["i3", "title"] == "Movie 3" and list(table.loc["i3", "genres"]) == ["Drama"]


def test_not_utf8(cli, tmp_path):
    text = _log_text().encode()
    lines = text.split(b"\n")
    lines[3] = b"u0,caf\xe9,4,1020"  # latin-1 e-acute in the item id, row 4
    log = _write(tmp_path / "log.csv", b"\n".join(lines))
    res = cli(*_ingest_args(log, tmp_path / "w"))
    assert res.code == 3
    assert f"{log}, row 4, column 'item_id': not valid utf-8 text (byte 0xe9)" in res.output
    _assert_nothing_written(tmp_path / "w")
    # ... and the suggested fix works.
    res = cli(
        *_ingest_args(log, tmp_path / "w"),
        "--config",
        str(_write(tmp_path / "enc.toml", '[data]\nencoding = "latin-1"\n')),
    )
    assert res.code == 0, res.output
    ids = set(pd.read_parquet(tmp_path / "w" / "data" / "interactions.parquet").item_id)
    assert "café" in ids


def test_duplicate_rating(cli, tmp_path):
    text = _log_text() + "u1,i2,5,2000\n"
    log = _write(tmp_path / "log.csv", text)
    res = cli(*_ingest_args(log, tmp_path / "w"))
    assert res.code == 3
    assert (
        f"{log}, row 20, column 'item_id': user 'u1' rated item 'i2' again (first in row 10)"
    ) in res.output
    _assert_nothing_written(tmp_path / "w")


def test_duplicate_rating_keep_last(cli, tmp_path):
    log = _write(tmp_path / "log.csv", _log_text() + "u1,i2,5,2000\n")
    cfg = _write(tmp_path / "c.toml", '[data]\nduplicates = "keep_last"\n')
    res = cli(*_ingest_args(log, tmp_path / "w"), "--config", str(cfg))
    assert res.code == 0, res.output
    frame = pd.read_parquet(tmp_path / "w" / "data" / "interactions.parquet")
    kept = frame[(frame.user_id == "u1") & (frame.item_id == "i2")]
    assert kept.rating.tolist() == [5.0] and kept.timestamp.tolist() == [2000]


def test_user_with_too_few_ratings_for_split(cli, tmp_path):
    text = _log_text() + "u9,i1,4,1000\n"  # u9 has a single rating: no train part at 60:40
    log = _write(tmp_path / "log.csv", text)
    res = cli(
        "ingest",
        "--workdir",
        tmp_path / "w",
        "--path",
        log,
        "--users",
        "0",
        "--min-ratings",
        "1",
        "--max-ratings",
        "0",
    )
    assert res.code == 3
    assert (
        f"{log}, row 20, column 'user_id': user 'u9' has 1 rating(s): too few for a 0.6 train split"
    ) in res.output
    assert "--min-ratings to at least 2" in res.output
    _assert_nothing_written(tmp_path / "w")


def test_bad_timestamp(cli, tmp_path):
    log = _write(tmp_path / "log.csv", _with_line(_log_text(), 4, "u0,i2,3,yesterday"))
    res = cli(*_ingest_args(log, tmp_path / "w"))
    assert res.code == 3
    assert "row 4, column 'timestamp': 'yesterday' is not a time" in res.output


def test_ragged_row(cli, tmp_path):
    log = _write(tmp_path / "log.csv", _with_line(_log_text(), 6, "u0,i4,3"))
    res = cli(*_ingest_args(log, tmp_path / "w"))
    assert res.code == 3
    assert f"{log}, row 6: expected 4 fields" in res.output


def test_failed_ingest_keeps_previous_artifacts(cli, tmp_path):
    """A bad log must not destroy the finished data of an earlier good run."""
    good = _write(tmp_path / "good.csv", _log_text())
    workdir = tmp_path / "w"
    assert cli(*_ingest_args(good, workdir)).code == 0
    before = {p.name: p.read_bytes() for p in (workdir / "data").iterdir()}
    bad = _write(tmp_path / "bad.csv", _with_line(_log_text(), 5, "u0,i3,x,1030"))
    assert cli(*_ingest_args(bad, workdir)).code == 3
    after = {p.name: p.read_bytes() for p in (workdir / "data").iterdir()}
    assert after == before
    assert not (workdir / ".staging").exists()


def test_unknown_config_key_is_a_usage_error(cli, tmp_path):
    cfg = _write(tmp_path / "c.toml", "[split]\nuser = 10\n")
    res = cli("ingest", "--workdir", tmp_path / "w", "--config", cfg)
    assert res.code == 2
    assert f"{cfg}: split.user: unknown key" in res.output


def test_parquet_log_errors_name_the_row(cli, tmp_path):
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "a"],
            "item_id": ["x", "y", "z"],
            "rating": [4.0, 9.0, 3.0],
            "timestamp": [1, 2, 3],
        }
    )
    path = tmp_path / "log.parquet"
    frame.to_parquet(path)
    res = cli(*_ingest_args(path, tmp_path / "w"))
    assert res.code == 3
    assert f"{path}, row 2, column 'rating': rating 9 is outside" in res.output


def test_blank_line_is_refused_with_its_row(cli, tmp_path):
    log = _write(tmp_path / "log.csv", _with_line(_log_text(), 5, ""))
    res = cli(*_ingest_args(log, tmp_path / "w"))
    assert res.code == 3
    assert f"{log}, row 5: a blank line" in res.output


def test_trailing_blank_lines_are_ignored(cli, tmp_path):
    log = _write(tmp_path / "log.csv", _log_text() + "\n\n")
    assert cli(*_ingest_args(log, tmp_path / "w")).code == 0
