"""Scores of many users over many items at once, from LensKit scorers as LensKit fitted them.

LensKit scores one query at a time: a pipeline run per user, about 1 ms of overhead
before the scoring itself. For the scorers whose maths is a few matrix products,
:func:`batch_scorer` scores a batch of users in one go with the parameters LensKit
learnt, as LensKit would:

- implicit MF (ALS, ``ImplicitMFScorer``): each user's embedding solved again from the
  query's items (LensKit's fold-in: one Cholesky solve per user, batched over users of
  similar history length), then products with the item embeddings;
- FlexMF (BPR, ``FlexMFImplicitScorer``): user embeddings x item embeddings plus the
  biases, the model's forward pass as one product;
- popularity (``PopScorer``): one score per item, the same for every user;
- SASRec (:class:`~personasim.cf.sequential.SASRecScorer`): its own batched logits over
  each user's sequence.

Any other scorer gets None and its caller scores user by user through LensKit: item- and
user-kNN (their per-target top-k of the history's neighbours, batched with torch, was
slower than LensKit's compiled kernel: 11.7 against 6.3 ms a user on ML-1M) and the
explicit models. Tests compare every batched score with LensKit's own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from personasim.cf.factors import ScoreFactors

__all__ = ["BATCH_USERS", "BatchScorer", "batch_scorer", "score_factors"]

BatchScorer = Callable[[Sequence[str], Sequence[Sequence[str]], Sequence[str]], np.ndarray]
"""``(users, histories, items) -> [users, items]`` scores (NaN: not scorable), where a
user's history is the items of their query (what LensKit's history lookup gives)."""

BATCH_USERS = 256
"""Users scored in one batch by the callers of a batched scorer (a batch's scores are
users x items floats: 3.8 MB for ML-1M's catalogue)."""

_GATHER_BUDGET = 2**22
"""Item embeddings gathered at once by the MF fold-in (users x longest history x
factors floats: 16 MB)."""


def _numbers(vocabulary: Any, ids: Sequence[str]) -> np.ndarray:
    """Positions of `ids` in a LensKit vocabulary, -1 for unknown ones."""
    if not len(ids):
        return np.zeros(0, dtype=np.int64)
    return np.asarray(
        vocabulary.numbers(np.asarray(ids, dtype=object), missing="negative"), dtype=np.int64
    )


def _by_length(lengths: Sequence[int], width: int) -> list[np.ndarray]:
    """Positions grouped into batches of similar `lengths` (shortest first), each holding
    at most :data:`_GATHER_BUDGET` floats of ``batch x longest x width``."""
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    batches, start = [], 0
    while start < len(order):
        end = start + 1
        while end < len(order) and (end + 1 - start) * max(lengths[order[end]], 1) * width <= (
            _GATHER_BUDGET
        ):
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def _padded(histories: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``[users, longest]`` item positions (0 where padded) and the mask of real ones."""
    longest = max((len(h) for h in histories), default=0)
    index = np.zeros((len(histories), max(longest, 1)), dtype=np.int64)
    mask = np.zeros(index.shape, dtype=bool)
    for row, h in enumerate(histories):
        index[row, : len(h)] = h
        mask[row, : len(h)] = True
    return index, mask


def _implicit_mf(
    scorer: Any, users: Sequence[str], histories: Sequence[Sequence[str]], items: Sequence[str]
) -> ScoreFactors:
    """ALS implicit MF: each user's vector by LensKit's fold-in of their query items."""
    import torch

    config = scorer.config
    embeddings = torch.as_tensor(scorer.item_embeddings)
    otor = torch.as_tensor(scorer._OtOr)
    weight = float(config.weight)
    stored = scorer.user_embeddings

    def fold_in(histories: Sequence[np.ndarray]) -> torch.Tensor:
        """Solve ``(OtOr + w M'M) x = (w + 1) M'1`` per user (M: their items' rows)."""
        index, mask = _padded(histories)
        m = embeddings[torch.as_tensor(index)] * torch.as_tensor(mask)[..., None]
        a = otor + weight * torch.einsum("bik,bil->bkl", m, m)
        factor, info = torch.linalg.cholesky_ex(a)
        if bool((info != 0).any()):  # pragma: no cover - OtOr is positive definite
            raise ValueError("implicit MF: a fold-in system is not positive definite")
        return torch.cholesky_solve((weight + 1.0) * m.sum(dim=1)[..., None], factor)[..., 0]

    known = [h[h >= 0] for h in (_numbers(scorer.items, list(h)) for h in histories)]
    user_rows = _numbers(scorer.users, list(users))
    vectors = torch.zeros((len(users), embeddings.shape[1]), dtype=embeddings.dtype)
    # LensKit folds in a query with items; otherwise (or with "prefer") it takes the
    # stored embedding of a known user, and cannot score an unknown one
    fold = np.array([len(h) > 0 for h in known], dtype=bool) & (config.user_embeddings != "prefer")
    from_store = ~fold & (user_rows >= 0) & (stored is not None)
    folded = np.flatnonzero(fold)
    for batch in _by_length([len(known[f]) for f in folded], embeddings.shape[1]):
        rows = folded[batch]
        vectors[torch.as_tensor(rows)] = fold_in([known[r] for r in rows])
    rows = np.flatnonzero(from_store)
    if len(rows):
        vectors[torch.as_tensor(rows)] = torch.as_tensor(stored[user_rows[rows]])
    columns = _numbers(scorer.items, items)
    return ScoreFactors(
        vectors.numpy(),
        _rows_of(scorer.item_embeddings, columns),
        np.zeros(len(users)),
        np.zeros(len(items)),
        user_known=fold | from_store,
        item_known=columns >= 0,
        missing=np.nan,
    )


def _rows_of(table: Any, positions: np.ndarray) -> np.ndarray:
    """Rows `positions` of `table` (a NumPy array or a tensor); zeros where -1."""
    table = table.detach().cpu().numpy() if hasattr(table, "detach") else np.asarray(table)
    out = np.zeros((len(positions), *table.shape[1:]), dtype=table.dtype)
    inside = positions >= 0
    out[inside] = table[positions[inside]]
    return out


def _flexmf(
    scorer: Any, users: Sequence[str], _histories: Sequence[Sequence[str]], items: Sequence[str]
) -> ScoreFactors:
    """FlexMF: the model's embeddings and biases (its score is their dot product plus
    the biases)."""
    model = scorer.model
    rows, columns = _numbers(scorer.users, list(users)), _numbers(scorer.items, items)
    user_bias = np.zeros(len(users))
    item_bias = np.zeros(len(items))
    if model.u_bias is not None:
        user_bias = _rows_of(model.u_bias.weight, rows)[:, 0].astype("float64")
    if model.i_bias is not None:
        item_bias = _rows_of(model.i_bias.weight, columns)[:, 0].astype("float64")
    return ScoreFactors(
        _rows_of(model.u_embed.weight, rows),
        _rows_of(model.i_embed.weight, columns),
        user_bias,
        item_bias,
        user_known=rows >= 0,
        item_known=columns >= 0,
        missing=np.nan,
    )


def _popularity(
    scorer: Any, users: Sequence[str], _histories: Sequence[Sequence[str]], items: Sequence[str]
) -> ScoreFactors:
    """Popularity: one score per item (no user part)."""
    from lenskit.data import ItemList

    row = None
    if len(items):
        row = scorer(items=ItemList(item_ids=np.asarray(items, dtype=object))).scores()
    row = np.full(len(items), np.nan) if row is None else np.asarray(row, dtype="float64")
    return ScoreFactors(
        np.zeros((len(users), 0), dtype="float32"),
        np.zeros((len(items), 0), dtype="float32"),
        np.zeros(len(users)),
        np.nan_to_num(row),
        item_known=~np.isnan(row),
        missing=np.nan,
    )


def _biased_mf(
    scorer: Any, users: Sequence[str], _histories: Sequence[Sequence[str]], items: Sequence[str]
) -> ScoreFactors:
    """Explicit biased MF (ALS) for queries of a user id: the stored user embeddings plus
    the bias model's global, user and item biases."""
    rows, columns = _numbers(scorer.users, list(users)), _numbers(scorer.items, items)
    return ScoreFactors(
        _rows_of(scorer.user_embeddings, rows),
        _rows_of(scorer.item_embeddings, columns),
        _biases(scorer.bias, rows, "user"),
        _biases(scorer.bias, columns, "item"),
        float(scorer.bias.global_bias),
        user_known=rows >= 0,
        item_known=columns >= 0,
        missing=np.nan,
    )


def _biases(model: Any, positions: np.ndarray, entity: str) -> np.ndarray:
    """A LensKit bias model's user or item biases at `positions` (0 where -1 or none)."""
    biases = getattr(model, f"{entity}_biases", None)
    if biases is None:
        return np.zeros(len(positions))
    return _rows_of(np.asarray(biases, dtype="float64"), positions)


def _bias(
    scorer: Any, users: Sequence[str], _histories: Sequence[Sequence[str]], items: Sequence[str]
) -> ScoreFactors:
    """The user + item bias model for queries of a user id (no factors): every pair is
    scored (an unknown user or item has no bias)."""
    model = scorer.model_
    rows = _numbers(model.users, list(users)) if model.users is not None else None
    columns = _numbers(model.items, items) if model.items is not None else None
    return ScoreFactors(
        np.zeros((len(users), 0), dtype="float32"),
        np.zeros((len(items), 0), dtype="float32"),
        np.zeros(len(users)) if rows is None else _biases(model, rows, "user"),
        np.zeros(len(items)) if columns is None else _biases(model, columns, "item"),
        float(model.global_bias),
    )


FactorScorer = Callable[[Any, Sequence[str], Sequence[Sequence[str]], Sequence[str]], ScoreFactors]


def _low_rank(component: Any) -> bool:
    """Whether a fitted scorer's table is low-rank as LensKit computes it: not implicit
    MF whose fold-in reads ratings, nor FlexMF with convolution layers."""
    from lenskit.als import ImplicitMFScorer
    from lenskit.flexmf import FlexMFImplicitScorer

    if isinstance(component, ImplicitMFScorer):
        return not component.config.use_ratings and component.item_embeddings is not None
    if isinstance(component, FlexMFImplicitScorer):
        return component.model.u_layers is None and component.model.i_layers is None
    return True


def score_factors(
    component: Any, users: Sequence[str], histories: Sequence[Sequence[str]], items: Sequence[str]
) -> ScoreFactors | None:
    """The `users` x `items` table of a fitted LensKit scorer as factors
    (:class:`~personasim.cf.factors.ScoreFactors`; NaN where LensKit scores nothing), or
    None for a scorer that is not low-rank.

    Args:
        component: The fitted scorer: implicit MF (folds in `histories`), FlexMF (BPR),
            popularity, biased MF or the bias model (both for queries of a user id).
        users: The rows.
        histories: Each user's query items (read by implicit MF only).
        items: The columns.
    """
    from lenskit.als import BiasedMFScorer, ImplicitMFScorer
    from lenskit.basic import BiasScorer, PopScorer
    from lenskit.flexmf import FlexMFImplicitScorer

    makers: list[tuple[type, FactorScorer]] = [
        (ImplicitMFScorer, _implicit_mf),
        (FlexMFImplicitScorer, _flexmf),
        (PopScorer, _popularity),
        (BiasedMFScorer, _biased_mf),
        (BiasScorer, _bias),
    ]
    for kind, make in makers:
        if isinstance(component, kind):
            return make(component, users, histories, items) if _low_rank(component) else None
    return None


def _sasrec(scorer: Any) -> BatchScorer:
    """SASRec: each user's sequence as :meth:`SASRecScorer.history` reads it, and the
    model's logits for a batch of them at once."""
    from lenskit.data import ItemList, RecQuery

    def score(
        users: Sequence[str], histories: Sequence[Sequence[str]], items: Sequence[str]
    ) -> np.ndarray:
        columns = _numbers(scorer.items_, items)
        inside = np.flatnonzero(columns >= 0)
        scores = np.full((len(users), len(items)), np.nan, dtype=np.float32)

        def sequence(user: str, history: Sequence[str]) -> np.ndarray:
            given = ItemList(item_ids=np.asarray(history, dtype=object)) if len(history) else None
            return scorer.history(RecQuery(user_id=user, history_items=given))

        sequences = [sequence(u, h) for u, h in zip(users, histories, strict=True)]
        rows = np.flatnonzero([len(s) > 0 for s in sequences])
        for start in range(0, len(rows), BATCH_USERS):
            batch = rows[start : start + BATCH_USERS]
            logits = scorer.logits([sequences[b] for b in batch], columns[inside] + 1)
            scores[np.ix_(batch, inside)] = logits
        return scores

    return score


def batch_scorer(component: Any) -> BatchScorer | None:
    """A batched version of a fitted LensKit scorer, or None where there is none (see the
    module docstring): the caller then scores user by user."""
    from lenskit.als import ImplicitMFScorer
    from lenskit.basic import PopScorer
    from lenskit.flexmf import FlexMFImplicitScorer

    from personasim.cf.sequential import SASRecScorer

    if isinstance(component, SASRecScorer):
        return _sasrec(component)
    # (the explicit models score queries of a user id: score_factors)
    implicit = (ImplicitMFScorer, FlexMFImplicitScorer, PopScorer)
    if not isinstance(component, implicit) or not _low_rank(component):
        return None

    def score(
        users: Sequence[str], histories: Sequence[Sequence[str]], items: Sequence[str]
    ) -> np.ndarray:
        factors = score_factors(component, users, histories, items)
        assert factors is not None
        return factors.dense().astype("float32")

    return score
