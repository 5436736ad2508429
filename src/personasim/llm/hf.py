"""The ``hf`` backend: transformers on CPU or GPU, batched, greedy by default."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from personasim.config import LLMConfig
from personasim.errors import BackendError
from personasim.llm.base import GenerationRequest
from personasim.llm.device import fitting_batch, pick_device, pick_dtype
from personasim.llm.models import hf_model_path, model_identity
from personasim.llm.registry import register_generator
from personasim.scale.threads import configure_threads

__all__ = ["HFGenerator"]

logger = logging.getLogger(__name__)


@register_generator("hf")
class HFGenerator:
    """Generation with transformers.

    Prompts are rendered with the model's chat template, sorted by length (less
    padding) and generated `llm.batch_size` at a time with left padding. Greedy unless
    a request asks for a temperature, in `llm.dtype` (bf16 on CUDA and on CPUs with bf16
    matrix units by default).
    """

    def __init__(self, config: LLMConfig) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.device = pick_device(config.device)
        if self.device == "cpu":
            # llm.threads, else OMP_NUM_THREADS (a Ray worker's share), else every core
            configure_threads(config.threads)
        path = hf_model_path(config)
        dtype = pick_dtype(config.dtype, self.device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(
                path, dtype=dtype, local_files_only=True, trust_remote_code=False
            ).to(self.device)
        except OSError as e:
            raise BackendError(
                f"cannot load model {config.model!r} offline ({e}); use a local folder, a "
                "GGUF file or 'smollm2'"
            ) from None
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._identity = {"backend": "hf", **model_identity(config), "dtype": str(dtype)[6:]}

    def identity(self) -> dict[str, Any]:
        """Backend and weights."""
        return dict(self._identity)

    def _encode(self, messages: list[tuple[Any, ...]]) -> dict[str, Any]:
        prompts = [
            self.tokenizer.apply_chat_template(list(m), tokenize=False, add_generation_prompt=True)
            for m in messages
        ]
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        return {k: v.to(self.device) for k, v in enc.items()}

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Complete the requests in padded batches; returns texts in request order."""
        import torch

        out: list[str] = [""] * len(requests)
        lengths = [len(r.prompt_text()) for r in requests]
        # Same decoding settings share a batch; within them, similar lengths pad less.
        order = sorted(
            range(len(requests)),
            key=lambda i: (requests[i].temperature, requests[i].max_new_tokens, lengths[i]),
        )
        size = fitting_batch(
            self.config.batch_size,
            device=self.device,
            model_config=self.model.config,
            tokens=max(lengths, default=0) // 3
            + max((r.max_new_tokens for r in requests), default=0),
            fraction=self.config.gpu_memory_fraction,
        )
        groups: list[list[int]] = []
        for i in order:
            r = requests[i]
            if groups:
                head = requests[groups[-1][0]]
                same = (head.temperature, head.max_new_tokens) == (r.temperature, r.max_new_tokens)
                if same and len(groups[-1]) < size:
                    groups[-1].append(i)
                    continue
            groups.append([i])
        for group in groups:
            first = requests[group[0]]
            enc = self._encode([requests[i].messages for i in group])
            kwargs: dict[str, Any] = {
                "max_new_tokens": first.max_new_tokens,
                "pad_token_id": self.tokenizer.pad_token_id,
            }
            if first.temperature > 0:
                torch.manual_seed(first.seed)
                kwargs.update(do_sample=True, temperature=first.temperature, top_p=0.95)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with torch.inference_mode():
                generated = self.model.generate(**enc, **kwargs)
            new_tokens = generated[:, enc["input_ids"].shape[1] :]
            texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for i, text in zip(group, texts, strict=True):
                out[i] = text.strip()
        return out

    def close(self) -> None:
        """Free the model."""
        self.model = None  # type: ignore[assignment]
