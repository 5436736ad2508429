"""Checkpointing a training: its progress, trainable weights, optimiser and schedule
saved atomically, and resumed from after a kill."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personasim.workspace import atomic_path

__all__ = ["TrainingProgress"]

logger = logging.getLogger(__name__)


@dataclass
class TrainingProgress:
    """How far a training got: saved with the weights and the optimiser's state so a
    killed training resumes at the step after the last save."""

    total_steps: int
    examples: int
    seed: int
    step: int = 0
    examples_done: int = 0
    running: float | None = None
    seconds_before: float = 0.0
    """Training seconds of the runs before this one."""
    curve: list[tuple[int, float]] = field(default_factory=list)

    def _identity(self) -> tuple[int, int, int]:
        return (self.total_steps, self.examples, self.seed)

    def save(self, path: Path, model: Any, optimizer: Any, scheduler: Any) -> None:
        """Write the progress, the trainable weights, the optimiser and the schedule
        atomically (a kill while saving leaves the previous save)."""
        import torch

        state = {
            "identity": self._identity(),
            "step": self.step,
            "examples_done": self.examples_done,
            "running": self.running,
            "seconds_before": self.seconds_before,
            "curve": list(self.curve),
            "weights": {
                n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
            },
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
        logger.debug("training progress saved at step %d of %d", self.step, self.total_steps)

    def resume(self, path: Path, model: Any, optimizer: Any, scheduler: Any) -> TrainingProgress:
        """The progress saved at `path`, its weights and optimiser state loaded into
        `model`, `optimizer` and `scheduler`; this (unchanged, nothing loaded) when the
        save belongs to another training (other examples, steps or seed)."""
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        if tuple(state["identity"]) != self._identity():
            logger.warning("%s is the progress of another training: starting over", path)
            return self
        weights = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in state["weights"].items():
                weights[name].copy_(value)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        logger.info("training resumed at step %d of %d", state["step"], self.total_steps)
        return TrainingProgress(
            total_steps=self.total_steps,
            examples=self.examples,
            seed=self.seed,
            step=state["step"],
            examples_done=state["examples_done"],
            running=state["running"],
            seconds_before=state["seconds_before"],
            curve=[(int(a), float(b)) for a, b in state["curve"]],
        )
