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
import inspect
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from personasim.config import AgentConfig, LLMConfig
from personasim.errors import BackendError
from personasim.llm.device import pick_device, pick_dtype
from personasim.llm.models import hf_model_path, model_identity, portable_name
from personasim.rating_scale import RatingScale
from personasim.scale.threads import configure_threads

__all__ = [
    "AgentLM",
    "AnswerScores",
    "Pack",
    "PackedBatch",
    "PrefixState",
    "answer_distribution",
    "block_mask",
    "collate",
    "keep_answers",
    "with_prior",
    "with_watch_prior",
]

logger = logging.getLogger(__name__)

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


def with_prior(log_probs: Any, token_ids: Sequence[int], offsets: Any | None) -> Any:
    """Full-vocabulary log-probabilities after adding `offsets` ``[n, len(token_ids)]``
    to the logits of `token_ids` (the CF log-prior on the digits), renormalised."""
    import torch

    if offsets is None:
        return log_probs
    adjusted = log_probs.clone()
    adjusted[:, list(token_ids)] = adjusted[:, list(token_ids)] + offsets
    return adjusted - torch.logsumexp(adjusted, dim=-1, keepdim=True)


def with_watch_prior(
    log_probs: Any, yes_ids: Sequence[int], no_ids: Sequence[int], log_odds: Any | None
) -> Any:
    """Full-vocabulary log-probabilities after the watch prior's `log_odds` ``[n]`` is
    split over the answers (half added to the "yes" logits, half taken from the "no"
    ones), renormalised: logit(yes) - logit(no) moves by exactly `log_odds`."""
    if log_odds is None:
        return log_probs
    import torch

    half = log_odds.to(log_probs.dtype)[:, None] / 2
    offsets = torch.cat([half.expand(-1, len(yes_ids)), -half.expand(-1, len(no_ids))], dim=-1)
    return with_prior(log_probs, [*yes_ids, *no_ids], offsets)


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


@dataclass(frozen=True)
class AnswerScores:
    """What is kept of the next-token distribution at answer positions: the
    log-probabilities of the answer tokens and, in a last column, of every other token
    together (so each row still sums to 1 and priors renormalise exactly as over the
    whole vocabulary), plus the largest other token's log-probability (for what greedy
    decoding would say). A few numbers per answer instead of the vocabulary."""

    log_probs: Any
    """``[n, answer tokens + 1]``."""
    rest_max: Any
    """``[n]``."""

    def __len__(self) -> int:
        return int(self.log_probs.shape[0])

    def __getitem__(self, rows: Any) -> AnswerScores:
        return AnswerScores(self.log_probs[rows], self.rest_max[rows])


def keep_answers(log_probs: Any, keep: Sequence[int]) -> AnswerScores:
    """Full-vocabulary log-probabilities ``[n, vocab]`` reduced to the `keep` tokens,
    the rest's total and the rest's largest (:class:`AnswerScores`)."""
    import torch

    rest = log_probs.clone()
    rest[:, list(keep)] = float("-inf")
    total = torch.logsumexp(rest, dim=-1, keepdim=True)
    return AnswerScores(torch.cat([log_probs[:, list(keep)], total], dim=-1), rest.amax(dim=-1))


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


class AgentLM:
    """A causal LM prepared for scoring answers of packed prompts.

    Every pass (training, packed scoring, scoring after a cached prefix) goes through
    one layer loop (:meth:`layers`) with masks from one builder (:func:`block_mask`);
    tests hold each path to the model's own forward pass on the full prompt.

    Args:
        model: A transformers causal LM (possibly wrapped by PEFT).
        tokenizer: Its tokenizer (with a chat template).
        device: "cpu" or "cuda".
        prefix_cache_bytes: Bound of the cache of prefix keys/values (LRU by bytes).
        token_cache_bytes: Bound of the cache of encoded profiles and questions (LRU,
            by the bytes of their text and token ids).
        scale: The rating scale the answers are on (``data.scale``): `digit_ids` are
            the tokens of its answer digits, lowest rating first.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        device: str,
        prefix_cache_bytes: int = 2 << 30,
        scale: RatingScale | None = None,
        token_cache_bytes: int = 64 << 20,
    ) -> None:
        from cachetools import LRUCache

        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = tokenizer.eos_token_id
        self.scale = scale or RatingScale()
        self.digit_ids = [self._single_token(label) for label in self.scale.labels]
        self.yes_ids = self._spellings(("yes", "Yes"))
        self.no_ids = self._spellings(("no", "No"))
        self._parts = self._find_parts()
        self.dtype = self._parts.embed.weight.dtype
        self._cache_keyword = _cache_keyword(self._parts.layers[0])
        self.prefix_states_cache: LRUCache = LRUCache(
            maxsize=max(1, prefix_cache_bytes), getsizeof=lambda state: state.nbytes
        )
        self.token_cache: LRUCache = LRUCache(
            maxsize=max(1, token_cache_bytes), getsizeof=_token_entry_bytes
        )

    # --- loading -------------------------------------------------------------------------

    @classmethod
    def load(cls, config: AgentConfig, scale: RatingScale | None = None) -> AgentLM:
        """Load the base model of `config` (offline) on its device, in its dtype
        (`agents.dtype`: bf16 on CUDA and on CPUs with bf16 matrix units by default),
        answering ratings on `scale` (1-5 when None)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = pick_device(config.device)
        dtype = pick_dtype(config.dtype, device)
        if device == "cpu":
            # Every core unless OMP_NUM_THREADS says otherwise (set it to 1 when another
            # job shares the cores), also after LensKit set torch to one thread.
            configure_threads()
        path = hf_model_path(LLMConfig(model=config.base_model))
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
        return cls(
            model,
            tokenizer,
            device,
            prefix_cache_bytes=config.prefix_cache_mib << 20,
            scale=scale,
            token_cache_bytes=config.token_cache_mib << 20,
        )

    @staticmethod
    def identity(config: AgentConfig) -> dict[str, Any]:
        """What identifies the base weights."""
        return model_identity(LLMConfig(model=config.base_model))

    @staticmethod
    def portable_base(config: AgentConfig) -> str:
        """The base weights' name that means the same on every machine (what adapters
        record as their base)."""
        return portable_name(LLMConfig(model=config.base_model))

    @property
    def dtype_name(self) -> str:
        """The compute dtype, e.g. "bfloat16"."""
        return str(self.dtype).removeprefix("torch.")

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
    def end_of_turn_id(self) -> int:
        """The token the chat template puts right after an assistant's answer."""
        probe = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "7"}]
        text = self.tokenizer.apply_chat_template(probe, tokenize=False)
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        seven = self._single_token("7")
        where = len(ids) - 1 - ids[::-1].index(seven)
        if where + 1 >= len(ids):
            raise BackendError("the chat template ends an assistant turn with no token")
        return int(ids[where + 1])

    @property
    def n_layers(self) -> int:
        """Number of transformer layers."""
        return len(self._parts.layers)

    # --- prompts --------------------------------------------------------------------------

    def _cached_tokens(self, kind: str, text: str, encode: Any) -> tuple[int, ...]:
        """`encode(text)`, kept in the bounded token cache (profiles and questions repeat)."""
        hit = self.token_cache.get((kind, text))
        if hit is not None:
            return hit[0]
        ids = encode(text)
        self.token_cache[(kind, text)] = (ids, len(text))
        return ids

    def encode_prefix(self, profile_text: str) -> tuple[int, ...]:
        """Token ids of the system turn holding a profile."""
        return self._cached_tokens("prefix", profile_text, self._encode_prefix)

    def forget_prefix(self, profile_text: str) -> None:
        """Drop a profile's tokens and its cached prefix states (a user who is gone: the
        caches are bounded, but a service that forgets users should not keep their
        states until the bound pushes them out)."""
        cached = self.token_cache.pop(("prefix", profile_text), None)
        tokens = cached[0] if cached is not None else self._encode_prefix(profile_text)
        for key in [k for k in self.prefix_states_cache if k[2] == tokens]:
            self.prefix_states_cache.pop(key, None)

    def _encode_prefix(self, profile_text: str) -> tuple[int, ...]:
        text = self.tokenizer.apply_chat_template(
            [{"role": "system", "content": profile_text}], tokenize=False
        )
        return tuple(self.tokenizer.encode(text, add_special_tokens=False))

    def encode_suffix(self, question: str) -> tuple[int, ...]:
        """Token ids of the user turn with `question` and the assistant's opening."""
        return self._cached_tokens("suffix", question, self._encode_suffix)

    def _encode_suffix(self, question: str) -> tuple[int, ...]:
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
        parts = self._parts
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
            hidden = self._parts.embed(batch.input_ids)
        return self.layers(
            hidden, batch.mask, batch.position_ids, batch.adapters, start=start, stop=stop
        )

    def head_log_probs(self, hidden: Any) -> Any:
        """Full-vocabulary log-probabilities ``[n, vocab]`` (float32) of final hidden
        states ``[n, hidden]``."""
        import torch

        logits = self._parts.head(self._parts.norm(hidden)).float()
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

    def prefix_states(
        self, prefixes: Sequence[tuple[int, ...]], adapters: Sequence[str]
    ) -> list[tuple[PrefixState, PrefixState]]:
        """Each prefix's keys/values under its adapter: the layers below
        :meth:`lora_start` (shared by every adapter) and those from it, from the bounded
        cache or computed (the missing ones in one batch) and kept there."""
        split = self.lora_start()
        lower = self._states(
            [("__lower__", split, p) for p in prefixes], 0, split, [None] * len(prefixes)
        )
        if split == self.n_layers:  # no adapter: the lower part is the whole model
            return [(low, PrefixState(low.length, (), ())) for low in lower]
        top = self._states(
            [(a, split, p) for p, a in zip(prefixes, adapters, strict=True)],
            split,
            self.n_layers,
            lower,
        )
        return list(zip(lower, top, strict=True))

    def _states(
        self,
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
            state = self.prefix_states_cache.get(key)
            if state is None:
                missing.append(k)
            else:
                found[key] = state
        if missing:
            lengths = [len(keys[k][2]) for k in missing]
            width = max(lengths)
            segments = torch.full((len(missing), width), -1, dtype=torch.long)
            ids = torch.full((len(missing), width), self.pad_id, dtype=torch.long)
            for row, (k, n) in enumerate(zip(missing, lengths, strict=True)):
                ids[row, :n] = torch.tensor(keys[k][2])
                segments[row, :n] = 0
            positions = torch.arange(width)[None].expand(len(missing), -1).to(self.device)
            with torch.inference_mode():
                if start == 0:
                    hidden = self._parts.embed(ids.to(self.device))
                else:
                    hidden = torch.stack(
                        [
                            torch.nn.functional.pad(inputs[k].hidden, (0, 0, 0, width - n))
                            for k, n in zip(missing, lengths, strict=True)
                        ]
                    )
                cache = DynamicCache()
                hidden = self.layers(
                    hidden,
                    block_mask(segments, self.dtype).to(self.device),
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
                    if state.nbytes <= self.prefix_states_cache.maxsize:
                        self.prefix_states_cache[keys[k]] = state
        return [found[key] for key in keys]

    def score_cached(
        self,
        prefixes: Sequence[tuple[int, ...]],
        adapters: Sequence[str],
        items: Sequence[tuple[int, tuple[int, ...]]],
        chunk: int = 64,
        keep: Sequence[int] | None = None,
    ) -> Any:
        """Log-probabilities of answers whose prompts share prefixes.

        Each prefix (one per user and adapter) is encoded once, or taken from the prefix
        cache (:meth:`prefix_states`); the item suffixes run in batches of `chunk`
        prompts, grouped by length (little padding), each attending to its own prefix's
        keys and values and to itself. A prompt asked of several adapters (the same
        user and item for the zero-shot, global and persona agents) runs the layers
        below :meth:`lora_start` once; rows of different adapters mix in one pass
        (PEFT's mixed-adapter batch).

        Args:
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

        split = self.lora_start()
        states = self.prefix_states(prefixes, adapters)
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
                ids = torch.full((len(part), width), self.pad_id, dtype=torch.long)
                segments = torch.full((len(part), width), -1, dtype=torch.long)
                for row, u in enumerate(part):
                    ids[row, : lengths[row]] = torch.tensor(prompts[u][1])
                    segments[row, : lengths[row]] = 1
                owners = [prompts[u][0] for u in part]
                hidden = self._parts.embed(ids.to(self.device))
                if split:
                    hidden = self._items_pass(
                        hidden,
                        segments,
                        [states[p][0] for p in owners],
                        [BASE_ADAPTER] * len(part),
                        0,
                        split,
                    )
                rows = [(row, k) for row, u in enumerate(part) for k in askers[u]]
                pick = torch.tensor([row for row, _ in rows])
                if split < self.n_layers:
                    hidden = self._items_pass(
                        hidden[pick.to(self.device)],
                        segments[pick],
                        [states[items[k][0]][1] for _, k in rows],
                        [adapters[items[k][0]] for _, k in rows],
                        split,
                        self.n_layers,
                    )
                else:
                    hidden = hidden[pick.to(self.device)]
                last = hidden[torch.arange(len(rows)), (lengths[pick] - 1).to(self.device)]
                scored = self.head_log_probs(last)
                if keep is not None:
                    reduced = keep_answers(scored, keep)
                    scored = torch.cat([reduced.log_probs, reduced.rest_max[:, None]], dim=-1)
                for (_, k), row in zip(rows, scored, strict=True):
                    out[k] = row
        width = len(keep) + 2 if keep is not None else self._parts.head.out_features
        stacked = torch.stack(out) if out else torch.empty(0, width)
        if keep is None:
            return stacked
        return AnswerScores(stacked[:, :-1], stacked[:, -1])

    def _items_pass(
        self,
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
        return self.layers(
            hidden,
            block_mask(segments, self.dtype, valid[where]).to(self.device),
            positions.to(self.device),
            adapters,
            start=start,
            stop=stop,
            cache=cache,
        )

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


def _token_entry_bytes(entry: tuple[tuple[int, ...], int]) -> int:
    """About what a token-cache entry holds: its text (the key) and its token ids."""
    ids, text_length = entry
    return 120 + text_length + 36 * len(ids)


def _padded(tensors: Sequence[Any], length: int) -> Any:
    """``[kv_heads, n, head_dim]`` tensors stacked, each zero-padded to `length`."""
    import torch

    return torch.stack(
        [torch.nn.functional.pad(t, (0, 0, 0, length - t.shape[1])) for t in tensors]
    )


def _cache_keyword(layer: Any) -> str:
    """How a decoder layer takes its cache: ``cache`` (transformers 5.x) or
    ``past_key_values`` (before; deprecated from 5.x, removed in 5.40)."""
    parameters = inspect.signature(layer.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"
