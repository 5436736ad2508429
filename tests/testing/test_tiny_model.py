"""The tiny model the mechanics are tested on: SmolLM2's architecture and tokenizer at
a small size, loadable wherever a model folder is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from personasim.agents.lm import AgentLM
from personasim.config import AgentConfig, LLMConfig
from personasim.llm.models import hf_model_path
from personasim.testing import TINY_SHAPE, write_tiny_model


def test_the_tiny_model_is_smollm2_shrunk_with_its_tokenizer(tiny_model):
    smollm2 = Path(hf_model_path(LLMConfig()))
    tiny = json.loads((tiny_model / "config.json").read_text())
    real = json.loads((smollm2 / "config.json").read_text())
    assert {k: tiny[k] for k in TINY_SHAPE} == TINY_SHAPE
    same = ("model_type", "vocab_size", "tie_word_embeddings", "bos_token_id", "eos_token_id")
    assert {k: tiny[k] for k in same} == {k: real[k] for k in same}
    lm = AgentLM.load(AgentConfig(base_model=str(tiny_model), device="cpu", dtype="float32"))
    assert lm.n_layers == TINY_SHAPE["num_hidden_layers"]
    text = "Movie: Heat (1995). How would you rate it, from 1 to 5?"
    real_tokenizer = AutoTokenizer.from_pretrained(smollm2, local_files_only=True)
    assert lm.tokenizer.encode(text) == real_tokenizer.encode(text)
    assert lm.tokenizer.chat_template == real_tokenizer.chat_template
    # far from uniform over the vocabulary, as a trained model's answers are
    ids = torch.tensor([list(lm.encode_prefix("A viewer.") + lm.encode_suffix(text))])
    with torch.inference_mode():
        probs = lm.model(input_ids=ids).logits[0, -1].softmax(-1)
    assert float(probs.max()) > 10 / probs.numel()


def test_the_same_seed_writes_the_same_weights(tiny_model, tmp_path):
    again = write_tiny_model(tmp_path / "again", seed=0)
    weights = (again / "model.safetensors").read_bytes()
    assert weights == (tiny_model / "model.safetensors").read_bytes()
    other = write_tiny_model(tmp_path / "other", seed=1)
    assert (other / "model.safetensors").read_bytes() != weights
    assert write_tiny_model(again, seed=1) == again  # a folder that exists is kept
    assert (again / "model.safetensors").read_bytes() == weights


def test_a_failed_write_leaves_no_folder(tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    def fails(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", fails)
    with pytest.raises(OSError, match="No space left"):
        write_tiny_model(tmp_path / "tiny")
    assert list(tmp_path.iterdir()) == []
