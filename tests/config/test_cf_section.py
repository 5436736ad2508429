"""The `[cf]` section holds the collaborative models' settings; older configs still load."""

from __future__ import annotations

import logging

import pytest

from personasim.config import RunConfig, load_config
from personasim.config.cf import LEGACY_CF_KEYS
from personasim.errors import ConfigError


def test_older_configs_move_their_cf_settings_to_cf(caplog: pytest.LogCaptureFixture) -> None:
    old = {
        "evaluate": {"mf_epochs": 3, "bias_damping": 2.0, "knn_neighbours": 7},
        "simulate": {"mf_epochs": 4, "mf_embedding_size": 8, "itemknn_neighbors": 9},
    }
    with caplog.at_level(logging.WARNING):
        config = load_config([("old.toml", old)])
    assert config.cf.mf_epochs == 3
    assert config.cf.bias_damping == 2.0
    assert config.cf.knn_neighbours == 7
    assert config.cf.implicit_mf_epochs == 4
    assert config.cf.implicit_mf_embedding_size == 8
    assert config.cf.itemknn_neighbors == 9
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "personasim.config.cf"]
    assert warning.startswith("old.toml: ")
    assert "evaluate.mf_epochs is now cf.mf_epochs" in warning
    assert "simulate.mf_epochs is now cf.implicit_mf_epochs" in warning
    assert RunConfig.model_validate(old) == config  # also without the layers


def test_every_legacy_key_has_a_home_in_cf() -> None:
    fields = RunConfig.model_fields["cf"].annotation.model_fields  # type: ignore[union-attr]
    assert set(LEGACY_CF_KEYS.values()) <= set(fields)


def test_a_later_layer_in_the_new_place_wins_over_an_old_one() -> None:
    config = load_config(
        [("run", {"evaluate": {"mf_epochs": 3}}), ("cli", {"cf": {"mf_epochs": 5}})]
    )
    assert config.cf.mf_epochs == 5


def test_one_setting_in_both_places_of_one_file_is_refused() -> None:
    with pytest.raises(ConfigError, match="evaluate.mf_epochs and cf.mf_epochs"):
        load_config([("both.toml", {"evaluate": {"mf_epochs": 3}, "cf": {"mf_epochs": 4}})])
