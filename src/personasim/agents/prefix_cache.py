"""The prefix cache: each prefix's keys and values kept (bounded), so that its items are
scored after it without encoding it again.

Each prefix (one per user and adapter) is encoded once; the layers below the adapters
(:meth:`Decoder.lora_start`) are shared by every adapter, so their states are kept once
per prefix, those from it once per prefix and adapter. The cache is an LRU bounded by
bytes, keyed by ``(adapter, split, prefix tokens)`` ("__lower__" for the shared part).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from personasim.agents.answers import AnswerScores, keep_answers
from personasim.agents.decoder import Decoder
from personasim.agents.packing import BASE_ADAPTER, block_mask

if TYPE_CHECKING:
    from cachetools import LRUCache

__all__ = ["PrefixState", "prefix_states", "score_cached"]


@dataclass(frozen=True)
class PrefixState:
    """The keys and values of one prefix in a range of layers, per layer ``[kv_heads,
    length, head_dim]`` (what its items attend to); for the layers below the adapters,
    also the prefix's hidden state where they end ``[length, hidden]``."""

    length: int
    keys: tuple[Any, ...]
    values: tuple[Any, ...]
    hidden: Any = None

    @property
    def nbytes(self) -> int:
        """Memory held."""
        tensors = (*self.keys, *self.values) + (() if self.hidden is None else (self.hidden,))
        return sum(t.element_size() * t.nelement() for t in tensors)


def prefix_states(
    decoder: Decoder,
    prefix_cache: LRUCache,
    prefixes: Sequence[tuple[int, ...]],
    adapters: Sequence[str],
) -> list[tuple[PrefixState, PrefixState]]:
    """Each prefix's keys/values under its adapter: the layers below
    :meth:`Decoder.lora_start` (shared by every adapter) and those from it, from
    `prefix_cache` (an LRU by bytes) or computed (the missing ones in one batch) and
    kept there."""
    split = decoder.lora_start()
    lower = _states(
        decoder,
        prefix_cache,
        [("__lower__", split, p) for p in prefixes],
        0,
        split,
        [None] * len(prefixes),
    )
    if split == decoder.n_layers:  # no adapter: the lower part is the whole model
        return [(low, PrefixState(low.length, (), ())) for low in lower]
    top = _states(
        decoder,
        prefix_cache,
        [(a, split, p) for p, a in zip(prefixes, adapters, strict=True)],
        split,
        decoder.n_layers,
        lower,
    )
    return list(zip(lower, top, strict=True))


def _states(
    decoder: Decoder,
    prefix_cache: LRUCache,
    keys: Sequence[tuple[str, int, tuple[int, ...]]],
    start: int,
    stop: int,
    inputs: Sequence[PrefixState | None],
) -> list[PrefixState]:
    """Prefix states of layers ``[start, stop)`` by cache key ``(adapter, split,
    prefix)``; `inputs` holds each prefix's hidden state at `start` (None: from the
    embeddings)."""
    import torch
    from transformers import DynamicCache

    found: dict[tuple[str, int, tuple[int, ...]], PrefixState] = {}
    missing: list[int] = []
    for k, key in enumerate(keys):
        if key in found or any(keys[m] == key for m in missing):
            continue
        state = prefix_cache.get(key)
        if state is None:
            missing.append(k)
        else:
            found[key] = state
    if missing:
        lengths = [len(keys[k][2]) for k in missing]
        width = max(lengths)
        segments = torch.full((len(missing), width), -1, dtype=torch.long)
        ids = torch.full((len(missing), width), decoder.pad_id, dtype=torch.long)
        for row, (k, n) in enumerate(zip(missing, lengths, strict=True)):
            ids[row, :n] = torch.tensor(keys[k][2])
            segments[row, :n] = 0
        positions = torch.arange(width)[None].expand(len(missing), -1).to(decoder.device)
        with torch.inference_mode():
            if start == 0:
                hidden = decoder.parts.embed(ids.to(decoder.device))
            else:
                hidden = torch.stack(
                    [
                        torch.nn.functional.pad(inputs[k].hidden, (0, 0, 0, width - n))
                        for k, n in zip(missing, lengths, strict=True)
                    ]
                )
            cache = DynamicCache()
            hidden = decoder.layers(
                hidden,
                block_mask(segments, decoder.dtype).to(decoder.device),
                positions,
                [keys[k][0] if keys[k][0] != "__lower__" else BASE_ADAPTER for k in missing],
                start=start,
                stop=stop,
                cache=cache,
            )
            for row, (k, n) in enumerate(zip(missing, lengths, strict=True)):
                layers = cache.layers[start:stop]
                state = PrefixState(
                    length=n,
                    keys=tuple(layer.keys[row, :, :n].clone() for layer in layers),
                    values=tuple(layer.values[row, :, :n].clone() for layer in layers),
                    hidden=hidden[row, :n].clone() if start == 0 else None,
                )
                found[keys[k]] = state
                if state.nbytes <= prefix_cache.maxsize:
                    prefix_cache[keys[k]] = state
    return [found[key] for key in keys]


def score_cached(
    decoder: Decoder,
    prefix_cache: LRUCache,
    prefixes: Sequence[tuple[int, ...]],
    adapters: Sequence[str],
    items: Sequence[tuple[int, tuple[int, ...]]],
    chunk: int = 64,
    keep: Sequence[int] | None = None,
) -> Any:
    """Log-probabilities of answers whose prompts share prefixes.

    Each prefix (one per user and adapter) is encoded once, or taken from the prefix
    cache (:func:`prefix_states`); the item suffixes run in batches of `chunk`
    prompts, grouped by length (little padding), each attending to its own prefix's
    keys and values and to itself. A prompt asked of several adapters (the same
    user and item for the zero-shot, global and persona agents) runs the layers
    below :meth:`Decoder.lora_start` once; rows of different adapters mix in one pass
    (PEFT's mixed-adapter batch).

    Args:
        decoder: The model.
        prefix_cache: The prefix cache (an LRU by bytes).
        prefixes: Token ids of each prefix.
        adapters: The adapter of each prefix.
        items: ``(prefix index, suffix token ids)`` per answer.
        chunk: Distinct prompts per forward pass.
        keep: Keep only these tokens' log-probabilities (:class:`AnswerScores`).

    Returns:
        ``[len(items), vocab]`` log-probabilities at each answer position, or with
        `keep` an :class:`AnswerScores` of them.
    """
    import torch

    split = decoder.lora_start()
    states = prefix_states(decoder, prefix_cache, prefixes, adapters)
    # Distinct prompts (prefix tokens, suffix) and the answers asking each.
    prompt_index: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}
    prompts: list[tuple[int, tuple[int, ...]]] = []
    askers: list[list[int]] = []
    for k, (p, suffix) in enumerate(items):
        key = (prefixes[p], suffix)
        if key not in prompt_index:
            prompt_index[key] = len(prompts)
            prompts.append((p, suffix))
            askers.append([])
        askers[prompt_index[key]].append(k)
    order = sorted(range(len(prompts)), key=lambda u: (len(prompts[u][1]), prompts[u][0]))
    out: list[Any] = [None] * len(items)
    with torch.inference_mode():
        for begin in range(0, len(order), chunk):
            part = order[begin : begin + chunk]
            lengths = torch.tensor([len(prompts[u][1]) for u in part])
            width = int(lengths.max())
            ids = torch.full((len(part), width), decoder.pad_id, dtype=torch.long)
            segments = torch.full((len(part), width), -1, dtype=torch.long)
            for row, u in enumerate(part):
                ids[row, : lengths[row]] = torch.tensor(prompts[u][1])
                segments[row, : lengths[row]] = 1
            owners = [prompts[u][0] for u in part]
            hidden = decoder.parts.embed(ids.to(decoder.device))
            if split:
                hidden = _items_pass(
                    decoder,
                    hidden,
                    segments,
                    [states[p][0] for p in owners],
                    [BASE_ADAPTER] * len(part),
                    0,
                    split,
                )
            rows = [(row, k) for row, u in enumerate(part) for k in askers[u]]
            pick = torch.tensor([row for row, _ in rows])
            if split < decoder.n_layers:
                hidden = _items_pass(
                    decoder,
                    hidden[pick.to(decoder.device)],
                    segments[pick],
                    [states[items[k][0]][1] for _, k in rows],
                    [adapters[items[k][0]] for _, k in rows],
                    split,
                    decoder.n_layers,
                )
            else:
                hidden = hidden[pick.to(decoder.device)]
            last = hidden[torch.arange(len(rows)), (lengths[pick] - 1).to(decoder.device)]
            scored = decoder.head_log_probs(last)
            if keep is not None:
                reduced = keep_answers(scored, keep)
                scored = torch.cat([reduced.log_probs, reduced.rest_max[:, None]], dim=-1)
            for (_, k), row in zip(rows, scored, strict=True):
                out[k] = row
    width = len(keep) + 2 if keep is not None else decoder.parts.head.out_features
    stacked = torch.stack(out) if out else torch.empty(0, width)
    if keep is None:
        return stacked
    return AnswerScores(stacked[:, :-1], stacked[:, -1])


def _items_pass(
    decoder: Decoder,
    hidden: Any,
    segments: Any,
    past: Sequence[PrefixState],
    adapters: Sequence[str],
    start: int,
    stop: int,
) -> Any:
    """Item suffixes through layers ``[start, stop)``, each row after its prefix's
    keys and values in those layers."""
    import torch
    from transformers import DynamicCache

    distinct = list(dict.fromkeys(id(s) for s in past))
    by_id = {id(s): s for s in past}
    where = torch.tensor([distinct.index(id(s)) for s in past])
    width = max(s.length for s in past)
    valid = torch.zeros(len(distinct), width, dtype=torch.bool)
    for row, sid in enumerate(distinct):
        valid[row, : by_id[sid].length] = True
    cache = DynamicCache()
    for layer in range(start, stop):
        keys = _padded([by_id[sid].keys[layer - start] for sid in distinct], width)
        values = _padded([by_id[sid].values[layer - start] for sid in distinct], width)
        cache.update(keys[where.to(keys.device)], values[where.to(keys.device)], layer)
    lengths = torch.tensor([s.length for s in past])
    positions = lengths[:, None] + torch.arange(segments.shape[1])[None]
    return decoder.layers(
        hidden,
        block_mask(segments, decoder.dtype, valid[where]).to(decoder.device),
        positions.to(decoder.device),
        adapters,
        start=start,
        stop=stop,
        cache=cache,
    )


def _padded(tensors: Sequence[Any], length: int) -> Any:
    """``[kv_heads, n, head_dim]`` tensors stacked, each zero-padded to `length`."""
    import torch

    return torch.stack(
        [torch.nn.functional.pad(t, (0, 0, 0, length - t.shape[1])) for t in tensors]
    )
