"""The ``template`` backend: no model, deterministic text rendered from the data.

It renders each request with the request's own `template` from its `context` (the
profile and persona code that writes a request says how its text reads without a
model) instead of reading its prompt. It is the fast path for huge logs, the control in
experiments, and the fallback when a model's generation is unusable twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from personasim.config import LLMConfig
from personasim.errors import BackendError
from personasim.llm.base import GenerationRequest
from personasim.llm.registry import register_generator

__all__ = ["TemplateGenerator", "render"]


def render(request: GenerationRequest) -> str:
    """The template text of one request.

    Raises:
        BackendError: The task has no template.
    """
    if request.template is None:
        raise BackendError(f"the template backend has no template for task {request.task!r}")
    return request.template(request.context)


@register_generator("template")
class TemplateGenerator:
    """Renders profiles and rationales from statistics; never calls a model."""

    stateless = True
    """Its profile depends only on the statistics, not on the previous running profile,
    so the distiller skips the intermediate refinement rounds."""

    def __init__(self, config: LLMConfig | None = None) -> None:
        self.config = config

    def identity(self) -> dict[str, Any]:
        """Just the backend: templates are versioned with the prompts."""
        return {"backend": "template"}

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Render every request."""
        return [render(r) for r in requests]

    def close(self) -> None:
        """Nothing to release."""
