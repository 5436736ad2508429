"""Training one LoRA adapter on packed RAFT examples.

Three paths, selected by the configuration, measured against each other by
``benchmarks/train_throughput.py``:

- plain: one example per sequence, the full prompt through every layer;
- packed: up to `items_per_pack` examples of one user after one shared profile prefix
  (block attention mask), so the profile is encoded once per pack;
- packed + cached lower layers (`top_layers` > 0): LoRA sits in the top layers only, so
  the frozen lower layers' outputs for every pack are computed once, before the first
  epoch, and each epoch runs the top layers only (with more than one epoch; a single
  epoch runs every layer once, as the cache would, without holding it).

In bfloat16 (`agents.dtype`), the base runs in bf16 under autocast while the LoRA
weights and the optimiser state stay float32.

Given a `state_path`, the training saves its progress there every `save_every_s`
seconds (LoRA weights, optimiser, schedule, random state, loss curve) and resumes from
it when it exists: a killed hour-long training loses at most those seconds, and the
resumed run ends with the weights the uninterrupted one would have.

The examples, their packs and the loss live in :mod:`personasim.agents.objective`; the
saved progress in :mod:`personasim.agents.training_progress`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from personasim.agents.lm import AgentLM
from personasim.agents.objective import PackedExamples, batch_loss
from personasim.agents.packing import Pack, PackedBatch, collate
from personasim.agents.training_progress import TrainingProgress
from personasim.config import AgentConfig

__all__ = [
    "TrainResult",
    "linear_decay",
    "train_adapter",
]

PLAIN_BATCH = 8
"""Examples per step of the plain loop."""

SAVE_EVERY_S = 300.0
"""How often a training with a `state_path` saves its progress, in seconds."""


@dataclass
class TrainResult:
    """What training an adapter took and how the loss went."""

    examples: int
    steps: int
    epochs: int
    seconds: float
    precompute_seconds: float
    curve: list[tuple[int, float]] = field(default_factory=list)

    @property
    def examples_per_s(self) -> float:
        """Examples per second over the epochs (precomputation included)."""
        return self.examples * self.epochs / self.seconds if self.seconds else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "examples": self.examples,
            "steps": self.steps,
            "epochs": self.epochs,
            "seconds": round(self.seconds, 2),
            "precompute_seconds": round(self.precompute_seconds, 2),
            "examples_per_s": round(self.examples_per_s, 3),
            "curve": [(s, round(v, 4)) for s, v in self.curve],
        }


def linear_decay(optimizer: Any, total_steps: int) -> Any:
    """The learning-rate schedule: from the optimiser's rate down to zero over
    `total_steps`, no warm-up (transformers' linear schedule)."""
    from transformers import get_linear_schedule_with_warmup

    return get_linear_schedule_with_warmup(
        optimizer, num_warmup_steps=0, num_training_steps=max(total_steps, 1)
    )


def train_adapter(
    lm: AgentLM,
    packs: list[PackedExamples],
    config: AgentConfig,
    *,
    seed: int,
    on_step: Callable[[int], None] | None = None,
    state_path: Path | None = None,
    save_every_s: float | None = None,
) -> TrainResult:
    """Train the active LoRA adapter of `lm.model` on packed examples.

    Args:
        lm: The model, already wrapped with the (trainable) adapter to train.
        packs: From :func:`make_packs`.
        config: The `[agents]` section.
        seed: Order of batches and any dropout.
        on_step: Called with the number of examples after each optimiser step (once,
            with all of them, for the steps a resumed training restored).
        state_path: Where the progress is saved while training and resumed from; the
            caller removes it once the adapter is saved.
        save_every_s: Seconds between two saves of the progress (0: every step;
            None: :data:`SAVE_EVERY_S`).
    """
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if not config.fast_path:  # the reference: one example per sequence
        packs = [
            PackedExamples(
                Pack(p.pack.prefix, (s,), p.pack.adapter, p.pack.answered), [t], [y], [v]
            )
            for p in packs
            for s, t, y, v in zip(p.pack.suffixes, p.tasks, p.targets, p.priors, strict=True)
        ]
    # The plain loop takes batches of 8 examples (as the loop this replaces did); the
    # fast path `users_per_step` packs of up to `items_per_pack` examples.
    per_step = config.users_per_step if config.fast_path else PLAIN_BATCH
    # Similar lengths in one batch pad less; the batches are fixed, their order shuffled.
    order = sorted(
        range(len(packs)),
        key=lambda i: len(packs[i].pack.prefix) + sum(len(s) for s in packs[i].pack.suffixes),
    )
    groups = [[packs[i] for i in order[k : k + per_step]] for k in range(0, len(order), per_step)]

    def batch_of(i: int) -> PackedBatch:
        # collated when used: a batch's block mask is [packs, length, length], too much to
        # hold for every batch of a large training set at once
        return collate([g.pack for g in groups[i]], lm.pad_id, lm.dtype, lm.device)

    n_examples = sum(len(p.tasks) for p in packs)

    split = lm.n_layers - config.top_layers if (config.top_layers and config.fast_path) else 0
    started = time.perf_counter()
    cached: list[Any] = [None] * len(groups)
    # The cache pays only when a later epoch reads it again; for one epoch it would cost
    # the same forward passes and hold every batch's hidden states at once.
    if split and config.epochs > 1:
        with torch.no_grad():
            for i in range(len(groups)):
                cached[i] = lm.hidden(batch_of(i), 0, split)
    precompute = time.perf_counter() - started

    params = [p for p in lm.model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    total_steps = len(groups) * config.epochs
    scheduler = linear_decay(optimizer, total_steps)
    # In bf16 the frozen base runs in bf16 and the LoRA weights, their gradients and the
    # optimiser state stay float32 (autocast casts them for the matmuls).
    autocast = torch.autocast(
        device_type=lm.device, dtype=torch.bfloat16, enabled=lm.dtype == torch.bfloat16
    )
    lm.model.train()
    progress = TrainingProgress(total_steps=total_steps, examples=n_examples, seed=seed)
    if state_path is not None and state_path.exists():
        progress = progress.resume(state_path, lm.model, optimizer, scheduler)
        if on_step is not None and progress.examples_done:
            on_step(progress.examples_done)
    curve = progress.curve
    resumed_seconds = progress.seconds_before
    save_every = SAVE_EVERY_S if save_every_s is None else save_every_s
    every = max(1, total_steps // 100)
    step = 0
    last_save = time.perf_counter()
    for _ in range(config.epochs):
        for i in rng.permutation(len(groups)):  # drawn again on resuming: the same order
            if step < progress.step:
                step += 1
                continue
            batch = batch_of(i)
            with autocast:
                hidden = (
                    lm.hidden(batch, split, None, hidden=cached[i])
                    if cached[i] is not None
                    else lm.hidden(batch)
                )
                loss = batch_loss(lm, batch, hidden, groups[i], config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            value = float(loss.detach())
            if not math.isfinite(value):
                raise FloatingPointError(f"training loss became {value} at step {step}")
            before = progress.running
            smoothed = value if before is None else 0.9 * before + 0.1 * value
            progress.running = smoothed
            if step % every == 0 or step == total_steps:
                curve.append((step, smoothed))
            done = sum(len(g.tasks) for g in groups[i])
            progress.step, progress.examples_done = step, progress.examples_done + done
            now = time.perf_counter()
            if state_path is not None and now - last_save >= save_every and step < total_steps:
                progress.seconds_before = resumed_seconds + now - started
                progress.save(state_path, lm.model, optimizer, scheduler)
                last_save = time.perf_counter()
            if on_step is not None:
                on_step(done)
    lm.model.eval()
    return TrainResult(
        examples=n_examples,
        steps=step,
        epochs=config.epochs,
        seconds=resumed_seconds + time.perf_counter() - started,
        precompute_seconds=precompute,
        curve=curve,
    )
