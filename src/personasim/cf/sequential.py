"""A sequential scorer: SASRec (torch-rechub's model) as a LensKit component.

SASRec (Kang & McAuley, ICDM 2018) reads a user's items in time order with causal
self-attention and scores each item by how well it follows them: what a user takes
next, where the whole-history scorers (:mod:`personasim.cf.implicit`) see a set. The
network is torch-rechub's :class:`~torch_rechub.models.matching.SASRec`; this module
trains it on each user's training items in time order (binary cross-entropy of the next
item against one sampled item per position, as the paper) and serves it behind LensKit's
scorer interface, so it joins a top-N pipeline like any LensKit scorer.

A query's history is the user's training items in time order; items the query adds (a
history holding items the training log does not have for that user, then the query's
``session_items``) come after them, in the order given: a session's watches are the most
recent history.

The network trains and scores on one CPU thread: its sums then come in one order on
every machine (two threads gave other weights, 0.01 apart after ten epochs on 60 users),
and it is too small for a second thread to speed it up (17.8 s an ML-1M epoch on one
thread, 17.5 s on two).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from lenskit.data import Dataset, ItemList, QueryInput, RecQuery, Vocabulary
from lenskit.pipeline import Component
from lenskit.training import Trainable, TrainingOptions
from pydantic import BaseModel, Field

__all__ = ["SASRecConfig", "SASRecScorer"]


class SASRecConfig(BaseModel):
    """Hyper-parameters of :class:`SASRecScorer` (the paper's MovieLens-1M model with
    a shorter window and fewer epochs, for a CPU)."""

    embedding_size: int = Field(64, ge=2)
    """Width of the item embeddings and of the attention blocks."""
    max_len: int = Field(50, ge=2)
    """The most recent items the model reads."""
    blocks: int = Field(2, ge=1)
    """Self-attention blocks."""
    heads: int = Field(1, ge=1)
    """Attention heads per block."""
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    """Dropout rate in training."""
    epochs: int = Field(10, ge=1)
    """Passes over every user's sequence."""
    batch_size: int = Field(128, ge=2)
    """Training windows per step."""
    learning_rate: float = Field(1e-3, gt=0.0)
    """Adam's learning rate."""


class SASRecScorer(Component[ItemList], Trainable):
    """Scores items by SASRec's next-item logit after the user's history.

    Items the model has not seen score NaN; so does every item for a user with no
    known history.
    """

    config: SASRecConfig
    items_: Vocabulary
    model_: Any
    sequences_: dict[str, np.ndarray]

    def train(self, data: Dataset, options: TrainingOptions | None = None) -> None:
        """Fit SASRec on `data` (its timestamps give each user's order; without them,
        the log's order)."""
        options = options or TrainingOptions()
        if hasattr(self, "model_") and not options.retrain:
            return
        log = data.interaction_table(format="pandas", original_ids=True)
        order = ["user_id", "timestamp"] if "timestamp" in log.columns else ["user_id"]
        log = log.sort_values(order, kind="stable")
        self.items_ = data.items
        numbers = self.items_.numbers(log["item_id"].to_numpy()).astype(np.int64) + 1
        users = log["user_id"].astype(str).to_numpy()
        starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else []
        ends = np.r_[starts[1:], len(users)] if len(users) else []
        self.sequences_ = {users[a]: numbers[a:b] for a, b in zip(starts, ends, strict=True)}
        seed = int(options.random_generator().integers(2**31))
        self.model_ = _train(list(self.sequences_.values()), len(self.items_), self.config, seed)

    def history(self, query: RecQuery) -> np.ndarray:
        """The query's item numbers (1-based) in the order the model reads them."""
        known = None if query.user_id is None else self.sequences_.get(str(query.user_id))
        base = np.zeros(0, dtype=np.int64) if known is None else known
        given = self._numbers(query.history_items)
        if given is not None:
            base = np.concatenate([base[np.isin(base, given)], given[~np.isin(given, base)]])
        session = self._numbers(query.session_items)
        if session is not None:
            base = np.concatenate([base, session])
        return base

    def __call__(self, query: QueryInput, items: ItemList) -> ItemList:
        """Scores of `items` after the query's history."""
        query = RecQuery.create(query)
        scores = np.full(len(items), np.nan, dtype=np.float32)
        history = self.history(query)
        targets = items.numbers(vocabulary=self.items_, missing="negative")
        known = targets >= 0
        if len(history) and known.any():
            scores[known] = self.logits([history], targets[known] + 1)[0]
        return ItemList(items, scores=scores)

    def logits(self, histories: Sequence[np.ndarray], targets: np.ndarray) -> np.ndarray:
        """``[len(histories), len(targets)]`` next-item logits of item numbers
        (1-based) after each history (non-empty, oldest first)."""
        with torch.no_grad(), _one_thread():
            users = _user_embeddings(self.model_, histories, self.config.max_len)
            table = self.model_.item_emb.embed_dict["seq"].weight
            return (users @ table[torch.as_tensor(targets, dtype=torch.long)].T).numpy()

    def _numbers(self, items: ItemList | None) -> np.ndarray | None:
        if items is None or not len(items):
            return None
        numbers = items.numbers(vocabulary=self.items_, missing="negative")
        return (numbers[numbers >= 0] + 1).astype(np.int64)


def _network(n_items: int, config: SASRecConfig) -> Any:
    from torch_rechub.basic.features import SequenceFeature
    from torch_rechub.basic.initializers import RandomNormal
    from torch_rechub.models.matching import SASRec

    features = [
        SequenceFeature(
            "seq",
            vocab_size=n_items + 1,
            embed_dim=config.embedding_size,
            pooling="concat",
            initializer=RandomNormal(0.0, 0.02),
        ),  # fmt: skip
        SequenceFeature("pos", n_items + 1, config.embedding_size, "concat", shared_with="seq"),
        SequenceFeature("neg", n_items + 1, config.embedding_size, "concat", shared_with="seq"),
    ]
    return SASRec(
        features,
        max_len=config.max_len,
        dropout_rate=config.dropout,
        num_blocks=config.blocks,
        num_heads=config.heads,
    )


def _windows(sequences: Sequence[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (input, next item) window of `max_len` positions, cut from each sequence's
    end; left-aligned, 0-padded on the right (the network reads the last non-zero
    position as the user's)."""
    inputs, nexts = [], []
    for seq in sequences:
        end = len(seq)
        while end >= 2:
            start = max(0, end - 1 - max_len)
            window = np.zeros(max_len, dtype=np.int64)
            target = np.zeros(max_len, dtype=np.int64)
            window[: end - 1 - start] = seq[start : end - 1]
            target[: end - 1 - start] = seq[start + 1 : end]
            inputs.append(window)
            nexts.append(target)
            end = start + 1
    if not inputs:
        return np.zeros((0, max_len), np.int64), np.zeros((0, max_len), np.int64)
    return np.stack(inputs), np.stack(nexts)


def _train(sequences: Sequence[np.ndarray], n_items: int, config: SASRecConfig, seed: int) -> Any:
    """SASRec trained on `sequences` (item numbers 1..n_items, oldest first)."""
    inputs, nexts = _windows(sequences, config.max_len)
    with torch.random.fork_rng(), _one_thread():
        torch.manual_seed(seed)
        model = _network(n_items, config)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        rng = np.random.default_rng(seed)
        model.train()
        for _ in range(config.epochs if len(inputs) else 0):
            for batch in np.array_split(rng.permutation(len(inputs)), _steps(len(inputs), config)):
                if len(batch) < 2:
                    continue
                seq, pos = inputs[batch], nexts[batch]
                neg = rng.integers(1, n_items + 1, size=pos.shape)
                neg = np.where(neg == pos, rng.integers(1, n_items + 1, size=pos.shape), neg)
                x = {"seq": torch.as_tensor(seq), "pos": torch.as_tensor(pos)}
                x["neg"] = torch.as_tensor(neg * (pos > 0))
                pos_logits, neg_logits = model(x)
                mask = x["pos"] > 0
                loss = loss_fn(
                    torch.cat([pos_logits[mask], neg_logits[mask]]),
                    torch.cat([torch.ones(int(mask.sum())), torch.zeros(int(mask.sum()))]),
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        model.eval()
    return model


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside the block (restored after)."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def _steps(n: int, config: SASRecConfig) -> int:
    return max(1, -(-n // config.batch_size))


def _user_embeddings(model: Any, histories: Sequence[np.ndarray], max_len: int) -> torch.Tensor:
    """The network's output at each history's last item: ``[len(histories), dim]``."""
    rows = np.zeros((max(len(histories), 2), max_len), dtype=np.int64)  # the network
    for k, history in enumerate(histories):  # squeezes a batch of one: pad to two
        last = np.asarray(history[-max_len:], dtype=np.int64)
        rows[k, : len(last)] = last
    model.mode = "user"
    try:
        out = model({"seq": torch.as_tensor(rows)})
    finally:
        model.mode = None
    return out[: len(histories)]
