"""The watch prior: calibrated log-odds of an implicit scorer, out of fold for the
agents' own watch examples, added exactly to logit(yes) - logit(no)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from personasim.agents.answers import with_watch_prior
from personasim.agents.samplers import SamplerContext, sample_negatives
from personasim.agents.watch_prior import WatchPrior, fit_watch_prior


def _watch_examples(train: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    catalogue = np.array(sorted(train["item_id"].unique()))
    rows = []
    for user, part in train.groupby("user_id"):
        positives = part["item_id"].sample(5, random_state=seed).tolist()
        unrated = [i for i in catalogue if i not in set(part["item_id"])]
        rows += [(user, i, 1) for i in positives]
        rows += [(user, i, 0) for i in rng.choice(unrated, 5, replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "target"])


@pytest.fixture(scope="module")
def split(small_log):
    ratings = small_log.ratings.astype({"user_id": str, "item_id": str})
    users = sorted(ratings["user_id"].unique())
    simulated = set(users[:30])
    train = ratings[ratings["user_id"].isin(simulated)].reset_index(drop=True)
    others = ratings[~ratings["user_id"].isin(simulated)].reset_index(drop=True)
    return train, others, sorted(simulated), sorted(ratings["item_id"].unique())


def test_own_examples_are_scored_by_models_that_did_not_see_them(split):
    """With popularity the out-of-fold score is checkable by hand: an item's count
    without the held-out fold's ratings."""
    train, others, users, items = split
    watch = _watch_examples(train)
    prior, odds = fit_watch_prior("popularity", train, others, users, items, watch, seed=3)
    # the same folds as the prior draws them
    rng = np.random.default_rng(3)
    fold_of_rating = rng.integers(0, 5, len(train))
    key = train["user_id"] + "\x1f" + train["item_id"]
    fold = dict(zip(key, fold_of_rating, strict=True))
    everyone = pd.concat([train, others])
    full = everyone["item_id"].value_counts()
    positives = watch[watch["target"] == 1].head(20)
    for row in positives.itertuples():
        f = fold[row.user_id + "\x1f" + row.item_id]
        held = train[(fold_of_rating == f) & (train["item_id"] == row.item_id)]
        expected = full[row.item_id] - len(held)
        assert prior.log_odds_of(np.array([expected]))[0] == pytest.approx(odds[row.Index])
        assert len(held) >= 1  # the positive itself was held out
    # the stored matrix is the model fitted on everything
    np.testing.assert_allclose(prior.scores(users[0], items[:5]), full.reindex(items[:5]).fillna(0))


@pytest.mark.parametrize("kind", ["popularity", "itemknn", "implicit_mf"])
def test_the_prior_tells_positives_from_negatives_and_is_monotone(split, kind, tmp_path):
    train, others, users, items = split
    watch = _watch_examples(train)
    prior, odds = fit_watch_prior(kind, train, others, users, items, watch, seed=0)
    assert odds.shape == (len(watch),) and np.isfinite(odds).all()
    if kind != "implicit_mf":  # 60 synthetic users are too few for 50 factors
        assert roc_auc_score(watch["target"], odds) > 0.6
    grid = np.linspace(prior.knots[0].min() - 1, prior.knots[0].max() + 1, 50)
    assert np.all(np.diff(prior.log_odds_of(grid)) >= 0)  # isotonic: never decreasing
    prior.save(tmp_path)
    again = WatchPrior.load(tmp_path)
    np.testing.assert_allclose(again.log_odds(users[1], items), prior.log_odds(users[1], items))
    # a user without a row: the mean row of the simulated users
    np.testing.assert_allclose(
        again.log_odds("not-a-user", items[:3]),
        prior.log_odds_of(np.mean([prior.scores(u, items[:3]) for u in users], axis=0)),
        rtol=1e-5,
    )


def test_the_prior_moves_the_yes_no_log_odds_by_exactly_its_value():
    log_probs = torch.log_softmax(torch.randn(4, 40), dim=-1)
    yes, no = [3, 7], [11]
    odds = torch.tensor([0.0, 1.5, -2.0, 4.0])
    adjusted = with_watch_prior(log_probs, yes, no, odds)
    torch.testing.assert_close(adjusted.exp().sum(dim=-1), torch.ones(4))

    def logit(lp):
        return torch.logsumexp(lp[:, yes], -1) - torch.logsumexp(lp[:, no], -1)

    torch.testing.assert_close(logit(adjusted) - logit(log_probs), odds)
    assert with_watch_prior(log_probs, yes, no, None) is log_probs


def test_a_mixture_of_samplers_splits_the_negatives_without_repeats():
    items = np.array([f"i{k}" for k in range(200)])
    ctx = SamplerContext(items=items, counts=np.arange(1, 201, dtype=float))
    rng = np.random.default_rng(0)
    drawn = sample_negatives({"uniform": 0.5, "popularity": 0.5}, ctx, {"i0", "i1"}, 60, rng)
    assert len(drawn) == 60 == len(set(drawn))
    assert not {"i0", "i1"} & set(drawn)
    # the popularity half leans to popular items; uniform alone does not
    alone = sample_negatives("uniform", ctx, set(), 60, np.random.default_rng(0))
    rank = {f"i{k}": k for k in range(200)}
    assert np.mean([rank[i] for i in drawn]) > np.mean([rank[i] for i in alone])


def test_the_stacked_prior_keeps_every_difference_and_scores_own_examples_out_of_fold(
    split, small_log
):
    """The choice model as the prior: logistic calibration (no isotonic ties inside a
    list), and each fold's examples scored by features fitted without that fold."""
    from personasim.agents.choice_prior import fit_choice_prior

    train, others, users, _ = split
    items = small_log.items.assign(train_count=1)
    watch = _watch_examples(train)
    prior, odds, report = fit_choice_prior(
        "stacked", train, others, items, users, watch, seed=0, exclude=["bpr"]
    )
    assert report["positives"] > 0 and "bpr" not in report["families"]
    assert np.isfinite(odds).all() and roc_auc_score(watch["target"], odds) > 0.6
    row = prior.log_odds(users[0], prior.items)
    raw = prior.scores(users[0], prior.items)
    distinct = np.unique(raw)
    assert len(np.unique(row)) == len(distinct)  # strictly monotone: no new ties
    assert np.all(np.diff(prior.log_odds_of(distinct)) > 0)
    # in-sample scores of the positives are higher than out-of-fold ones: the folds
    # really held them out
    positives = watch["target"].to_numpy() == 1
    in_sample = np.array(
        [
            prior.log_odds(u, [i])[0]
            for u, i in watch.loc[positives, ["user_id", "item_id"]].itertuples(index=False)
        ]
    )
    assert in_sample.mean() > odds[positives].mean()


def test_a_user_without_a_row_gets_the_mean_row_of_the_users_that_stand_for_them():
    """A cold user (added by profile text) is not the score of an empty row (P(watch)
    of 0.0001 for Star Wars): the mean of their persona's rows, or of every row."""
    matrix = np.array([[4.0, 1.0, 0.0], [2.0, 3.0, 0.0], [0.0, 0.0, 9.0]])
    knots = np.array([[0.0, 10.0], [0.05, 0.95]])
    prior = WatchPrior("stacked", ["a", "b", "c"], ["x", "y", "z"], matrix, knots)
    items = ["x", "y", "z", "unknown-item"]
    np.testing.assert_allclose(
        prior.log_odds("cold", items, like=["a", "b", "not-a-row"]),
        prior.log_odds_of(np.array([3.0, 2.0, 0.0, 0.0])),
    )
    np.testing.assert_allclose(
        prior.log_odds("cold", items), prior.log_odds_of(np.array([2.0, 4 / 3, 3.0, 0.0]))
    )
    # a known user keeps their own row whatever `like` says
    np.testing.assert_allclose(prior.log_odds("a", items, like=["c"]), prior.log_odds("a", items))
    # an item no training data holds gets the lowest score, never one above every item
    low = WatchPrior("stacked", ["a"], ["x", "y"], np.array([[-5.0, -2.0]]), knots, fallback=-5.0)
    assert low.log_odds("a", ["new-item"])[0] == low.log_odds("a", ["x"])[0]


def test_a_logistic_calibration_keeps_apart_what_a_user_is_very_unlikely_to_take(tmp_path):
    """Most of a catalogue is far below P = 1e-3 for a given user; a floor there tied
    the obscure items of a list (0.919 -> 0.871 AUC on the ML-1M protocol)."""
    from personasim.agents.watch_prior import _calibrate

    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0, 1, 200), rng.normal(-4, 1, 2000)])
    labels = np.concatenate([np.ones(200), np.zeros(2000)])
    knots = _calibrate(scores, labels, "logistic")
    prior = WatchPrior("stacked", ["u"], ["a"], np.zeros((1, 1)), knots, eps=1e-6)
    far = knots[0][(knots[1] > 2e-6) & (knots[1] < 5e-4)]  # under a 1e-3 floor: all tied
    assert len(far) > 3 and np.all(np.diff(prior.log_odds_of(far)) > 0)
    prior.save(tmp_path)
    assert WatchPrior.load(tmp_path).eps == 1e-6


def test_a_session_moves_the_prior_through_its_model_and_nothing_else_does():
    """After a watch in the session the stacked model scores the user's items again
    (same calibration); without a watch, a model or a row, the matrix answers."""

    class Session:
        def __init__(self):
            self.asked = []

        def scores(self, user, items, recent=()):
            self.asked.append((user, list(items), list(recent)))
            return np.full(len(items), 7.0)

    knots = np.array([[0.0, 10.0], [0.05, 0.95]])
    matrix = np.array([[4.0, 1.0]])
    prior = WatchPrior("stacked", ["a"], ["x", "y"], matrix, knots, fallback=1.0)
    items = ["x", "y", "unknown-item"]
    before = prior.log_odds("a", items)
    assert (prior.log_odds("a", items, recent=["z"]) == before).all()  # no model: no move
    prior.session = Session()
    np.testing.assert_allclose(prior.log_odds("a", items), before)
    moved = prior.log_odds("a", items, recent=["z", "w"])
    np.testing.assert_allclose(moved, prior.log_odds_of(np.array([7.0, 7.0, 1.0])))
    assert prior.session.asked == [("a", items, ["z", "w"])]
    # a user without a row keeps the stand-ins' mean whatever they watched
    np.testing.assert_allclose(prior.log_odds("cold", items, recent=["z"]), before)


@pytest.mark.parametrize("kind", ["popularity", "implicit_mf", "bpr"])
def test_a_watch_prior_kept_as_factors_scores_as_its_lenskit_model(split, kind, tmp_path):
    """Low-rank scorers keep their factors instead of a users x items matrix; each
    user's scores are the fitted model's per-user LensKit scores, also after saving."""
    from personasim.cf import ImplicitSettings, fit_implicit
    from personasim.cf.factors import ScoreFactors

    train, others, users, items = split
    watch = _watch_examples(train)
    settings = ImplicitSettings(epochs=3)
    full = fit_implicit(
        kind, pd.concat([train, others], ignore_index=True), seed=0, settings=settings
    )
    prior, _ = fit_watch_prior(kind, train, others, users, items, watch, seed=0, full_scorer=full)
    assert isinstance(prior.matrix, ScoreFactors)
    for user in users[:6]:
        np.testing.assert_allclose(prior.scores(user, items), full.scores(user, items), atol=2e-4)
    lowest = min(full.scores(u, items).min() for u in users)
    assert prior.fallback == pytest.approx(lowest, abs=2e-4)
    prior.save(tmp_path)
    again = WatchPrior.load(tmp_path)
    np.testing.assert_allclose(
        again.log_odds("a cold user", items[:9], like=users[:3]),
        prior.log_odds("a cold user", items[:9], like=users[:3]),
    )
    mean = np.mean([full.scores(u, items[:9]) for u in users[:3]], axis=0)
    np.testing.assert_allclose(
        prior.log_odds("a cold user", items[:9], like=users[:3]), prior.log_odds_of(mean), atol=1e-3
    )
