"""The ``openai`` backend: any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp).

Requests run concurrently up to `llm.concurrency`; the OpenAI SDK retries timeouts,
rate limits (429) and server errors (5xx) with exponential backoff, up to
`llm.max_retries` times. Any other 4xx answer stops the stage with the server's message.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from personasim.config import LLMConfig
from personasim.errors import BackendError
from personasim.llm.base import GenerationRequest
from personasim.llm.registry import register_generator

__all__ = ["OpenAIGenerator"]


@register_generator("openai")
class OpenAIGenerator:
    """Chat completions over HTTP.

    Args:
        config: The `[llm]` section: `base_url`, `model`, `api_key_env`,
            `concurrency`, `timeout_s`, `max_retries`.
        http_client: An ``httpx.AsyncClient`` to use (tests pass one with a mock
            transport).
    """

    def __init__(self, config: LLMConfig, http_client: Any | None = None) -> None:
        try:
            import openai
        except ImportError:
            raise BackendError("llm.backend 'openai' needs the openai package") from None
        self.config = config
        self._openai = openai
        self._http_client = http_client
        self._api_key = os.environ.get(config.api_key_env) or "none"

    def identity(self) -> dict[str, Any]:
        """Backend, server and model name."""
        return {"backend": "openai", "base_url": self.config.base_url, "model": self.config.model}

    def _client(self) -> Any:
        return self._openai.AsyncOpenAI(
            base_url=self.config.base_url,
            api_key=self._api_key,
            timeout=self.config.timeout_s,
            max_retries=self.config.max_retries,
            http_client=self._http_client,
        )

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Complete the requests concurrently; returns texts in request order."""
        return asyncio.run(self._generate_all(requests))

    async def _generate_all(self, requests: Sequence[GenerationRequest]) -> list[str]:
        client = self._client()
        limit = asyncio.Semaphore(self.config.concurrency)

        async def one(r: GenerationRequest) -> str:
            async with limit:
                response = await client.chat.completions.create(
                    model=self.config.model,
                    messages=[dict(m) for m in r.messages],
                    max_tokens=r.max_new_tokens,
                    temperature=r.temperature,
                    seed=r.seed,
                )
            return (response.choices[0].message.content or "").strip()

        try:
            return list(await asyncio.gather(*(one(r) for r in requests)))
        except self._openai.APIStatusError as e:
            hint = ""
            if e.status_code in (401, 403):
                hint = f"; check the API key in ${self.config.api_key_env}"
            elif e.status_code == 404:
                hint = "; check llm.base_url and llm.model"
            raise BackendError(
                f"{self.config.base_url} answered {e.status_code}: {_message(e)}{hint}"
            ) from None
        except self._openai.APITimeoutError:
            raise BackendError(
                f"{self.config.base_url} did not answer within {self.config.timeout_s:g} s "
                f"(after {self.config.max_retries} retries); raise llm.timeout_s"
            ) from None
        except self._openai.APIConnectionError as e:
            raise BackendError(
                f"cannot reach {self.config.base_url} ({e.__cause__ or e}) after "
                f"{self.config.max_retries} retries; is the server running?"
            ) from None
        finally:
            await client.close()

    def close(self) -> None:
        """Nothing to release: each call opens and closes its own client."""


def _message(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(getattr(error, "message", error))
