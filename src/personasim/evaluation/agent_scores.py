"""What the evaluation asks the LM agents: their test ratings, their watch
probabilities on the taste lists, and free answers in words.

One model holds every evaluated kind's adapters and scores all kinds in one pass (a
prompt's layers below the adapters run once for all of them); it loads only when a
part is not already in its checkpoint store.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from personasim.agents import UserAgent
from personasim.agents.agent import pair_scorer
from personasim.config import AGENT_ADAPTERS, RunConfig
from personasim.evaluation.checkpoints import UnitStore
from personasim.evaluation.metrics import parse_rating, rmse
from personasim.progress import progress
from personasim.scale.executor import get_executor

__all__ = ["AgentScoring", "free_generation_summary"]

Rated = list[tuple[str, pd.DataFrame, dict[str, Any]]]
"""(model, its test predictions, its note) per agent model."""


class AgentScoring:
    """The agent kinds `kinds` of the run folder `workdir`, scored for the evaluation.

    `training` is the train stage's summary (each adapter's examples, steps, seconds).
    """

    def __init__(
        self, workdir: Path, kinds: list[str], config: RunConfig, training: dict[str, Any]
    ) -> None:
        self.workdir, self.kinds, self.config, self.training = workdir, kinds, config, training
        self.modes = {kind: AGENT_ADAPTERS[kind] for kind in kinds}
        self._agent: UserAgent | None = None

    def agent(self) -> UserAgent:
        """The one model that holds every kind's adapters (loaded on first use)."""
        if self._agent is None:
            wanted = list(self.modes.values())
            self._agent = UserAgent.from_workdir(
                self.workdir,
                mode=wanted[0],  # type: ignore[arg-type]
                also=wanted[1:],  # type: ignore[arg-type]
            )
        return self._agent

    # --- ratings -------------------------------------------------------------------------

    def ratings(self, asked: pd.DataFrame, store: UnitStore) -> Rated:
        """Every kind's ratings of the `asked` pairs and, when asked for and the agents
        retrieve rationales, each LoRA kind's without them (``<kind>-ms``)."""
        rated = self._rate({kind: kind for kind in self.kinds}, asked, store, "")
        cfg = self.config
        if cfg.evaluate.without_rationales and cfg.agents.use_rationales:
            bare = {f"{k}-ms": k for k in self.kinds if self.modes[k] != "none"}
            rated += self._rate(bare, asked, store, "Ms (Ml left out)")
        return rated

    def _rate(
        self, models: dict[str, str], asked: pd.DataFrame, store: UnitStore, context: str
    ) -> Rated:
        """Ratings of `models` (model -> the kind it varies; `context`: the rationale
        left out), from the store or scored together."""
        done = {m: store.restore(m) for m in models}
        todo = [m for m in models if done[m] is None]
        executor = get_executor(self.config.scale)
        together = executor.name == "in-process" or bool(context)
        if todo and together:
            # Scored in one pass, so restored only whole: the rest scored alone after a
            # kill between the pass's saves would meet other batches (other roundings).
            todo = list(models)
        if todo:
            wanted = [self.modes[models[m]] for m in todo]
            if together:
                agent = self.agent()
                index = agent.index
                if context:
                    agent.index = None  # no retrieved rationale
                try:
                    with progress(f"rating with {', '.join(todo)}", total=None):
                        scored = agent.predict_pairs_by_mode(wanted, asked)  # type: ignore[arg-type]
                finally:
                    agent.index = index
                by_model = {m: scored[mode] for m, mode in zip(todo, wanted, strict=True)}
                dtype = agent.lm.dtype_name
            else:
                root = str(self.workdir)
                dtype = self.config.agents.dtype  # resolved on each worker
                by_model = {
                    m: executor.score_pairs(partial(pair_scorer, root, mode), asked)
                    for m, mode in zip(todo, wanted, strict=True)
                }
            for m, mode in zip(todo, wanted, strict=True):
                note = {**self._note(mode, by_model[m]), "dtype": dtype}
                if context:
                    note["context"] = context
                done[m] = (by_model[m].assign(model=m, valid=True), note)
                store.save(m, *done[m])  # type: ignore[misc]
        return [(m, *done[m]) for m in models]  # type: ignore[misc]

    def _note(self, mode: str, scored: pd.DataFrame) -> dict[str, Any]:
        agents = self.config.agents
        adapters = (
            {
                k: v
                for k, v in self.training["adapters"].items()
                if (mode == "global") == (k == "global")
            }
            if mode != "none"
            else {}
        )
        return {
            "kind": "agent",
            "mode": mode,
            "context": "Ms+Ml" if agents.use_rationales else "Ms",
            "prior": agents.prior if mode != "none" else "none",
            "urr": round(float(1.0 - scored["greedy_is_digit"].mean()), 6),
            "urr_definition": "share of answers whose most likely token is not a digit",
            "digit_mass": round(float(scored["digit_mass"].mean()), 6),
            "predicted_std": round(float(scored["predicted"].std()), 4),
            "training_examples": sum(a["examples"] for a in adapters.values()),
            "training_steps": sum(a["steps"] for a in adapters.values()),
            "training_seconds": round(sum(a["seconds"] for a in adapters.values()), 1),
            "lm_weight": {name: a.get("lm_weight", 1.0) for name, a in adapters.items()},
            "watch_lm_weight": {
                name: a.get("watch_lm_weight", 1.0) for name, a in adapters.items()
            },
        }

    # --- taste ---------------------------------------------------------------------------

    def watch_scores(self, pairs: pd.DataFrame, store: UnitStore) -> list[pd.DataFrame]:
        """Each kind's P(yes) for every (user, item) pair of the taste lists: ``pairs``
        plus ``model, score``; all kinds in one pass, users in groups of 8."""
        found = {kind: store.restore(kind) for kind in self.kinds}
        # one pass for every kind, so restored only whole (as the ratings)
        missing = any(unit is None for unit in found.values())
        todo = {k: self.modes[k] for k in self.kinds} if missing else {}
        if todo:
            groups = list(pairs.groupby("user_id", sort=True).indices.items())
            scores = {kind: np.full(len(pairs), np.nan) for kind in todo}
            items = pairs["item_id"].astype(str).to_numpy()
            total = len(pairs) * len(todo)
            label = f"taste lists: {', '.join(todo)}"
            with progress(label, total=total, unit="decisions") as advance:
                for start in range(0, len(groups), 8):
                    chunk = groups[start : start + 8]
                    probs = self.agent().watch_probabilities_by_mode(
                        list(todo.values()),  # type: ignore[arg-type]
                        [(u, items[idx].tolist()) for u, idx in chunk],
                    )
                    for kind, mode in todo.items():
                        for (_, idx), p in zip(chunk, probs[mode], strict=True):
                            scores[kind][idx] = p
                    advance(sum(len(idx) for _, idx in chunk) * len(todo))
            for kind in todo:
                found[kind] = (pairs.assign(model=kind, score=scores[kind]), {})
                store.save(kind, *found[kind])  # type: ignore[misc]
        return [found[kind][0] for kind in self.kinds]  # type: ignore[index]

    # --- free generation -----------------------------------------------------------------

    def free_answers(self, pairs: pd.DataFrame, store: UnitStore) -> list[pd.DataFrame]:
        """Each kind's answers in words to a seeded sample of `pairs`, parsed."""
        return [
            store.get(kind, lambda kind=kind: (self._answers(kind, pairs), {}))[0]
            for kind in self.kinds
        ]

    def _answers(self, kind: str, pairs: pd.DataFrame) -> pd.DataFrame:
        cfg = self.config.evaluate
        n = min(cfg.free_generation_pairs, len(pairs))
        rng = np.random.default_rng(self.config.seed)
        chosen = pairs.iloc[np.sort(rng.choice(len(pairs), n, replace=False))]
        requests = [
            (str(u), part["item_id"].astype(str).tolist())
            for u, part in chosen.groupby("user_id", sort=False)
        ]
        agent = self.agent().as_mode(self.modes[kind])  # type: ignore[arg-type]
        with progress(f"free answers of {kind}", total=None):
            answers = agent.answer_freely(requests, max_new_tokens=cfg.free_generation_tokens)
        scale = self.config.data.scale
        truth = dict(
            zip(
                zip(chosen["user_id"].astype(str), chosen["item_id"].astype(str), strict=True),
                chosen["rating"].astype(float),
                strict=True,
            )
        )
        rows = []
        for (user, items), texts in zip(requests, answers, strict=True):
            for item, text in zip(items, texts, strict=True):
                parsed = parse_rating(text, scale)
                rows.append(
                    {
                        "model": kind,
                        "user_id": user,
                        "item_id": item,
                        "rating": truth[(user, item)],
                        "answer": text,
                        "parsed": np.nan if parsed is None else parsed,
                        "valid": parsed is not None,
                    }
                )
        return pd.DataFrame(rows)


def free_generation_summary(generated: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Per model: the share of free answers with no rating on the scale (the papers'
    URR), how many, and the RMSE of the parsed ones."""
    summary = {}
    for name, part in generated.groupby("model", sort=False):
        summary[str(name)] = {
            "urr": round(float(1.0 - part["valid"].mean()), 6),
            "n": int(len(part)),
            "rmse_parsed": round(
                rmse(part.loc[part.valid, "rating"], part.loc[part.valid, "parsed"]), 6
            ),
            "definition": "share of free-text answers with no rating on the scale",
        }
    return summary
