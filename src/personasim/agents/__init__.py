"""LoRA user agents: RAFT examples, adapter training and batched answer scoring."""

from __future__ import annotations

from personasim.agents.agent import AgentMode, UserAgent

__all__ = ["AgentMode", "UserAgent"]
