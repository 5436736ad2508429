"""Greedy free-text generation, for measuring how often the agents answer off-format."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from personasim.agents.decoder import Decoder

__all__ = ["generate"]


def generate(
    decoder: Decoder,
    tokenizer: Any,
    prompts: Sequence[tuple[tuple[int, ...], str]],
    max_new_tokens: int = 12,
    batch_size: int = 8,
) -> list[str]:
    """Greedy free-text answers, for measuring how often the model answers off-format.

    Args:
        decoder: The model.
        tokenizer: Its tokenizer (decodes the answers).
        prompts: ``(token ids of the whole prompt, adapter name)`` per answer.
        max_new_tokens: Tokens generated per answer.
        batch_size: Prompts per `generate` call (grouped by adapter, left-padded).

    Returns:
        The decoded answers, in the order of `prompts`.
    """
    import torch

    out = [""] * len(prompts)
    by_adapter: dict[str, list[int]] = {}
    for k, (_, adapter) in enumerate(prompts):
        by_adapter.setdefault(adapter, []).append(k)
    for adapter, indices in by_adapter.items():
        for start in range(0, len(indices), batch_size):
            part = indices[start : start + batch_size]
            width = max(len(prompts[k][0]) for k in part)
            ids = torch.full((len(part), width), decoder.pad_id, dtype=torch.long)
            mask = torch.zeros((len(part), width), dtype=torch.long)
            for row, k in enumerate(part):
                tokens = prompts[k][0]
                ids[row, width - len(tokens) :] = torch.tensor(tokens)
                mask[row, width - len(tokens) :] = 1
            with torch.inference_mode(), decoder.adapters([adapter]):
                generated = decoder.model.generate(
                    input_ids=ids.to(decoder.device),
                    attention_mask=mask.to(decoder.device),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=decoder.pad_id,
                )
            for row, k in enumerate(part):
                out[k] = tokenizer.decode(generated[row, width:], skip_special_tokens=True).strip()
    return out
