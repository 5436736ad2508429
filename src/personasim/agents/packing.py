"""Packing prompts for one forward pass: packs, their padded batch and its attention mask.

A *pack* is one user's profile prefix followed by several item suffixes; an attention
mask lets every suffix see the prefix and itself but not the other suffixes, and each
suffix's positions continue from the prefix's end, so each answer is scored exactly as
if its prompt had been run alone (tests/agents/test_modeling.py checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BASE_ADAPTER", "Pack", "PackedBatch", "block_mask", "collate"]

BASE_ADAPTER = "__base__"
"""PEFT's name for "no adapter" in a mixed-adapter batch."""


@dataclass(frozen=True)
class Pack:
    """One user's prefix and the item suffixes scored after it.

    With `answered`, each suffix ends with its answer token (training): the answer is
    read where the prompt ends, and what follows the answer (the end of the turn) at
    the answer token.
    """

    prefix: tuple[int, ...]
    suffixes: tuple[tuple[int, ...], ...]
    adapter: str = BASE_ADAPTER
    answered: bool = False


@dataclass
class PackedBatch:
    """Packs laid out as tensors.

    Attributes:
        input_ids: ``[batch, length]``.
        mask: Additive attention mask ``[batch, 1, length, length]``.
        position_ids: ``[batch, length]``.
        rows: Batch row of each answer (in pack order, suffix order).
        positions: Position of each answer's last prompt token.
        adapters: Adapter name of each batch row.
        answer_positions: Position of each answer token (answered packs), or None.
    """

    input_ids: Any
    mask: Any
    position_ids: Any
    rows: Any
    positions: Any
    adapters: list[str]
    answer_positions: Any = None


def block_mask(segments: Any, dtype: Any, past_valid: Any = None) -> Any:
    """The additive attention mask of every scoring and training pass.

    A token sees the earlier tokens of the shared prefix (segment 0) and of its own
    segment (an item, 1, 2, ...), never another item's; padding (-1) sees only itself
    (no NaN). With `past_valid`, the keys start with a cached prefix of which the valid
    positions are seen by every real token.

    Args:
        segments: ``[batch, length]`` segment of each token (-1 padding, 0 prefix, i item).
        dtype: The mask's dtype (the model's).
        past_valid: ``[batch, past]`` which cached-prefix keys are real, or None.

    Returns:
        ``[batch, 1, length, past + length]``: 0 where attended, the dtype's minimum
        elsewhere.
    """
    import torch

    width = segments.shape[1]
    q, k = segments[:, :, None], segments[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool, device=segments.device).tril()
    allowed = causal & (k >= 0) & (q >= 0) & ((k == 0) | (k == q))
    allowed |= torch.eye(width, dtype=torch.bool, device=segments.device)
    if past_valid is not None:
        past = past_valid[:, None, :] & (q >= 0)
        allowed = torch.cat([past.expand(-1, width, -1), allowed], dim=-1)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def collate(packs: Sequence[Pack], pad_id: int, dtype: Any, device: str) -> PackedBatch:
    """Lay packs out in a padded batch with the block attention mask."""
    import torch

    lengths = [len(p.prefix) + sum(len(s) for s in p.suffixes) for p in packs]
    width = max(lengths)
    ids = np.full((len(packs), width), pad_id, dtype=np.int64)
    segment = np.full((len(packs), width), -1, dtype=np.int64)  # -1 pad, 0 prefix, i item
    positions = np.zeros((len(packs), width), dtype=np.int64)
    rows, answer_pos = [], []
    for b, pack in enumerate(packs):
        n = len(pack.prefix)
        ids[b, :n] = pack.prefix
        segment[b, :n] = 0
        positions[b, :n] = np.arange(n)
        start = n
        for i, suffix in enumerate(pack.suffixes, start=1):
            end = start + len(suffix)
            ids[b, start:end] = suffix
            segment[b, start:end] = i
            positions[b, start:end] = np.arange(n, n + len(suffix))
            rows.append(b)
            answer_pos.append(end - 2 if pack.answered else end - 1)
            start = end
    answered = {p.answered for p in packs}
    if len(answered) > 1:
        raise ValueError("a batch mixes packs with and without their answers")
    positions_t = torch.tensor(answer_pos, device=device)
    return PackedBatch(
        input_ids=torch.from_numpy(ids).to(device),
        mask=block_mask(torch.from_numpy(segment), dtype).to(device),
        position_ids=torch.from_numpy(positions).to(device),
        rows=torch.tensor(rows, device=device),
        positions=positions_t,
        adapters=[p.adapter for p in packs],
        answer_positions=positions_t + 1 if answered == {True} else None,
    )
