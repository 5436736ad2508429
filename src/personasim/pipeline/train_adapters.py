"""One adapter of the train stage: its job, its training, and its fitted LM weights.

An :class:`AdapterJob` holds what one LoRA adapter is trained on; it is trained on the
driver's model (:func:`train_one_adapter`) or on a Ray worker that loads the base model
itself (:func:`train_on_worker`). :func:`adapter_lm_weights` then gives the adapter its
LM weights: the configured one, or fitted on its held-out examples.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from personasim.agents.adapters import lora_config, save_adapter
from personasim.agents.calibration import (
    digit_log_probs,
    fit_lm_weight,
    fit_watch_lm_weight,
    watch_margins,
)
from personasim.agents.lm import AgentLM
from personasim.agents.objective import make_packs
from personasim.agents.training import train_adapter
from personasim.config import AgentConfig
from personasim.progress import progress
from personasim.rating_scale import RatingScale
from personasim.workspace import atomic_write_text

__all__ = ["AdapterJob", "adapter_lm_weights", "train_on_worker", "train_one_adapter"]

logger = logging.getLogger(__name__)


@dataclass
class AdapterJob:
    """One adapter to train: its examples, its users' profiles and where it goes."""

    name: str
    examples: pd.DataFrame
    texts: dict[str, str]
    users: int
    folder: Path
    config: AgentConfig
    seed: int
    held_out: pd.DataFrame | None = None
    """Rating examples of its users it does not train on (the LM weight's fit)."""
    held_out_watch: pd.DataFrame | None = None
    """Watch examples of its users it does not train on (the watch LM weight's fit)."""
    scale: RatingScale = field(default_factory=RatingScale)
    """The rating scale the adapter answers on."""


def train_one_adapter(lm: Any, job: AdapterJob, on_step: Any = None) -> dict[str, Any]:
    """Train one LoRA adapter on `lm` and save it (PEFT format) into ``job.folder``.

    The adapter's initial weights and its training draw only from ``job.seed``, so an
    adapter is the same whichever adapters were trained before it, here or on a worker.
    """
    import torch
    from peft import get_peft_model

    cfg = job.config
    torch.manual_seed(job.seed)
    base = lm.model
    lm.model = get_peft_model(base, lora_config(cfg, lm.n_layers))
    try:
        packs = make_packs(
            job.examples,
            job.texts,
            lm,
            items_per_pack=cfg.items_per_pack,
            adapter="default",
            answered=cfg.end_of_turn_weight > 0,
        )
        # beside the adapter's folder: a killed training resumes at its last save
        state = job.folder.with_name(f"{job.folder.name}.progress.pt")
        result = train_adapter(lm, packs, cfg, seed=job.seed, on_step=on_step, state_path=state)
        meta = {"adapter": job.name, "users": job.users, "dtype": lm.dtype_name, **result.as_dict()}
        save_adapter(lm.model, job.folder, meta, base_name=AgentLM.portable_base(cfg))
        state.unlink(missing_ok=True)
        logger.info(
            "train: adapter %s, %d examples, %.1f examples/s",
            job.name,
            result.examples,
            result.examples_per_s,
        )
    finally:
        lm.model = lm.model.unload()
    return meta


def train_on_worker(job: AdapterJob) -> dict[str, Any]:
    """A Ray task: load the base model on the worker (its GPU if it was given one)
    and train one adapter."""
    return train_one_adapter(AgentLM.load(job.config, job.scale), job)


def adapter_lm_weights(
    job: AdapterJob, texts: dict[str, str], model: Callable[[], AgentLM], *, implicit: bool
) -> dict[str, Any]:
    """The adapter's LM weights: the configured one, or fitted on its held-out rating
    and watch examples (each fit kept beside its checkpoint, so a resumed run does
    not score them again) with the base model `model()`; `implicit`: the log has no
    ratings to fit the rating weight on."""
    cfg = job.config
    if cfg.lm_weight != "fit":
        return {"lm_weight": float(cfg.lm_weight)}
    out: dict[str, Any] = {}
    if implicit:
        out = {"lm_weight": 1.0, "lm_weight_fit": {"note": "no ratings to fit it on"}}
    else:
        assert job.held_out is not None
        path = job.folder.with_name(f"{job.folder.name}.lm-weight-{len(job.held_out)}.json")

        def rating_fit(lm: AgentLM) -> dict[str, Any]:
            assert job.held_out is not None
            lm_digits, offsets = digit_log_probs(lm, job.held_out, texts, cfg, "default")
            truth = job.held_out["target"].to_numpy()
            return fit_lm_weight(lm_digits, offsets, truth, lm.scale.levels)

        fit = _weight_fit(path, job, job.held_out, model, rating_fit, "lm_weight")
        logger.info("train: adapter %s, LM weight %.3f", job.name, fit["lm_weight"])
        out = {"lm_weight": fit["lm_weight"], "lm_weight_fit": fit}
    watch = job.held_out_watch
    if watch is not None:
        path = job.folder.with_name(f"{job.folder.name}.watch-weight-{len(watch)}.json")

        def watch_fit(lm: AgentLM) -> dict[str, Any]:
            margins = watch_margins(lm, watch, texts, cfg, "default")
            odds = watch["prior"].to_numpy("float64")
            return fit_watch_lm_weight(margins, odds, watch["target"].to_numpy())

        fit = _weight_fit(path, job, watch, model, watch_fit, "watch_lm_weight")
        logger.info("train: adapter %s, watch LM weight %.3f", job.name, fit["watch_lm_weight"])
        out.update({"watch_lm_weight": fit["watch_lm_weight"], "watch_lm_weight_fit": fit})
    return out


def _weight_fit(
    path: Path,
    job: AdapterJob,
    held_out: pd.DataFrame,
    model: Callable[[], AgentLM],
    fit: Callable[[AgentLM], dict[str, Any]],
    key: str,
) -> dict[str, Any]:
    """One LM weight of an adapter: read from `path`, 1 without held-out examples,
    else `fit` with the adapter loaded on `model()` (then written to `path`)."""
    if path.exists():
        return json.loads(path.read_text())
    if held_out.empty:
        return {key: 1.0, "examples": 0}  # nothing to fit on: as trained
    from peft import PeftModel

    lm = model()
    base = lm.model
    lm.model = PeftModel.from_pretrained(base, str(job.folder), is_trainable=False)
    lm.prefix_states_cache.clear()  # states of another adapter of the same name
    try:
        with progress(f"{key.replace('_', ' ')} of {job.name}", total=None):
            result = fit(lm)
    finally:
        lm.model = lm.model.unload()
        lm.prefix_states_cache.clear()
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
    return result
