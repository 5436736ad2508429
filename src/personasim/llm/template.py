"""The ``template`` backend: no model, deterministic text rendered from the data.

It reads each request's `task` and `context` instead of its prompt. It is the fast
path for huge logs, the control in experiments, and the fallback when a model's
generation is unusable twice.
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
    from personasim.profiles.taste import render_rationale, render_taste

    if request.task == "profile":
        return render_taste(request.context["taste"])
    if request.task == "rationale":
        return render_rationale(request.context)
    if request.task == "persona":
        from personasim.personas.cards import render_persona

        return render_persona(request.context["card"])
    raise BackendError(f"the template backend has no template for task {request.task!r}")


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
