"""Answer maths on next-token log-probabilities: priors added to answer logits, the
distribution over answers, and the few numbers kept per answer (:class:`AnswerScores`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AnswerScores",
    "answer_distribution",
    "keep_answers",
    "with_prior",
    "with_watch_prior",
]


def with_prior(log_probs: Any, token_ids: Sequence[int], offsets: Any | None) -> Any:
    """Full-vocabulary log-probabilities after adding `offsets` ``[n, len(token_ids)]``
    to the logits of `token_ids` (the CF log-prior on the digits), renormalised."""
    import torch

    if offsets is None:
        return log_probs
    adjusted = log_probs.clone()
    adjusted[:, list(token_ids)] = adjusted[:, list(token_ids)] + offsets
    return adjusted - torch.logsumexp(adjusted, dim=-1, keepdim=True)


def with_watch_prior(
    log_probs: Any, yes_ids: Sequence[int], no_ids: Sequence[int], log_odds: Any | None
) -> Any:
    """Full-vocabulary log-probabilities after the watch prior's `log_odds` ``[n]`` is
    split over the answers (half added to the "yes" logits, half taken from the "no"
    ones), renormalised: logit(yes) - logit(no) moves by exactly `log_odds`."""
    if log_odds is None:
        return log_probs
    import torch

    half = log_odds.to(log_probs.dtype)[:, None] / 2
    offsets = torch.cat([half.expand(-1, len(yes_ids)), -half.expand(-1, len(no_ids))], dim=-1)
    return with_prior(log_probs, [*yes_ids, *no_ids], offsets)


def answer_distribution(log_probs: Any, token_groups: Sequence[Sequence[int]]) -> tuple[Any, Any]:
    """A distribution over answers from full-vocabulary log-probabilities.

    Args:
        log_probs: ``[n, vocab]`` log-softmax at the answer positions.
        token_groups: The tokens of each answer ("1".."5", or yes/no spellings); a
            group's mass is the sum over its tokens.

    Returns:
        The answer probabilities ``[n, answers]`` (renormalised over the answers) and
        the full-vocabulary mass the answers had before renormalising ``[n]``.
    """
    import torch

    grouped = torch.stack(
        [torch.logsumexp(log_probs[:, list(group)], dim=-1) for group in token_groups], dim=-1
    )
    return torch.softmax(grouped, dim=-1), grouped.exp().sum(dim=-1)


@dataclass(frozen=True)
class AnswerScores:
    """What is kept of the next-token distribution at answer positions: the
    log-probabilities of the answer tokens and, in a last column, of every other token
    together (so each row still sums to 1 and priors renormalise exactly as over the
    whole vocabulary), plus the largest other token's log-probability (for what greedy
    decoding would say). A few numbers per answer instead of the vocabulary."""

    log_probs: Any
    """``[n, answer tokens + 1]``."""
    rest_max: Any
    """``[n]``."""

    def __len__(self) -> int:
        return int(self.log_probs.shape[0])

    def __getitem__(self, rows: Any) -> AnswerScores:
        return AnswerScores(self.log_probs[rows], self.rest_max[rows])


def keep_answers(log_probs: Any, keep: Sequence[int]) -> AnswerScores:
    """Full-vocabulary log-probabilities ``[n, vocab]`` reduced to the `keep` tokens,
    the rest's total and the rest's largest (:class:`AnswerScores`)."""
    import torch

    rest = log_probs.clone()
    rest[:, list(keep)] = float("-inf")
    total = torch.logsumexp(rest, dim=-1, keepdim=True)
    return AnswerScores(torch.cat([log_probs[:, list(keep)], total], dim=-1), rest.amax(dim=-1))
