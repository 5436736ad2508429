"""The agents' language model: loading it with its tokenizer, encoding the prompts, and
the scoring entry points (:class:`AgentLM`).

The layer loop lives in :mod:`personasim.agents.decoder`, the packed prompts in
:mod:`personasim.agents.packing`, the prefix cache in
:mod:`personasim.agents.prefix_cache` and free-text answers in
:mod:`personasim.agents.generation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from personasim.agents.decoder import Decoder
from personasim.agents.generation import generate
from personasim.agents.prefix_cache import PrefixState, prefix_states, score_cached
from personasim.config import AgentConfig, LLMConfig
from personasim.errors import BackendError
from personasim.llm.device import pick_device, pick_dtype
from personasim.llm.models import hf_model_path, model_identity, portable_name
from personasim.rating_scale import RatingScale
from personasim.scale.threads import configure_threads

__all__ = ["AgentLM"]


class AgentLM(Decoder):
    """A causal LM prepared for scoring answers of packed prompts.

    Every pass (training, packed scoring, scoring after a cached prefix) goes through
    one layer loop (:meth:`Decoder.layers`) with masks from one builder
    (:func:`~personasim.agents.packing.block_mask`); tests hold each path to the
    model's own forward pass on the full prompt.

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

        self.tokenizer = tokenizer
        pad_id = tokenizer.pad_token_id
        if pad_id is None:
            pad_id = tokenizer.eos_token_id
        self.scale = scale or RatingScale()
        self.digit_ids = [self._single_token(label) for label in self.scale.labels]
        self.yes_ids = self._spellings(("yes", "Yes"))
        self.no_ids = self._spellings(("no", "No"))
        super().__init__(model, device, pad_id)
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

    # --- scoring after cached prefixes, free text ------------------------------------------

    def prefix_states(
        self, prefixes: Sequence[tuple[int, ...]], adapters: Sequence[str]
    ) -> list[tuple[PrefixState, PrefixState]]:
        """Each prefix's keys/values under its adapter, from :attr:`prefix_states_cache`
        or computed and kept there (:func:`~personasim.agents.prefix_cache.prefix_states`)."""
        return prefix_states(self, self.prefix_states_cache, prefixes, adapters)

    def score_cached(
        self,
        prefixes: Sequence[tuple[int, ...]],
        adapters: Sequence[str],
        items: Sequence[tuple[int, tuple[int, ...]]],
        chunk: int = 64,
        keep: Sequence[int] | None = None,
    ) -> Any:
        """Log-probabilities of answers whose prompts share prefixes, each prefix encoded
        once or taken from :attr:`prefix_states_cache`
        (:func:`~personasim.agents.prefix_cache.score_cached`: the arguments and what
        it returns)."""
        return score_cached(self, self.prefix_states_cache, prefixes, adapters, items, chunk, keep)

    def generate(
        self,
        prompts: Sequence[tuple[tuple[int, ...], str]],
        max_new_tokens: int = 12,
        batch_size: int = 8,
    ) -> list[str]:
        """Greedy free-text answers to ``(prompt token ids, adapter name)``, in order
        (:func:`~personasim.agents.generation.generate`)."""
        return generate(self, self.tokenizer, prompts, max_new_tokens, batch_size)


def _token_entry_bytes(entry: tuple[tuple[int, ...], int]) -> int:
    """About what a token-cache entry holds: its text (the key) and its token ids."""
    ids, text_length = entry
    return 120 + text_length + 36 * len(ids)
