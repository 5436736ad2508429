"""A tiny randomly initialised model of SmolLM2's architecture, for tests of mechanics.

Packing, masks, caches, mixed-adapter batches, training loops, checkpoints and the
service do not need a model that knows anything: they need the real architecture
(a Llama decoder with tied embeddings and grouped-query attention), the real tokenizer
(digits, yes/no and the chat template are looked up in it) and a forward pass to check
every fast path against. PEFT's and transformers' suites test that way. A folder written
here loads wherever a model folder does (``agents.base_model``, ``llm.model``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from personasim.config import LLMConfig
from personasim.llm.models import hf_model_path

__all__ = ["TINY_SHAPE", "write_tiny_model"]

TINY_SHAPE = {
    "num_hidden_layers": 8,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}
"""The sizes that replace SmolLM2-135M's (30 layers, hidden 576, 9 heads of 64, 3 KV
heads): 8 layers keep the default adapters' top 6 layers above 2 frozen ones, and the
4:2 heads keep attention grouped as SmolLM2's 9:3."""


def write_tiny_model(folder: Path, *, seed: int = 0, initializer_range: float = 0.2) -> Path:
    """Write a randomly initialised SmolLM2-shaped model with SmolLM2's tokenizer.

    The configuration is SmolLM2-135M-Instruct's (vocabulary, special tokens, RoPE,
    tied embeddings) with the sizes of :data:`TINY_SHAPE`; the tokenizer and its chat
    template are SmolLM2's own, both read from the packaged model (converted once into
    the model cache, as every use of it is). About 3.5 M parameters (the 49,152 x 64
    embedding is most of them), written in float32.

    Args:
        folder: Where the model folder goes (created; written atomically: a folder that
            exists is complete).
        seed: Seed of the random weights: the same seed writes the same weights.
        initializer_range: Standard deviation of the random weights. Larger than
            SmolLM2's 0.02 so that the tiny model's next-token distributions are far
            from uniform, as a trained model's are, and an adapter visibly moves them.

    Returns:
        The folder.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    if (folder / "config.json").exists():
        return folder
    source = hf_model_path(LLMConfig())
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    config = AutoConfig.from_pretrained(source, local_files_only=True)
    for name, value in TINY_SHAPE.items():
        setattr(config, name, value)
    config.initializer_range = initializer_range
    config.name_or_path = "personasim-tiny-smollm2"
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}")
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
