"""Sizing inference batches from the GPU's free memory.

On a CPU the configured batch sizes are used as they are. On CUDA an inference batch
(generation in the `hf` backend, agent scoring) grows to what the free memory holds:
the bytes one sequence needs (its KV cache, a few activations per layer and the logits
of the positions read) are estimated from the model's config, and the batch takes
`fraction` of the free memory. Training batches are never resized: their size is part
of the optimisation, so changing it would change the adapters.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["bytes_per_sequence", "fitting_batch"]

logger = logging.getLogger(__name__)

_ACTIVATIONS_PER_LAYER = 6
"""Hidden-size tensors alive per token and layer in a forward pass (a generous bound
for attention + MLP in inference mode)."""


def bytes_per_sequence(model_config: Any, tokens: int, *, dtype_bytes: int = 2) -> int:
    """Memory one sequence of `tokens` needs in an inference forward pass.

    Args:
        model_config: A transformers config (hidden_size, num_hidden_layers, ...).
        tokens: Tokens of the sequence (prompt plus generated).
        dtype_bytes: 2 for bf16, 4 for float32.
    """
    hidden = int(model_config.hidden_size)
    layers = int(model_config.num_hidden_layers)
    heads = int(getattr(model_config, "num_attention_heads", 1))
    kv_heads = int(getattr(model_config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(model_config, "head_dim", None) or hidden // heads)
    intermediate = int(getattr(model_config, "intermediate_size", 4 * hidden))
    kv = 2 * layers * kv_heads * head_dim * tokens * dtype_bytes
    activations = (_ACTIVATIONS_PER_LAYER * hidden + intermediate) * tokens * dtype_bytes
    logits = int(model_config.vocab_size) * 4 * 2  # float32 logits of the last positions
    return kv + activations + logits


def fitting_batch(
    configured: int,
    *,
    device: str,
    model_config: Any,
    tokens: int,
    fraction: float,
    dtype_bytes: int = 2,
    cap: int = 4096,
) -> int:
    """The batch size to use: `configured` on a CPU (or with `fraction` 0), else the
    larger of `configured` and what `fraction` of the free CUDA memory holds.

    Args:
        configured: The batch size of the configuration.
        device: "cpu" or "cuda".
        model_config: The model's transformers config.
        tokens: Tokens of the longest sequence of the batch.
        fraction: Share of the free memory the batch may take (0 turns this off).
        dtype_bytes: Bytes per value (2 in bf16).
        cap: Upper bound.
    """
    if device != "cuda" or fraction <= 0:
        return configured
    import torch

    free, _ = torch.cuda.mem_get_info()
    per = bytes_per_sequence(model_config, tokens, dtype_bytes=dtype_bytes)
    size = max(configured, min(cap, int(free * fraction) // max(per, 1)))
    if size != configured:
        logger.debug(
            "batch %d -> %d (%.1f GiB free, %d tokens)", configured, size, free / 2**30, tokens
        )
    return size
