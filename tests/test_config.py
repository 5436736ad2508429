"""The run configuration: documented, strict, layered, stable hashes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from personasim.config import (
    RunConfig,
    config_hash,
    config_reference,
    deep_merge,
    dump_config,
    load_config,
    read_toml,
)
from personasim.errors import ConfigError


def _models(model: type[BaseModel]):
    yield model
    for field in model.model_fields.values():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _models(field.annotation)


def test_every_field_is_documented():
    for model in _models(RunConfig):
        for name, field in model.model_fields.items():
            assert field.description and len(field.description) > 10, f"{model.__name__}.{name}"


def test_reference_lists_every_section_and_key():
    text = config_reference()
    for section in ("top level", "[data]", "[data.columns]", "[split]", "[evaluate]"):
        assert f"### `{section}`" in text
    assert "| `min_ratings` | `100` |" in text
    assert "| `include_other_users` | `true` |" in text


def test_unknown_key_is_rejected_with_its_source():
    with pytest.raises(ConfigError, match=r"mine.toml: split.min_rating: unknown key"):
        load_config([("mine.toml", {"split": {"min_rating": 3}})])


def test_invalid_value_names_the_layer_that_brought_it():
    layers = [("a.toml", {"split": {"users": 5}}), ("flags", {"split": {"train_fraction": 1.5}})]
    with pytest.raises(ConfigError, match=r"flags: split.train_fraction"):
        load_config(layers)


def test_later_layers_win_and_none_removes():
    cfg = load_config(
        [
            ("a", {"seed": 1, "split": {"users": 5, "min_ratings": 3}}),
            ("b", {"split": {"users": 7}}),
        ]
    )
    assert (cfg.seed, cfg.split.users, cfg.split.min_ratings) == (1, 7, 3)
    merged = deep_merge(
        {"data": {"path": "x", "dataset": "custom"}}, {"data": {"path": None, "dataset": "ml-1m"}}
    )
    assert merged == {"data": {"dataset": "ml-1m"}}


def test_dump_round_trips(tmp_path: Path):
    cfg = load_config(
        [
            (
                "a",
                {
                    "seed": 3,
                    "data": {"dataset": "custom", "path": "/x/log.csv"},
                    "split": {"users": 0},
                },
            )
        ]
    )
    path = tmp_path / "c.toml"
    path.write_text(dump_config(cfg))
    again = load_config([("c", read_toml(path))])
    assert again == cfg
    assert tomllib.loads(dump_config(RunConfig()))["split"]["train_fraction"] == 0.6


def test_relative_paths_are_taken_from_the_config_file(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    cfg_file = tmp_path / "sub" / "c.toml"
    cfg_file.write_text('[data]\ndataset = "custom"\npath = "../log.csv"\n')
    cfg = load_config([("c", read_toml(cfg_file))])
    assert cfg.data.path == (tmp_path / "log.csv").resolve()


def test_path_with_builtin_dataset_is_a_usage_error():
    with pytest.raises(ConfigError, match="set dataset to"):
        load_config([("a", {"data": {"path": "/x.csv"}})])


def test_bad_toml_names_the_file(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text("[split\nusers = 3\n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        read_toml(path)


def test_config_hash_is_stable_and_sensitive():
    a = RunConfig()
    assert config_hash(a.split, 1) == config_hash(RunConfig().split, 1)
    assert config_hash(a.split, 1) != config_hash(a.split, 2)
    changed = load_config([("x", {"split": {"users": 3}})])
    assert config_hash(a.split) != config_hash(changed.split)
