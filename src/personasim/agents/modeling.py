"""The agents' language model: loading, packed prompts, and answer scoring.

One forward pass scores many answers. A *pack* is one user's profile prefix followed by
several item suffixes; an attention mask lets every suffix see the prefix and itself but
not the other suffixes, and each suffix's positions continue from the prefix's end, so
each answer is scored exactly as if its prompt had been run alone (a test checks it).
Only the hidden states at the answer positions go through the final norm and the LM
head. The decoder layers are called directly so that a range of layers can be run: the
frozen lower layers once, the LoRA-carrying top layers every epoch.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from personasim.config import AgentConfig, LLMConfig
from personasim.errors import BackendError
from personasim.llm.models import hf_model_path, model_identity, portable_name

__all__ = ["AgentLM", "Pack", "PackedBatch", "answer_distribution", "collate", "with_prior"]

logger = logging.getLogger(__name__)

BASE_ADAPTER = "__base__"
"""PEFT's name for "no adapter" in a mixed-adapter batch."""


@dataclass(frozen=True)
class Pack:
    """One user's prefix and the item suffixes scored after it."""

    prefix: tuple[int, ...]
    suffixes: tuple[tuple[int, ...], ...]
    adapter: str = BASE_ADAPTER


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
    """

    input_ids: Any
    mask: Any
    position_ids: Any
    rows: Any
    positions: Any
    adapters: list[str]


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
            answer_pos.append(end - 1)
            start = end
    seg = torch.from_numpy(segment)
    q, k = seg[:, :, None], seg[:, None, :]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    allowed = causal & (k >= 0) & (q >= 0) & ((k == 0) | (k == q))
    allowed |= torch.eye(width, dtype=torch.bool)  # pad rows attend to themselves: no NaN
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return PackedBatch(
        input_ids=torch.from_numpy(ids).to(device),
        mask=mask[:, None].to(device),
        position_ids=torch.from_numpy(positions).to(device),
        rows=torch.tensor(rows, device=device),
        positions=torch.tensor(answer_pos, device=device),
        adapters=[p.adapter for p in packs],
    )


def with_prior(log_probs: Any, token_ids: Sequence[int], offsets: Any | None) -> Any:
    """Full-vocabulary log-probabilities after adding `offsets` ``[n, len(token_ids)]``
    to the logits of `token_ids` (the CF log-prior on the digits), renormalised."""
    import torch

    if offsets is None:
        return log_probs
    adjusted = log_probs.clone()
    adjusted[:, list(token_ids)] = adjusted[:, list(token_ids)] + offsets
    return adjusted - torch.logsumexp(adjusted, dim=-1, keepdim=True)


def answer_distribution(log_probs: Any, token_groups: Sequence[Sequence[int]]) -> tuple[Any, Any]:
    """A distribution over answers from full-vocabulary log-probabilities.

    Args:
        log_probs: ``[n, vocab]`` log-softmax at the answer positions.
        token_groups: The tokens of each answer ("1".."5", or yes/no spellings); a
            group's mass is the sum over its tokens.

    Returns:
        The answer probabilities ``[n, answers]`` (renormalised over the answers) and
        the full-vocabulary mass the answers had before renormalising ``[n]``.
    """
    import torch

    grouped = torch.stack(
        [torch.logsumexp(log_probs[:, list(group)], dim=-1) for group in token_groups], dim=-1
    )
    return torch.softmax(grouped, dim=-1), grouped.exp().sum(dim=-1)


@dataclass
class _Parts:
    embed: Any
    layers: Any
    norm: Any
    rotary: Any
    head: Any


class AgentLM:
    """A causal LM prepared for scoring answers of packed prompts.

    Args:
        model: A transformers causal LM (possibly wrapped by PEFT).
        tokenizer: Its tokenizer (with a chat template).
        device: "cpu" or "cuda".
    """

    def __init__(self, model: Any, tokenizer: Any, device: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = next(model.parameters()).dtype
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = tokenizer.eos_token_id
        self.digit_ids = [self._single_token(str(d)) for d in range(1, 6)]
        self.yes_ids = self._spellings(("yes", "Yes"))
        self.no_ids = self._spellings(("no", "No"))
        self._parts = self._find_parts()
        self._prefix_cache: dict[str, tuple[int, ...]] = {}

    # --- loading -------------------------------------------------------------------------

    @classmethod
    def load(cls, config: AgentConfig) -> AgentLM:
        """Load the base model of `config` (offline), in bf16 on CUDA, float32 on CPU."""
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from personasim.llm.hf import pick_device

        device = pick_device(config.device)
        if device == "cpu" and not os.environ.get("OMP_NUM_THREADS"):
            # Every core unless the standard OMP_NUM_THREADS says otherwise (set it to 1
            # when another job shares the cores).
            torch.set_num_threads(os.cpu_count() or 1)
        path = hf_model_path(LLMConfig(model=config.base_model))
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                path, dtype=dtype, local_files_only=True, trust_remote_code=False
            ).to(device)
        except OSError as e:
            raise BackendError(f"cannot load the agent model {config.base_model!r}: {e}") from None
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return cls(model, tokenizer, device)

    @staticmethod
    def identity(config: AgentConfig) -> dict[str, Any]:
        """What identifies the base weights."""
        return model_identity(LLMConfig(model=config.base_model))

    @staticmethod
    def portable_base(config: AgentConfig) -> str:
        """The base weights' name that means the same on every machine (what adapters
        record as their base)."""
        return portable_name(LLMConfig(model=config.base_model))

    def _single_token(self, text: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise BackendError(
                f"the agent model's tokenizer splits {text!r} into {len(ids)} tokens; "
                "answers are scored as single tokens"
            )
        return int(ids[0])

    def _spellings(self, texts: Sequence[str]) -> list[int]:
        ids = [self.tokenizer.encode(t, add_special_tokens=False) for t in texts]
        single = [int(i[0]) for i in ids if len(i) == 1]
        if not single:
            raise BackendError(f"no single-token spelling of {texts} in the agent tokenizer")
        return single

    def _find_parts(self) -> _Parts:
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        inner = getattr(base, "model", None)
        names = ("embed_tokens", "layers", "norm", "rotary_emb")
        if (
            inner is None
            or not all(hasattr(inner, n) for n in names)
            or not hasattr(base, "lm_head")
        ):
            raise BackendError(
                f"the agent model ({type(base).__name__}) is not a Llama-style decoder "
                "(embed_tokens, layers, norm, rotary_emb, lm_head); use a Llama, Mistral, "
                "Qwen or SmolLM model"
            )
        return _Parts(inner.embed_tokens, inner.layers, inner.norm, inner.rotary_emb, base.lm_head)

    @property
    def n_layers(self) -> int:
        """Number of transformer layers."""
        return len(self._parts.layers)

    # --- prompts --------------------------------------------------------------------------

    def encode_prefix(self, profile_text: str) -> tuple[int, ...]:
        """Token ids of the system turn holding a profile (cached per text)."""
        cached = self._prefix_cache.get(profile_text)
        if cached is None:
            text = self.tokenizer.apply_chat_template(
                [{"role": "system", "content": profile_text}], tokenize=False
            )
            cached = tuple(self.tokenizer.encode(text, add_special_tokens=False))
            self._prefix_cache[profile_text] = cached
        return cached

    @lru_cache(maxsize=65536)  # noqa: B019 - one AgentLM per process; questions repeat
    def encode_suffix(self, question: str) -> tuple[int, ...]:
        """Token ids of the user turn with `question` and the assistant's opening."""
        probe = [{"role": "system", "content": "x"}]
        prefix = self.tokenizer.apply_chat_template(probe, tokenize=False)
        full = self.tokenizer.apply_chat_template(
            probe + [{"role": "user", "content": question}],
            tokenize=False,
            add_generation_prompt=True,
        )
        if not full.startswith(prefix):
            raise BackendError(
                "the agent model's chat template does not keep the system turn first"
            )
        return tuple(self.tokenizer.encode(full[len(prefix) :], add_special_tokens=False))

    # --- forward --------------------------------------------------------------------------

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
            with self.model._enable_peft_forward_hooks(adapter_names=list(names)):
                yield

    def hidden(
        self, batch: PackedBatch, start: int = 0, stop: int | None = None, hidden: Any = None
    ) -> Any:
        """Hidden states after layers ``[start, stop)`` (from the embeddings if start is 0)."""
        parts = self._parts
        if hidden is None:
            hidden = parts.embed(batch.input_ids)
        position_embeddings = parts.rotary(hidden, batch.position_ids)
        with self.adapters(batch.adapters):
            for layer in parts.layers[start:stop]:
                out = layer(
                    hidden,
                    attention_mask=batch.mask,
                    position_ids=batch.position_ids,
                    position_embeddings=position_embeddings,
                )
                hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def answer_log_probs(self, batch: PackedBatch, hidden: Any) -> Any:
        """Full-vocabulary log-probabilities at the answer positions only ``[n, vocab]``."""
        import torch

        picked = hidden[batch.rows, batch.positions]
        logits = self._parts.head(self._parts.norm(picked)).float()
        return torch.log_softmax(logits, dim=-1)

    def score(self, packs: Sequence[Pack]) -> Any:
        """Log-probabilities of every answer of the packs (no gradients)."""
        import torch

        batch = collate(packs, self.pad_id, self.dtype, self.device)
        with torch.inference_mode():
            return self.answer_log_probs(batch, self.hidden(batch))

    def _run_layers(
        self, hidden: Any, mask: Any, positions: Any, adapters: Sequence[str], cache: Any
    ) -> Any:
        parts = self._parts
        position_embeddings = parts.rotary(hidden, positions)
        with self.adapters(adapters):
            for layer in parts.layers:
                out = layer(
                    hidden,
                    attention_mask=mask,
                    position_ids=positions,
                    past_key_values=cache,
                    use_cache=True,
                    position_embeddings=position_embeddings,
                )
                hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def score_cached(
        self,
        prefixes: Sequence[tuple[int, ...]],
        adapters: Sequence[str],
        items: Sequence[tuple[int, tuple[int, ...]]],
        chunk: int = 64,
    ) -> Any:
        """Log-probabilities of answers whose prompts share prefixes, via a KV cache.

        Every prefix (one per user) runs once, all of them in one batch; its keys and
        values are then copied to each of its items, and the item suffixes run in
        batches of `chunk`, each attending to its own prefix's cache and to itself. Rows
        of different adapters mix in one pass (PEFT's mixed-adapter batch).

        Args:
            prefixes: Token ids of each prefix.
            adapters: The adapter of each prefix.
            items: ``(prefix index, suffix token ids)`` per answer.
            chunk: Suffixes per forward pass.

        Returns:
            ``[len(items), vocab]`` log-probabilities at each answer position.
        """
        import torch
        from transformers import DynamicCache

        minimum = torch.finfo(self.dtype).min
        lengths = torch.tensor([len(p) for p in prefixes], device=self.device)
        width = int(lengths.max())
        ids = torch.full((len(prefixes), width), self.pad_id, dtype=torch.long)
        for row, prefix in enumerate(prefixes):
            ids[row, : len(prefix)] = torch.tensor(prefix)
        ids = ids.to(self.device)
        key_ok = torch.arange(width, device=self.device)[None, :] < lengths[:, None]
        causal = torch.ones(width, width, dtype=torch.bool, device=self.device).tril()
        allowed = (causal[None] & key_ok[:, None, :]) | torch.eye(
            width, dtype=torch.bool, device=self.device
        )
        mask = torch.zeros(allowed.shape, dtype=self.dtype, device=self.device)
        mask.masked_fill_(~allowed, minimum)
        positions = torch.arange(width, device=self.device)[None].expand(len(prefixes), -1)
        out = []
        with torch.inference_mode():
            cache = DynamicCache()
            self._run_layers(self._parts.embed(ids), mask[:, None], positions, adapters, cache)
            prefix_kv = [(layer.keys, layer.values) for layer in cache.layers]
            for start in range(0, len(items), chunk):
                part = items[start : start + chunk]
                owner = torch.tensor([i for i, _ in part], device=self.device)
                s_len = torch.tensor([len(s) for _, s in part], device=self.device)
                s_width = int(s_len.max())
                s_ids = torch.full((len(part), s_width), self.pad_id, dtype=torch.long)
                for row, (_, suffix) in enumerate(part):
                    s_ids[row, : len(suffix)] = torch.tensor(suffix)
                s_ids = s_ids.to(self.device)
                s_pos = lengths[owner][:, None] + torch.arange(s_width, device=self.device)[None]
                to_prefix = key_ok[owner][:, None, :].expand(-1, s_width, -1)
                s_ok = torch.arange(s_width, device=self.device)[None, :] < s_len[:, None]
                to_self = (
                    torch.ones(s_width, s_width, dtype=torch.bool, device=self.device).tril()[None]
                    & s_ok[:, None, :]
                )
                to_self |= torch.eye(s_width, dtype=torch.bool, device=self.device)[None]
                allowed = torch.cat([to_prefix, to_self], dim=-1)
                s_mask = torch.zeros(allowed.shape, dtype=self.dtype, device=self.device)
                s_mask.masked_fill_(~allowed, minimum)
                expanded = DynamicCache()
                for layer_idx, (keys, values) in enumerate(prefix_kv):
                    expanded.update(keys[owner], values[owner], layer_idx)
                hidden = self._run_layers(
                    self._parts.embed(s_ids),
                    s_mask[:, None],
                    s_pos,
                    [adapters[i] for i, _ in part],
                    expanded,
                )
                last = hidden[torch.arange(len(part), device=self.device), s_len - 1]
                logits = self._parts.head(self._parts.norm(last)).float()
                out.append(torch.log_softmax(logits, dim=-1))
        return torch.cat(out)

    def generate(
        self,
        prompts: Sequence[tuple[tuple[int, ...], str]],
        max_new_tokens: int = 12,
        batch_size: int = 8,
    ) -> list[str]:
        """Greedy free-text answers, for measuring how often the model answers off-format.

        Args:
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
                ids = torch.full((len(part), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(part), width), dtype=torch.long)
                for row, k in enumerate(part):
                    tokens = prompts[k][0]
                    ids[row, width - len(tokens) :] = torch.tensor(tokens)
                    mask[row, width - len(tokens) :] = 1
                with torch.inference_mode(), self.adapters([adapter]):
                    generated = self.model.generate(
                        input_ids=ids.to(self.device),
                        attention_mask=mask.to(self.device),
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        pad_token_id=self.pad_id,
                    )
                for row, k in enumerate(part):
                    out[k] = self.tokenizer.decode(
                        generated[row, width:], skip_special_tokens=True
                    ).strip()
        return out
