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

The rating loss is cross-entropy on the digit and/or the squared error of the expected
rating over the digits; with the logit prior, a Gaussian log-prior over the digits
whose expectation is the CF prediction is added to the digit logits, so the adapter
learns corrections to CF.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personasim.agents.modeling import (
    AgentLM,
    Pack,
    PackedBatch,
    answer_distribution,
    collate,
    with_prior,
    with_watch_prior,
)
from personasim.agents.prior import prior_logits
from personasim.config import AgentConfig
from personasim.workspace import atomic_path

__all__ = [
    "PackedExamples",
    "TrainResult",
    "TrainingProgress",
    "batch_loss",
    "linear_decay",
    "make_packs",
    "train_adapter",
]

logger = logging.getLogger(__name__)

PLAIN_BATCH = 8
"""Examples per step of the plain loop."""

SAVE_EVERY_S = 300.0
"""How often a training with a `state_path` saves its progress, in seconds."""


@dataclass
class PackedExamples:
    """A pack with the targets of its suffixes."""

    pack: Pack
    tasks: list[str]
    targets: list[int]
    """Per suffix: the rating's level number on the scale (0 = lowest), or 1/0 for
    watch yes/no."""
    priors: list[float]


def make_packs(
    examples: pd.DataFrame,
    profiles: dict[str, str],
    lm: AgentLM,
    *,
    items_per_pack: int,
    adapter: str,
    answered: bool = False,
) -> list[PackedExamples]:
    """Group one adapter's examples into packs: one user's profile, then its items.

    With `answered`, each item's suffix ends with its answer token, so the loss can also
    teach what follows the answer (the end of the turn).
    """
    packs = []
    for user, frame in examples.groupby("user_id", sort=True):
        prefix = lm.encode_prefix(profiles[str(user)])
        rows = list(frame.itertuples(index=False))
        for start in range(0, len(rows), items_per_pack):
            chunk = rows[start : start + items_per_pack]
            suffixes = tuple(
                lm.encode_suffix(r.question) + ((_answer_token(lm, r),) if answered else ())
                for r in chunk
            )
            packs.append(
                PackedExamples(
                    pack=Pack(prefix, suffixes, adapter, answered=answered),
                    tasks=[r.task for r in chunk],
                    targets=[_target(lm, r) for r in chunk],
                    priors=[float(r.prior) for r in chunk],
                )
            )
    return packs


def _target(lm: AgentLM, row: Any) -> int:
    """An example's answer: the level number of its rating, or 1/0 (watch yes/no)."""
    if row.task == "rate":
        return int(lm.scale.index([row.target])[0])
    return int(row.target)


def _answer_token(lm: AgentLM, row: Any) -> int:
    """The token of an example's answer: its rating's digit, or "yes" / "no"."""
    if row.task == "rate":
        return lm.digit_ids[_target(lm, row)]
    return lm.yes_ids[0] if int(row.target) == 1 else lm.no_ids[0]


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


def batch_loss(
    lm: AgentLM,
    batch: PackedBatch,
    hidden: Any,
    items: Sequence[PackedExamples],
    config: AgentConfig,
) -> Any:
    """Mean loss over the answers of a batch (rating and watch)."""
    import torch

    log_probs = lm.answer_log_probs(batch, hidden)
    tasks = [t for p in items for t in p.tasks]
    targets = torch.tensor([t for p in items for t in p.targets], device=log_probs.device)
    priors = torch.tensor(
        [v for p in items for v in p.priors], device=log_probs.device, dtype=torch.float32
    )
    rate = torch.tensor([t == "rate" for t in tasks], device=log_probs.device)
    losses = []
    if rate.any():
        offsets = (
            prior_logits(priors[rate], config.prior_sigma, config.prior_centre, lm.scale)
            if "logit" in config.prior
            else None
        )
        # The answer is a token like any other: the cross-entropy is over the whole
        # vocabulary (so the agent learns to answer with a rating at all), after the
        # CF log-prior is added to the digits' logits.
        adjusted = with_prior(log_probs[rate], lm.digit_ids, offsets)
        target = targets[rate]
        digit_tokens = torch.tensor(lm.digit_ids, device=log_probs.device)[target]
        per = torch.zeros(int(rate.sum()), device=log_probs.device)
        if config.loss in ("ce", "ce+mse"):
            per = per - adjusted[torch.arange(len(target)), digit_tokens]
        if config.loss in ("mse", "ce+mse"):
            probs, _ = answer_distribution(adjusted, [[i] for i in lm.digit_ids])
            levels = torch.tensor(lm.scale.levels, dtype=probs.dtype, device=probs.device)
            # in stars of a 1-5 scale, so that mse_weight means the same on every scale
            error = (probs @ levels - levels[target]) / lm.scale.span
            per = per + config.mse_weight * error**2
        losses.append(per)
    watch = ~rate
    if watch.any():
        # the watch prior's log-odds (NaN: none) moves logit(yes) - logit(no)
        odds = torch.nan_to_num(priors[watch], nan=0.0) if config.watch_prior != "none" else None
        adjusted = with_watch_prior(log_probs[watch], lm.yes_ids, lm.no_ids, odds)
        yes = torch.logsumexp(adjusted[:, lm.yes_ids], dim=-1)
        no = torch.logsumexp(adjusted[:, lm.no_ids], dim=-1)
        losses.append(-torch.where(targets[watch] == 1, yes, no))
    per = torch.cat(losses)
    if batch.answer_positions is not None and config.end_of_turn_weight > 0:
        # after the answer, the turn ends: free-text answers stop at the digit
        after = lm.head_log_probs(hidden[batch.rows, batch.answer_positions])
        order = torch.cat([torch.nonzero(rate).flatten(), torch.nonzero(~rate).flatten()])
        per = per - config.end_of_turn_weight * after[order, lm.end_of_turn_id]
    return per.mean()


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
