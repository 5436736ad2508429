"""A fake text generator for tests: scripted replies, every call recorded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from personasim.llm.base import GenerationRequest

__all__ = ["FakeGenerator"]


class FakeGenerator:
    """A :class:`~personasim.llm.TextGenerator` whose replies come from a function.

    Args:
        reply: Maps a request to its text; default echoes the task and a counter.
        fail_on_call: Raise ``KeyboardInterrupt`` on this call number (1-based), as if
            the process were killed there.
        name: The identity's model name (changes cache keys).
    """

    def __init__(
        self,
        reply: Callable[[GenerationRequest], str] | None = None,
        *,
        fail_on_call: int | None = None,
        name: str = "fake",
    ) -> None:
        self.reply = reply or self._default
        self.fail_on_call = fail_on_call
        self.name = name
        self.calls: list[list[GenerationRequest]] = []
        self._n = 0

    def _default(self, request: GenerationRequest) -> str:
        self._n += 1
        return f"A {request.task} written by the fake model, number {self._n}."

    def identity(self) -> dict[str, Any]:
        """A fixed identity."""
        return {"backend": "fake", "model": self.name}

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Record the call and reply to each request."""
        self.calls.append(list(requests))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise KeyboardInterrupt
        return [self.reply(r) for r in requests]

    @property
    def requests(self) -> list[GenerationRequest]:
        """Every request received, in order."""
        return [r for call in self.calls for r in call]

    def close(self) -> None:
        """Nothing to release."""
