"""SASRec learns what follows what, reads a session's watches as the latest history, and
its scores are the network's own next-item logits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from lenskit.data import ItemList, RecQuery

from personasim.cf.dataset import training_dataset, training_options
from personasim.cf.sequential import SASRecConfig, SASRecScorer

N_ITEMS = 12
SMALL = SASRecConfig(
    embedding_size=16,
    max_len=8,
    blocks=1,
    dropout=0.0,
    epochs=150,
    batch_size=32,
    learning_rate=0.01,
)


def _chains(users: int = 40, length: int = 10, seed: int = 0) -> pd.DataFrame:
    """Each user walks the cycle 0 -> 1 -> ... -> 11 -> 0 from a random start: the next
    item is the last one plus one, and every item is equally popular."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        start = int(rng.integers(N_ITEMS))
        for step in range(length):
            rows.append((f"u{u}", f"i{(start + step) % N_ITEMS}", 4.0, 1000.0 * step))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


@pytest.fixture(scope="module")
def chains():
    log = _chains()
    scorer = SASRecScorer(SMALL)
    scorer.train(training_dataset(log), training_options(0, len(log)))
    return log, scorer


def _catalogue() -> ItemList:
    return ItemList(item_ids=np.array([f"i{k}" for k in range(N_ITEMS)], dtype=object))


def test_the_next_item_of_the_chain_scores_highest(chains):
    log, scorer = chains
    for user, rows in log.groupby("user_id"):
        last = int(rows.sort_values("timestamp")["item_id"].iloc[-1][1:])
        scores = scorer(RecQuery(user_id=user), _catalogue()).scores()
        assert int(np.argmax(scores)) == (last + 1) % N_ITEMS, user


def test_a_sessions_watches_are_the_latest_history(chains):
    _, scorer = chains
    # u0's chain ends somewhere; a session that then took i3 and i4 points at i5
    session = ItemList(item_ids=np.array(["i3", "i4"], dtype=object))
    scores = scorer(RecQuery(user_id="u0", session_items=session), _catalogue()).scores()
    assert int(np.argmax(scores)) == 5
    assert list(scorer.history(RecQuery(user_id="u0", session_items=session))[-2:]) == [
        scorer.items_.number("i3") + 1,
        scorer.items_.number("i4") + 1,
    ]


def test_a_given_history_keeps_the_training_order(chains):
    log, scorer = chains
    mine = log[log.user_id == "u1"].sort_values("timestamp")["item_id"].tolist()
    shuffled = ItemList(item_ids=np.array(sorted(mine), dtype=object))  # LensKit's lookup
    plain = scorer(RecQuery(user_id="u1"), _catalogue()).scores()
    looked_up = scorer(RecQuery(user_id="u1", history_items=shuffled), _catalogue()).scores()
    np.testing.assert_allclose(looked_up, plain)


def test_scores_are_the_networks_next_item_logits(chains):
    _, scorer = chains
    history = scorer.sequences_["u2"]
    targets = np.arange(1, N_ITEMS + 1)
    ours = scorer.logits([history, history[:3]], targets)
    # the network's training forward: the logit of `pos` at each position
    for row, seen in zip(ours, [history, history[:3]], strict=True):
        last = seen[-SMALL.max_len :]
        for target in targets:
            seq = np.zeros((2, SMALL.max_len), dtype=np.int64)
            pos = np.zeros((2, SMALL.max_len), dtype=np.int64)
            seq[:, : len(last)] = last
            pos[:, len(last) - 1] = target
            x = {"seq": torch.as_tensor(seq), "pos": torch.as_tensor(pos)}
            x["neg"] = x["pos"]
            with torch.no_grad():
                pos_logits, _ = scorer.model_(x)
            assert row[target - 1] == pytest.approx(float(pos_logits[0, len(last) - 1]), abs=1e-5)


def test_unknown_items_and_users_without_history_score_nan(chains):
    _, scorer = chains
    items = ItemList(item_ids=np.array(["i1", "not-an-item"], dtype=object))
    known = scorer(RecQuery(user_id="u0"), items).scores()
    assert np.isfinite(known[0]) and np.isnan(known[1])
    assert np.isnan(scorer(RecQuery(user_id="nobody"), items).scores()).all()


def test_the_same_seed_gives_the_same_model():
    log = _chains(users=10)
    runs = []
    for _ in range(2):
        scorer = SASRecScorer(SMALL.model_copy(update={"epochs": 2}))
        scorer.train(training_dataset(log), training_options(7, len(log)))
        runs.append(scorer(RecQuery(user_id="u3"), _catalogue()).scores())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_as_a_recommender_it_leaves_out_what_the_user_took(chains):
    from lenskit import recommend
    from lenskit.pipeline import topn_pipeline

    log, _ = chains
    pipeline = topn_pipeline(SASRecScorer(SMALL.model_copy(update={"epochs": 2})))
    pipeline.train(training_dataset(log), training_options(0, len(log)))
    taken = set(log[log.user_id == "u4"]["item_id"])
    listed = recommend(pipeline, "u4", 5).ids()
    assert len(listed) == min(5, N_ITEMS - len(taken))
    assert not taken & set(listed)


def test_the_model_is_the_same_whatever_threads_torch_was_given():
    """Trained and scored on one thread: a run gives the same model on any machine
    (the simulation fits the stacked prior's model again and must get the stored one)."""
    log = _chains(users=10)
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            scorer = SASRecScorer(SMALL.model_copy(update={"epochs": 5, "embedding_size": 64}))
            scorer.train(training_dataset(log), training_options(3, len(log)))
            runs.append(scorer(RecQuery(user_id="u3"), _catalogue()).scores())
            assert torch.get_num_threads() == threads  # and torch is left as it was
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(runs[0], runs[1])
