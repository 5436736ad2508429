"""Where and in what precision the models run, and inference batches sized from the
GPU's free memory.

Device and dtype are read off the machine at run time, never off the one that built
the environment: "auto" takes CUDA when present, and bfloat16 on CUDA and on CPUs whose
instruction set multiplies bf16 matrices natively (AMX, or AVX-512 BF16), float32
elsewhere (measured on an AVX-512 BF16 CPU: a 512x576x1536 matmul at 826 GFLOP/s in
bf16 against 194 in float32; without such units bf16 is emulated and slower).

On a CPU the configured batch sizes are used as they are. On CUDA an inference batch
(generation in the `hf` backend, agent scoring) grows to what the free memory holds:
the bytes one sequence needs (its KV cache, a few activations per layer and the logits
of the positions read) are estimated from the model's config, and the batch takes
`fraction` of the free memory. Training batches are never resized: their size is part
of the optimisation, so changing it would change the adapters.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import Any, Literal

from personasim.errors import BackendError

__all__ = [
    "DTypeName",
    "bytes_per_sequence",
    "cpu_has_bf16_matmul",
    "fitting_batch",
    "pick_device",
    "pick_dtype",
]

DTypeName = Literal["auto", "float32", "bfloat16"]

logger = logging.getLogger(__name__)

_ACTIVATIONS_PER_LAYER = 6
"""Hidden-size tensors alive per token and layer in a forward pass (a generous bound
for attention + MLP in inference mode)."""


def pick_device(setting: str) -> str:
    """ "cuda" when asked for or ("auto") present, else "cpu".

    Raises:
        BackendError: "cuda" was asked for and there is none.
    """
    import torch

    if setting == "cuda" and not torch.cuda.is_available():
        raise BackendError("device = 'cuda' but no CUDA device is available")
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting


_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@cache
def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AMX-BF16 or AVX512-BF16),
    asked of torch, or of /proc/cpuinfo where torch cannot say."""
    try:
        import torch

        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except (AttributeError, RuntimeError, ImportError):
        pass
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    return any(flag in flags for flag in _BF16_CPU_FLAGS)


def pick_dtype(setting: str, device: str) -> Any:
    """The torch dtype for `setting` ("auto", "float32", "bfloat16") on `device`.

    "auto" is bfloat16 on CUDA (where the GPU supports it) and on CPUs with native bf16
    matrix units (:func:`cpu_has_bf16_matmul`), float32 elsewhere.
    """
    import torch

    if setting == "float32":
        return torch.float32
    if setting == "bfloat16":
        return torch.bfloat16
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_bf16_matmul() else torch.float32


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
