"""RAFT examples, the out-of-fold prior and retrieval, on the trained run folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from personasim.agents.prior import CFPrior
from personasim.agents.prior_fitting import BLEND_PARTS, fit_prior, out_of_fold_priors
from personasim.config import CFConfig
from personasim.evaluation.metrics import rmse


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


@pytest.fixture(scope="module")
def run_data(trained_run):
    data = trained_run / "data"
    inter = pd.read_parquet(data / "interactions.parquet")
    train = inter[inter.split == "train"].reset_index(drop=True)
    items = pd.read_parquet(data / "items.parquet")
    others = pd.read_parquet(data / "others.parquet")
    return train, others, sorted(train.user_id.astype(str).unique()), items


def test_blend_prior_is_the_least_squares_stack_of_its_parts(run_data):
    """Its out-of-fold error is at most the best part's (each part alone is a feasible
    stack), its weights are non-negative, and its matrix is the same stack of theirs."""
    train, others, users, items = run_data
    args = (CFConfig(), train, others, users, items, (1.0, 5.0), 0)
    blend = fit_prior("blend", *args)
    parts = {p: fit_prior(p, *args) for p in BLEND_PARTS}
    errors = {p: rmse(train.rating, f.out_of_fold) for p, f in parts.items()}
    assert rmse(train.rating, blend.out_of_fold) <= min(errors.values()) + 1e-9
    weights = blend.weights
    assert all(weights[p] >= 0 for p in BLEND_PARTS) and sum(weights[p] for p in BLEND_PARTS) > 0.5
    stacked = weights["intercept"] + sum(weights[p] * parts[p].prior.dense() for p in BLEND_PARTS)
    np.testing.assert_allclose(blend.prior.dense(), np.clip(stacked, 1.0, 5.0), atol=1e-9)


def test_out_of_fold_predictions_do_not_depend_on_the_other_kinds_asked_for(run_data):
    train, others, _, _ = run_data
    config = CFConfig()
    both = out_of_fold_priors(["item_knn", "biased_mf"], config, train, others, (1.0, 5.0), 0)
    alone = out_of_fold_priors(["item_knn"], config, train, others, (1.0, 5.0), 0)
    np.testing.assert_array_equal(both["item_knn"], alone["item_knn"])


def test_an_out_of_fold_prediction_never_sees_the_rating_it_predicts(run_data):
    """Changing one train rating leaves that rating's out-of-fold prediction where it
    was, while the model fitted on every rating (the prior's matrix) moves with it.
    (The folds' fit is the same for every kind: two quick ones stand for all.)"""
    train, others, users, items = run_data
    config, kinds, scale = CFConfig(), ["user_item_bias", "biased_mf"], (1, 5)
    before = out_of_fold_priors(kinds, config, train, others, scale, 0)
    fitted = fit_prior("user_item_bias", config, train, others, users, items, scale, 0).prior
    for row in (0, len(train) - 1):
        user, item, rating = train.loc[row, ["user_id", "item_id", "rating"]]
        changed = train.copy()
        changed.loc[row, "rating"] = 1.0 if rating >= 3 else 5.0
        after = out_of_fold_priors(kinds, config, changed, others, scale, 0)
        for kind in kinds:
            assert after[kind][row] == pytest.approx(before[kind][row], abs=1e-6), (kind, row)
        refit = fit_prior("user_item_bias", config, changed, others, users, items, scale, 0)
        moved = (
            refit.prior.predict(str(user), [str(item)])[0]
            - fitted.predict(str(user), [str(item)])[0]
        )
        assert abs(moved) > 0.01  # (a model that saw the rating would move)


def test_the_cap_takes_that_many_rating_examples_and_zero_takes_all(trained_run):
    from personasim.agents.examples import select_examples
    from personasim.config import AgentConfig

    examples = pd.read_parquet(trained_run / "adapters" / "examples.parquet")
    rate = (examples.task == "rate").sum()
    watch = (examples.task == "watch").sum()
    capped = select_examples(
        examples,
        AgentConfig(max_examples_per_adapter=10),
        errors=None,
        rng=np.random.default_rng(0),
    )
    assert (capped.task == "rate").sum() == 10
    assert (capped.task == "watch").sum() == max(1, round(watch * 10 / rate))
    everything = select_examples(
        examples,
        AgentConfig(max_examples_per_adapter=0),
        errors=None,
        rng=np.random.default_rng(0),
    )
    assert len(everything) == len(examples)


@pytest.mark.parametrize("kind", ["user_item_bias", "biased_mf"])
def test_a_prior_kept_as_factors_is_lenskits_scores_filled_by_the_bias_model(
    run_data, kind, tmp_path
):
    """The reference: LensKit's scorer per user over the catalogue, pairs it cannot score
    filled by the user+item bias model, clipped to the scale (the dense path)."""
    from lenskit.data import ItemList

    from personasim.cf.explicit import fit_baseline, training_dataset
    from personasim.cf.factors import ScoreFactors

    train, others, users, items = run_data
    config = CFConfig()
    prior = fit_prior(kind, config, train, others, users, items, (1.0, 5.0), 0).prior
    assert isinstance(prior.matrix, ScoreFactors)
    dataset = training_dataset(pd.concat([train, others], ignore_index=True))
    scorer = fit_baseline(kind, config, dataset, 0)
    bias = fit_baseline("user_item_bias", config, dataset, 0)
    columns = ItemList([*prior.items, "an item nobody rated"])
    asked = [*users[:5], "a user nobody knows"]
    for user in asked:
        expected = scorer(user, columns).scores()
        expected = np.where(np.isnan(expected), bias(user, columns).scores(), expected)
        expected = np.clip(expected, 1.0, 5.0)
        got = prior.predict(user, prior.items)
        if user in prior.users:
            np.testing.assert_allclose(got, expected[:-1], rtol=1e-5, atol=1e-5)
            assert prior.user_fallback[user] == pytest.approx(expected[-1], abs=1e-5)
    prior.save(tmp_path)
    again = CFPrior.load(tmp_path)
    assert CFPrior.saved_in(tmp_path) and not (tmp_path / "prior.npy").exists()
    np.testing.assert_allclose(
        again.predict(users[0], prior.items), prior.predict(users[0], prior.items)
    )


def test_out_of_fold_predictions_of_a_factor_model_are_lenskits_per_user(run_data):
    """The fast path (every held-out pair from the fold model's factors at once) against
    the plain one: LensKit's scorer per user, NaN filled by the user+item bias model."""
    from lenskit.data import ItemList

    from personasim.cf.explicit import fit_baseline, training_dataset

    train, others, _, _ = run_data
    config = CFConfig()
    got = out_of_fold_priors(["biased_mf"], config, train, others, (1.0, 5.0), 4)["biased_mf"]
    fold_of = np.random.default_rng(4).integers(0, 5, len(train))
    cols = ["user_id", "item_id", "rating", "timestamp"]
    expected = np.full(len(train), np.nan)
    for fold in range(5):
        held = fold_of == fold
        fit_on = pd.concat([train.loc[~held, cols], others[cols]], ignore_index=True)
        dataset = training_dataset(fit_on)
        mf = fit_baseline("biased_mf", config, dataset, 4)
        bias = fit_baseline("user_item_bias", config, dataset, 4)
        for user, part in train[held].groupby("user_id"):
            asked = ItemList(part["item_id"].to_numpy())
            scores = mf(user, asked).scores()
            scores = np.where(np.isnan(scores), bias(user, asked).scores(), scores)
            expected[part.index.to_numpy()] = np.clip(scores, 1.0, 5.0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
