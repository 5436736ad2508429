"""The training objective: one adapter's RAFT examples packed with their targets, and
the loss of its answers on them.

The rating loss is cross-entropy on the digit and/or the squared error of the expected
rating over the digits; with the logit prior, a Gaussian log-prior over the digits
whose expectation is the CF prediction is added to the digit logits, so the adapter
learns corrections to CF. The watch loss is the cross-entropy of yes/no, after the
watch prior's log-odds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from personasim.agents.answers import answer_distribution, with_prior, with_watch_prior
from personasim.agents.lm import AgentLM
from personasim.agents.packing import Pack, PackedBatch
from personasim.agents.prior import prior_logits
from personasim.config import AgentConfig

__all__ = ["PackedExamples", "batch_loss", "make_packs"]


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
