"""The decoder's layer loop: a Llama-style model run layer by layer, each batch row
through its own LoRA adapter.

The decoder layers are called directly so that a range of layers can be run: the
frozen lower layers once, the LoRA-carrying top layers every epoch. Only the hidden
states at the answer positions go through the final norm and the LM head. Every pass
(training, packed scoring, scoring after a cached prefix) goes through one layer loop
(:meth:`Decoder.layers`) with masks from one builder (:func:`block_mask`).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from personasim.agents.packing import BASE_ADAPTER, Pack, PackedBatch, collate
from personasim.errors import BackendError

__all__ = ["Decoder", "DecoderParts", "decoder_parts"]


@dataclass
class DecoderParts:
    """The modules of a Llama-style decoder that the layer loop calls."""

    embed: Any
    layers: Any
    norm: Any
    rotary: Any
    head: Any


def decoder_parts(model: Any) -> DecoderParts:
    """The embeddings, decoder layers, final norm, rotary embeddings and LM head of
    `model` (possibly wrapped by PEFT); a :class:`BackendError` when it has none."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", None)
    names = ("embed_tokens", "layers", "norm", "rotary_emb")
    if inner is None or not all(hasattr(inner, n) for n in names) or not hasattr(base, "lm_head"):
        raise BackendError(
            f"the agent model ({type(base).__name__}) is not a Llama-style decoder "
            "(embed_tokens, layers, norm, rotary_emb, lm_head); use a Llama, Mistral, "
            "Qwen or SmolLM model"
        )
    return DecoderParts(
        inner.embed_tokens, inner.layers, inner.norm, inner.rotary_emb, base.lm_head
    )


class Decoder:
    """A causal LM (possibly wrapped by PEFT) run layer by layer on packed batches.

    Args:
        model: A transformers causal LM, Llama-style (:func:`decoder_parts`).
        device: "cpu" or "cuda".
        pad_id: The token padding a batch.
    """

    def __init__(self, model: Any, device: str, pad_id: int) -> None:
        self.model = model
        self.device = device
        self.pad_id = pad_id
        self.parts = decoder_parts(model)
        self.dtype = self.parts.embed.weight.dtype
        self._cache_keyword = _cache_keyword(self.parts.layers[0])

    @property
    def dtype_name(self) -> str:
        """The compute dtype, e.g. "bfloat16"."""
        return str(self.dtype).removeprefix("torch.")

    @property
    def n_layers(self) -> int:
        """Number of transformer layers."""
        return len(self.parts.layers)

    @contextlib.contextmanager
    def adapters(self, names: Sequence[str]) -> Iterator[None]:
        """Route each batch row through its adapter.

        One adapter for the whole batch makes it the active one; several go through
        PEFT's mixed-adapter batch (``adapter_names``, "__base__" meaning none).
        """
        unique = set(names)
        if not hasattr(self.model, "peft_config"):
            yield
        elif unique == {BASE_ADAPTER}:
            with self.model.disable_adapter():
                yield
        elif len(unique) == 1:
            name = unique.pop()
            if self.model.active_adapter != name:
                self.model.set_adapter(name)
            yield
        else:
            # Private on purpose: PEFT 0.21's public `adapter_names=` exists only on the
            # whole model's forward/generate (embeddings to LM head on every position; over
            # all layers it is bitwise this loop's result, float32 and bfloat16). A layer
            # range from given hidden states (cached lower layers, prefix states split at
            # lora_start) has no public route: a decoder layer silently drops
            # `adapter_names` (its **kwargs), only these hooks route the rows.
            with self.model._enable_peft_forward_hooks(adapter_names=list(names)):
                yield

    def layers(
        self,
        hidden: Any,
        mask: Any,
        positions: Any,
        adapters: Sequence[str],
        *,
        start: int = 0,
        stop: int | None = None,
        cache: Any = None,
    ) -> Any:
        """Run layers ``[start, stop)`` on `hidden`: the one layer loop of every pass.

        Args:
            hidden: ``[batch, length, hidden]`` input of layer `start`.
            mask: From :func:`block_mask`.
            positions: ``[batch, length]`` positions (rotary embeddings).
            adapters: The adapter of each batch row.
            cache: A transformers cache holding a prefix's keys/values, extended in place
                by this pass (None: no cache).
        """
        parts = self.parts
        position_embeddings = parts.rotary(hidden, positions)
        extra = {} if cache is None else {self._cache_keyword: cache, "use_cache": True}
        with self.adapters(adapters):
            for layer in parts.layers[start:stop]:
                out = layer(
                    hidden,
                    attention_mask=mask,
                    position_ids=positions,
                    position_embeddings=position_embeddings,
                    **extra,
                )
                hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def hidden(
        self, batch: PackedBatch, start: int = 0, stop: int | None = None, hidden: Any = None
    ) -> Any:
        """Hidden states of a packed batch after layers ``[start, stop)`` (from the
        embeddings if `hidden` is None)."""
        if hidden is None:
            hidden = self.parts.embed(batch.input_ids)
        return self.layers(
            hidden, batch.mask, batch.position_ids, batch.adapters, start=start, stop=stop
        )

    def head_log_probs(self, hidden: Any) -> Any:
        """Full-vocabulary log-probabilities ``[n, vocab]`` (float32) of final hidden
        states ``[n, hidden]``."""
        import torch

        logits = self.parts.head(self.parts.norm(hidden)).float()
        return torch.log_softmax(logits, dim=-1)

    def answer_log_probs(self, batch: PackedBatch, hidden: Any) -> Any:
        """Full-vocabulary log-probabilities at the answer positions only ``[n, vocab]``."""
        return self.head_log_probs(hidden[batch.rows, batch.positions])

    def score(self, packs: Sequence[Pack]) -> Any:
        """Log-probabilities of every answer of the packs (no gradients)."""
        import torch

        batch = collate(packs, self.pad_id, self.dtype, self.device)
        with torch.inference_mode():
            return self.answer_log_probs(batch, self.hidden(batch))

    def lora_start(self) -> int:
        """The first layer any loaded adapter changes: below it every adapter runs the
        base model's layers, so prompts asked of several adapters share that work."""
        configs = getattr(self.model, "peft_config", None) or {}
        starts = []
        for config in configs.values():
            layers = getattr(config, "layers_to_transform", None)
            if layers is None:
                return 0
            starts.append(min(layers) if isinstance(layers, list | tuple) else int(layers))
        return min(starts, default=self.n_layers)


def _cache_keyword(layer: Any) -> str:
    """How a decoder layer takes its cache: ``cache`` (transformers 5.x) or
    ``past_key_values`` (before; deprecated from 5.x, removed in 5.40)."""
    parameters = inspect.signature(layer.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"
