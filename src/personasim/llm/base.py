"""The text-generator protocol every backend implements."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["GenerationRequest", "Message", "TextGenerator"]

Message = Mapping[str, str]
"""A chat message: ``{"role": "system" | "user" | "assistant", "content": "..."}``."""


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete.

    Attributes:
        messages: The chat to complete.
        max_new_tokens: Most tokens to generate.
        task: What the text is for ("profile", "rationale", ...); backends that do not
            read prompts (``template``) render from `task` and `context` instead.
        context: The structured data the prompt was written from.
        temperature: 0 decodes greedily; above 0 samples.
        seed: Seed of sampling (ignored when greedy).
        template: How the ``template`` backend renders this request from its `context`
            (a module-level function, so that requests travel to Ray workers); None:
            the request has no template.
    """

    messages: tuple[Message, ...]
    max_new_tokens: int
    task: str = "text"
    context: Mapping[str, Any] = field(default_factory=dict)
    temperature: float = 0.0
    seed: int = 0
    template: Callable[[Mapping[str, Any]], str] | None = None

    def prompt_text(self) -> str:
        """The prompt's text, for checks such as prompt echo."""
        return "\n".join(m["content"] for m in self.messages)


@runtime_checkable
class TextGenerator(Protocol):
    """A backend that completes chat prompts.

    Implementations are registered by name with
    :func:`personasim.llm.register_generator` and built from the `[llm]` section.
    """

    def identity(self) -> dict[str, Any]:
        """What determines the generated text (backend, model and its version): part
        of every cache key and recorded in manifests."""
        ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Complete every request, in order; batching and concurrency are the
        backend's business.

        Raises:
            BackendError: The backend failed; the message says why and what to do.
        """
        ...

    def close(self) -> None:
        """Release models, connections and threads."""
        ...
