"""How the service runs: its settings and the API keys it accepts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ServeSettings", "parse_api_keys"]


class ServeSettings(BaseModel):
    """How the service runs."""

    model_config = ConfigDict(extra="forbid")

    api_keys: list[str] = []
    """Accepted keys; empty accepts every request (only sensible on loopback)."""
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    """Larger request bodies are refused with 413."""
    batch_window_ms: float = Field(10.0, ge=0.0)
    """How long a request waits for others to share its model call."""
    max_described_items: int = Field(10_000, ge=1)
    """Items the catalogue lacks that one API key may have described and kept (least
    recently used forgotten first; the agents forget an item no key keeps)."""
    max_batch: int | None = Field(None, ge=1)
    """Most requests per model call; None: 64 on a GPU, 1 (no batching) on a CPU, where
    gathering requests measured slower (docs/serving.md)."""

    def batch_limit(self) -> int:
        """`max_batch`, or its default for the device the agents run on."""
        if self.max_batch is not None:
            return self.max_batch
        from personasim.llm.device import pick_device

        return 64 if pick_device("auto") == "cuda" else 1


def parse_api_keys(value: str | None) -> list[str]:
    """Keys from a comma-separated string (``PERSONASIM_API_KEYS``), blanks dropped."""
    return [k.strip() for k in (value or "").split(",") if k.strip()]
