"""Stage `train`: RAFT examples, the CF prior, and one LoRA adapter per persona (and a
global one), saved in PEFT's format under ``adapters/<name>/``.

Each finished adapter is kept in the stage's checkpoint folder at once, so a killed run
resumes at the next adapter; the adapter in training saves its progress there every few
minutes (``<adapter>.progress.pt``), so a killed training resumes at its last save.
One adapter's training and LM weights: :mod:`personasim.pipeline.train_adapters`.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from personasim.agents.adapters import GLOBAL_ADAPTER
from personasim.agents.calibration import held_out_ratings
from personasim.agents.choice_prior import fit_choice_prior
from personasim.agents.examples import build_examples, item_records, select_examples
from personasim.agents.lm import AgentLM
from personasim.agents.prior_fitting import fit_prior
from personasim.agents.prompts import AGENT_PROMPT_VERSION, agent_profiles, recent_items
from personasim.agents.retrieval import RationaleIndex
from personasim.agents.selection import gradient_scores
from personasim.config import NO_RATINGS, config_hash, part_settings, stage_settings
from personasim.data.tables import read_parquet, write_parquet
from personasim.evaluation.metrics import rmse
from personasim.pipeline.ingest import IngestStage
from personasim.pipeline.personas import PersonasStage
from personasim.pipeline.profile import ProfileStage
from personasim.pipeline.stage import Stage
from personasim.pipeline.train_adapters import (
    AdapterJob,
    adapter_lm_weights,
    train_on_worker,
    train_one_adapter,
)
from personasim.progress import progress
from personasim.run_folder import ADAPTERS, DATA, PERSONAS, PROFILES, RUN
from personasim.scale.executor import get_executor

__all__ = ["TrainStage", "adapter_groups"]

logger = logging.getLogger(__name__)


def adapter_groups(modes: list[str], assignments: pd.DataFrame) -> dict[str, list[str]]:
    """Adapter name -> its users: one per persona and/or one global."""
    groups: dict[str, list[str]] = {}
    if "persona" in modes:
        for persona, frame in assignments.groupby("persona", sort=True):
            groups[str(persona)] = sorted(frame["user_id"].astype(str))
    if "global" in modes:
        groups[GLOBAL_ADAPTER] = sorted(assignments["user_id"].astype(str))
    return groups


LANGUAGE_MODEL_OFF = (
    "off (agents.language_model): no adapter trained; the agents answer from their priors"
)

NO_RATINGS_NOTE = f"the rating answer and its prior: {NO_RATINGS}; the agents learn to watch"


class TrainStage(Stage):
    """Build RAFT examples and train the agents' LoRA adapters."""

    name = "train"
    folder = ADAPTERS.stage.folder
    upstream = (IngestStage, ProfileStage, PersonasStage)
    keeps_checkpoints = True  # each trained adapter: reused when only the LM weight changes

    def settings(self) -> list[Any]:
        """The `[agents]` settings that change a result, the rating prior's `[cf]` model
        settings, the base weights, prompts and seed."""
        return self._settings(stage_settings(self.config.agents))

    def adapter_settings(self) -> list[Any]:
        """What the trained adapters depend on: the stage's settings less those that only
        change what is done with trained adapters (the LM weight, fitted on them)."""
        return self._settings(part_settings(self.config.agents, "adapters"))

    def _settings(self, agents: dict[str, Any]) -> list[Any]:
        """`agents` (a selection of `[agents]`) less what this run's other settings make
        irrelevant, with the prior's model settings, the base weights, prompts, seed."""
        config = self.config.agents
        for name in ("watch_prior_exclude", "recent_titles"):  # older runs keep their hash
            if not getattr(config, name):
                agents.pop(name, None)
        if config.language_model != "off":  # answering only, unless no adapter is trained
            agents.pop("language_model", None)
        if config.selection == "gradient":  # it scores the candidates in such batches
            agents["score_batch_items"] = config.score_batch_items
        else:  # only the gradient selection has a pool (older runs keep their hash)
            agents.pop("selection_pool", None)
        return [
            agents,
            part_settings(self.config.cf, "ratings"),
            AgentLM.identity(config),
            AGENT_PROMPT_VERSION,
            self.config.seed,
        ]

    def build(self, out: Path) -> dict[str, Any]:
        """Write the prior, the examples, and the adapters."""
        cfg = self.config.agents
        seed = self.config.seed
        ws = self.workspace
        interactions = read_parquet(ws.require(DATA.interactions))
        items = read_parquet(ws.require(DATA.items))
        others = read_parquet(ws.require(DATA.others))
        profiles = read_parquet(ws.require(PROFILES.profiles))
        assignments = read_parquet(ws.require(PERSONAS.assignments))
        train = interactions[interactions["split"] == "train"].reset_index(drop=True)
        scale = tuple(self.config.data.rating_scale)
        records = item_records(items)
        if not cfg.modes and "prompt" not in cfg.prior:
            # Nothing to train and no prompt needs the prior: only the zero-shot base
            # model can be scored.
            return {
                "examples": {"rate": 0, "watch": 0},
                "adapters": {},
                "totals": {"examples": 0, "steps": 0, "seconds": 0.0},
            }

        users = sorted(profiles["user_id"].astype(str))
        implicit = self.config.data.implicit
        prior = oof = weights = None
        if not implicit:  # a log without ratings has no rating prior
            with progress("collaborative prior", total=None):
                fitted = fit_prior(
                    cfg.prior_model,
                    self.config.cf,
                    train,
                    others,
                    users,
                    items,
                    scale,
                    seed,
                    models_folder=ws.root / RUN.fitted_models,
                )
            prior, oof, weights = fitted.prior, fitted.out_of_fold, fitted.weights
            prior.save(out)

        index = None
        if cfg.use_rationales:
            rationales = read_parquet(ws.require(PROFILES.rationales))
            with progress("embedding rationales", total=None):
                index = RationaleIndex(rationales, records, scale=self.config.data.scale)
                index.save(out)  # the agents load these instead of embedding again
        examples = build_examples(
            train,
            records,
            cfg,
            oof_prior=oof,
            prior=prior,
            index=index,
            seed=seed,
            scale=self.config.data.scale,
        )
        recent = recent_items(train, cfg.recent_titles)
        if recent:  # the prompt names these items: their answers would be given away
            named = [(user, item) for user, watched in recent.items() for item in watched]
            pairs = pd.MultiIndex.from_arrays(
                [examples["user_id"].astype(str), examples["item_id"].astype(str)]
            )
            examples = examples[~pairs.isin(named)].reset_index(drop=True)
        watch_summary = self._watch_prior(examples, train, others, users, items, out)
        persona_of = dict(
            zip(assignments["user_id"].astype(str), assignments["persona"], strict=True)
        )
        examples["persona"] = examples["user_id"].map(persona_of)
        errors = (examples["target"] - examples["prior"]).abs().where(examples["task"] == "rate")
        write_parquet(examples, ADAPTERS.examples.under(out))

        groups = adapter_groups(list(cfg.modes), assignments)
        summary: dict[str, Any] = {
            "examples": {
                "rate": int((examples.task == "rate").sum()),
                "watch": int((examples.task == "watch").sum()),
            },
            "oof_prior_rmse": None if oof is None else round(rmse(train["rating"], oof), 4),
            "prior_model": None if implicit else cfg.prior_model,
            "prior_weights": weights,
            "watch_prior": watch_summary,
            "adapters": {},
        }
        if implicit:
            summary["not_trained"] = NO_RATINGS_NOTE
        if groups and cfg.language_model == "off":
            summary["language_model"] = LANGUAGE_MODEL_OFF
        elif groups:
            texts = agent_profiles(profiles, recent, records)
            summary["adapters"] = self._train_all(groups, examples, errors, texts, out)
        summary["totals"] = {
            "examples": sum(a["examples"] for a in summary["adapters"].values()),
            "steps": sum(a["steps"] for a in summary["adapters"].values()),
            "seconds": round(sum(a["seconds"] for a in summary["adapters"].values()), 1),
        }
        return summary

    def _watch_prior(
        self,
        examples: pd.DataFrame,
        train: pd.DataFrame,
        others: pd.DataFrame,
        users: list[str],
        items: pd.DataFrame,
        out: Path,
    ) -> dict[str, Any] | None:
        """Fit the watch prior (``agents.watch_prior``), store it, and put its
        out-of-fold log-odds in the watch examples' `prior` column (in place)."""
        cfg = self.config.agents
        watch = examples["task"] == "watch"
        if cfg.watch_prior == "none" or not watch.any():
            return None
        started = time.perf_counter()
        with progress(f"watch prior ({cfg.watch_prior})", total=None):
            prior, odds, report = fit_choice_prior(
                cfg.watch_prior,
                train,
                others,
                items,
                users,
                examples.loc[watch, ["user_id", "item_id", "target"]],
                seed=self.config.seed,
                exclude=cfg.watch_prior_exclude,
            )
        examples.loc[watch, "prior"] = odds
        prior.save(out)
        targets = examples.loc[watch, "target"].to_numpy()
        return {
            "kind": cfg.watch_prior,
            "seconds": round(time.perf_counter() - started, 1),
            **({"stacked": report} if report else {}),
            "examples": int(watch.sum()),
            "oof_auc": round(float(roc_auc_score(targets, odds)), 4)
            if len(set(targets)) > 1
            else None,
        }

    def _train_all(
        self,
        groups: dict[str, list[str]],
        examples: pd.DataFrame,
        errors: pd.Series,
        texts: dict[str, str],
        out: Path,
    ) -> dict[str, Any]:
        cfg = self.config.agents
        scale = self.config.data.scale
        # The adapters' checkpoints are named without the LM weight's settings: fitting
        # the weight, or changing it, trains no adapter again.
        adapter_settings = config_hash(*self.adapter_settings())
        checkpoints = self.workspace.checkpoint_dir(
            self.folder, config_hash(adapter_settings, self.input_hashes())[:16]
        )
        rng = np.random.default_rng(self.config.seed)
        jobs = []
        lm = None
        for number, (name, users) in enumerate(groups.items()):
            # Every selection is drawn first, in order: resuming keeps it.
            mine = examples[examples["user_id"].isin(set(users))]
            gradients = None
            capped = 0 < cfg.max_examples_per_adapter < (mine["task"] == "rate").sum()
            if cfg.selection == "gradient" and capped:
                gradients = self._gradient_scores(checkpoints / f"{name}.gradients.parquet")
                if gradients is None:
                    lm = lm or AgentLM.load(cfg, scale)
                    with progress(f"gradient scores of {name}", total=None):
                        gradients = gradient_scores(
                            lm, mine, texts, cfg, seed=self.config.seed + number
                        )
                    write_parquet(
                        pd.DataFrame({"row": gradients.index, "score": gradients.to_numpy()}),
                        checkpoints / f"{name}.gradients.parquet",
                    )
            held_out = held_watch = None
            folder = checkpoints / name
            watch_rows = mine[mine["task"] == "watch"] if self._fits_watch_weight() else None
            if cfg.lm_weight == "fit":
                # its own draws: the selection stays the one made without the fit
                fit_rng = np.random.default_rng([self.config.seed, number])
                rate = mine[mine["task"] == "rate"]
                if not capped:  # every example is trained on: hold some out first
                    size = min(cfg.lm_weight_examples, len(rate) // 5)
                    held_out = held_out_ratings(rate, pd.Index([]), size, fit_rng)
                    dropped = held_out.index
                    tag = f"{len(held_out)}"
                    if watch_rows is not None:
                        size = min(cfg.lm_weight_examples, len(watch_rows) // 5)
                        held_watch = held_out_ratings(watch_rows, pd.Index([]), size, fit_rng)
                        dropped = dropped.union(held_watch.index)
                        tag += f"+{len(held_watch)}"
                    mine = mine.drop(dropped)
                    folder = checkpoints / f"{name}-without-{tag}-held-out"
            frame = select_examples(mine, cfg, errors=errors, rng=rng, gradients=gradients)
            if cfg.lm_weight == "fit" and held_out is None:
                held_out = held_out_ratings(
                    mine[mine["task"] == "rate"], frame.index, cfg.lm_weight_examples, fit_rng
                )
                if watch_rows is not None:
                    held_watch = held_out_ratings(
                        watch_rows, frame.index, cfg.lm_weight_examples, fit_rng
                    )
            jobs.append(
                AdapterJob(
                    name=name,
                    examples=frame,
                    texts={u: texts[u] for u in frame["user_id"].unique()},
                    users=len(users),
                    folder=folder,
                    config=cfg,
                    seed=self.config.seed + number,
                    held_out=held_out,
                    held_out_watch=held_watch,
                    scale=scale,
                )
            )
        results: dict[str, Any] = {}
        todo = []
        for job in jobs:
            if (job.folder / ADAPTERS.training).exists():
                results[job.name] = json.loads((job.folder / ADAPTERS.training).read_text())
                logger.info("train: adapter %s restored from checkpoint", job.name)
            else:
                todo.append(job)
        executor = get_executor(self.config.scale)
        if executor.name == "in-process":
            total = sum(len(j.examples) for j in todo) * cfg.epochs
            lm = (lm or AgentLM.load(cfg, scale)) if todo else None
            with progress("training adapters", total=total, unit="examples") as advance:
                for job in todo:
                    results[job.name] = train_one_adapter(lm, job, on_step=advance)
        else:
            done = executor.map(train_on_worker, todo, label="training adapters", gpu=True)
            results.update({job.name: meta for job, meta in zip(todo, done, strict=True)})
        trained = lm
        # loaded only if a fit needs it
        model = functools.cache(lambda: trained or AgentLM.load(cfg, scale))
        for job in jobs:
            weights = adapter_lm_weights(job, texts, model, implicit=self.config.data.implicit)
            results[job.name] = {**results[job.name], **weights}
            shutil.copytree(job.folder, out / job.name)
        return {name: results[name] for name in groups}

    def _fits_watch_weight(self) -> bool:
        """Whether the adapters get a fitted watch LM weight: ``lm_weight = "fit"``
        with a watch task and a watch prior (without one, weight 0 would answer 0.5)."""
        cfg = self.config.agents
        return cfg.lm_weight == "fit" and cfg.watch_task and cfg.watch_prior != "none"

    @staticmethod
    def _gradient_scores(path: Path) -> pd.Series | None:
        """An adapter's gradient scores from its checkpoint (a resumed run keeps them)."""
        if not path.exists():
            return None
        frame = read_parquet(path)
        return pd.Series(frame["score"].to_numpy(), index=frame["row"].to_numpy())
