"""Backends are registered by name; unknown names are usage errors."""

from __future__ import annotations

import pytest

from personasim.config import LLMConfig
from personasim.errors import ConfigError
from personasim.llm import available_generators, create_generator, register_generator
from personasim.testing import FakeGenerator


def test_builtins_are_registered():
    assert {"hf", "llamacpp", "openai", "template"} <= set(available_generators())


def test_unknown_backend_lists_the_available_ones():
    with pytest.raises(ConfigError, match=r"no generator named 'nope' \(available: .*hf"):
        create_generator(LLMConfig(backend="nope"))


def test_a_registered_plugin_is_created_by_name():
    register_generator("fake-for-test")(lambda config: FakeGenerator(name=config.model))
    generator = create_generator(LLMConfig(backend="fake-for-test", model="mine"))
    assert generator.identity() == {"backend": "fake", "model": "mine"}
