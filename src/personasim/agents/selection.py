"""Choosing an adapter's training examples by their gradients (the "gradient" selection).

TracIn scores an example by the gradient steps it takes over the checkpoints of a run.
Per-example gradients of the LoRA parameters are one backward pass each, too many on a
CPU, so this uses the cheap surrogate of Paul et al. (2021, "Deep Learning on a Data
Diet"): the error L2 norm (EL2N), ``|| softmax(logits) - onehot(answer) ||^2`` over the
digits, which is the squared norm of the loss gradient at the logits and bounds the
gradient norm of every parameter below them up to the size of the activations. It is
averaged over the checkpoints of a short warm-up run (an adapter trained on a random
part of the budget, one epoch per checkpoint): examples the warmed-up agent still gets
wrong, with the CF prior added, are the ones that would move it most.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from personasim.agents.adapters import lora_config
from personasim.agents.calibration import digit_log_probs, weighted_digit_probs
from personasim.agents.lm import AgentLM
from personasim.agents.objective import make_packs
from personasim.agents.training import train_adapter
from personasim.config import AgentConfig

__all__ = ["WARMUP_CHECKPOINTS", "el2n_scores", "gradient_scores"]

WARMUP_CHECKPOINTS = 2
"""Checkpoints of the warm-up run (one epoch each) the scores are averaged over."""


def el2n_scores(
    lm: AgentLM, rate: pd.DataFrame, texts: dict[str, str], config: AgentConfig, adapter: str
) -> np.ndarray:
    """EL2N of each rating example under `adapter`, the CF prior added as in training.

    Args:
        lm: The model holding `adapter`.
        rate: Rating examples (``user_id, question, target, prior``).
        texts: Profile text per user.
        config: The `[agents]` section (prior, sigma, batch size).
        adapter: The adapter to score with.
    """
    lm_digits, offsets = digit_log_probs(lm, rate, texts, config, adapter)
    probs = weighted_digit_probs(lm_digits, offsets, 1.0)
    target = np.eye(lm.scale.size)[lm.scale.index(rate["target"].to_numpy("float64"))]
    return ((probs - target) ** 2).sum(axis=1)


def gradient_scores(
    lm: AgentLM,
    examples: pd.DataFrame,
    texts: dict[str, str],
    config: AgentConfig,
    *,
    seed: int,
    on_step: Callable[[int], None] | None = None,
) -> pd.Series:
    """EL2N of one adapter's candidate rating examples, averaged over the checkpoints of
    a warm-up run on ``selection_warmup`` x the budget of random rating examples.

    The candidates are every rating example, or a seeded random pool of
    ``selection_pool`` x the budget of them when there are more. The warm-up adapter is
    discarded; `lm.model` is left as it was.

    Returns:
        One score per candidate, indexed like `examples`.
    """
    import torch
    from peft import get_peft_model

    torch.manual_seed(seed)  # the warm-up adapter's initial weights
    rate = examples[examples["task"] == "rate"]
    rng = np.random.default_rng(seed)
    budget = config.max_examples_per_adapter or len(rate)
    size = max(8, int(round(config.selection_warmup * budget)))
    warm = rate.iloc[np.sort(rng.choice(len(rate), size=min(size, len(rate)), replace=False))]
    pool = config.selection_pool * budget
    if 0 < pool < len(rate):
        rate = rate.iloc[np.sort(rng.choice(len(rate), size=pool, replace=False))]
    base: Any = lm.model
    lm.model = get_peft_model(base, lora_config(config, lm.n_layers))
    lm.prefix_states_cache.clear()
    total = np.zeros(len(rate))
    try:
        packs = make_packs(
            warm,
            texts,
            lm,
            items_per_pack=config.items_per_pack,
            adapter="default",
            answered=config.end_of_turn_weight > 0,
        )
        one_epoch = config.model_copy(update={"epochs": 1})
        for checkpoint in range(WARMUP_CHECKPOINTS):
            train_adapter(lm, packs, one_epoch, seed=seed + checkpoint, on_step=on_step)
            lm.prefix_states_cache.clear()  # the adapter's prefix states changed
            total += el2n_scores(lm, rate, texts, config, "default")
    finally:
        lm.model = lm.model.unload()
        lm.prefix_states_cache.clear()
    return pd.Series(total / WARMUP_CHECKPOINTS, index=rate.index)
