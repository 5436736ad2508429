"""RAFT examples, the out-of-fold prior and retrieval, on the trained run folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from personasim.agents.prior import CFPrior


def test_one_rating_example_per_train_rating_and_watch_examples(trained_run):
    examples = pd.read_parquet(trained_run / "adapters" / "examples.parquet")
    inter = pd.read_parquet(trained_run / "data" / "interactions.parquet")
    train = inter[inter.split == "train"]
    rate = examples[examples.task == "rate"]
    assert len(rate) == len(train)
    assert set(zip(rate.user_id, rate.item_id, strict=True)) == set(
        zip(train.user_id, train.item_id, strict=True)
    )
    merged = rate.merge(train, on=["user_id", "item_id"])
    assert (merged.target == merged.rating.round().astype(int)).all()
    watch = examples[examples.task == "watch"]
    assert set(watch.target) == {0, 1} and watch.target.mean() == 0.5
    seen = set(zip(train.user_id, train.item_id, strict=True))
    negatives = watch[watch.target == 0]
    assert not any(
        (u, i) in seen for u, i in zip(negatives.user_id, negatives.item_id, strict=True)
    )
    assert examples.persona.notna().all()


def test_the_target_items_own_rationale_is_never_in_its_prompt(trained_run):
    examples = pd.read_parquet(trained_run / "adapters" / "examples.parquet")
    items = pd.read_parquet(trained_run / "data" / "items.parquet").set_index("item_id")
    rate = examples[examples.task == "rate"]
    assert rate.question.str.startswith("A past rating of yours: you rated").all()
    for row in rate.itertuples():
        title = items.loc[row.item_id, "title"]
        context = row.question.split("\n")[0]
        assert f"you rated {title} (" not in context, row


def test_out_of_fold_prior_does_not_see_the_rating(trained_run):
    examples = pd.read_parquet(trained_run / "adapters" / "examples.parquet")
    rate = examples[examples.task == "rate"]
    prior = CFPrior.load(trained_run / "adapters")
    in_sample = np.array(
        [prior.predict(u, [i])[0] for u, i in zip(rate.user_id, rate.item_id, strict=True)]
    )
    oof_error = np.sqrt(np.mean((rate.prior - rate.target) ** 2))
    in_error = np.sqrt(np.mean((in_sample - rate.target) ** 2))
    assert oof_error > in_error  # a model that saw the rating predicts it better
    summary = json.loads((trained_run / "adapters" / "manifest.json").read_text())["summary"]
    assert summary["oof_prior_rmse"] == pytest.approx(oof_error, abs=1e-4)
