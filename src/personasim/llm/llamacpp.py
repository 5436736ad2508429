"""The ``llamacpp`` backend: a GGUF model in-process through llama-cpp-python."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from personasim.config import LLMConfig
from personasim.errors import BackendError
from personasim.llm.base import GenerationRequest
from personasim.llm.models import gguf_path, model_identity
from personasim.llm.registry import register_generator

__all__ = ["LlamaCppGenerator"]


@register_generator("llamacpp")
class LlamaCppGenerator:
    """Generation with llama.cpp on the CPU: one request at a time, all cores each.

    On a small CPU this is several times faster than transformers for the same
    model, since it runs the quantised weights directly.
    """

    def __init__(self, config: LLMConfig) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise BackendError(
                "llm.backend 'llamacpp' needs llama-cpp-python: "
                "`pip install llama-cpp-python` (it builds from source in a few minutes)"
            ) from None
        path = gguf_path(config.model)
        self.config = config
        self.llm = Llama(
            model_path=str(path),
            n_ctx=config.context_size,
            n_threads=config.threads or os.cpu_count() or 1,
            verbose=False,
        )
        self._identity = {"backend": "llamacpp", **model_identity(config)}

    def identity(self) -> dict[str, Any]:
        """Backend and weights."""
        return dict(self._identity)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Complete the requests one by one (llama.cpp's Python API is not batched)."""
        out = []
        for r in requests:
            try:
                result = self.llm.create_chat_completion(
                    messages=[dict(m) for m in r.messages],
                    max_tokens=r.max_new_tokens,
                    temperature=r.temperature,
                    seed=r.seed,
                )
            except ValueError as e:  # e.g. the prompt exceeds the context window
                raise BackendError(f"llama.cpp refused a prompt: {e}") from None
            out.append((result["choices"][0]["message"].get("content") or "").strip())
        return out

    def close(self) -> None:
        """Free the model."""
        self.llm.close()
