"""The ``llamacpp`` backend: a GGUF model in-process through llama-cpp-python."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from personasim.config import LLMConfig
from personasim.errors import BackendError
from personasim.llm.base import GenerationRequest
from personasim.llm.models import gguf_path, model_identity
from personasim.llm.registry import register_generator

__all__ = ["LlamaCppGenerator"]

logger = logging.getLogger(__name__)

_AMX_WARNING = (
    "this llama-cpp-python was compiled with llama.cpp's AMX kernels (a -march=native build "
    "on a CPU with AMX); they crashed in decode on the packaged Q4_1 model (segmentation "
    "fault; llama.cpp issues #16315, #20824). If it crashes, reinstall it built for a fixed "
    "instruction set: CMAKE_ARGS='-DGGML_NATIVE=OFF' pip install --no-cache-dir "
    "--force-reinstall --no-deps llama-cpp-python (what `make setup` does)"
)


def build_features(llama_cpp: Any) -> dict[str, bool]:
    """The instruction sets llama.cpp was compiled with, from its system info line
    (e.g. ``{"AVX2": True, "AVX512": False}``)."""
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    features = {}
    for part in info.replace("|", "\n").splitlines():
        name, sep, value = part.partition("=")
        if sep and value.strip() in ("0", "1"):
            features[name.strip().split(":")[-1].strip()] = value.strip() == "1"
    return features


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
        import llama_cpp

        if build_features(llama_cpp).get("AMX_INT8"):
            logger.warning(_AMX_WARNING)
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
