"""The checks of the verdict against its own model, on sessions made up to order: the
ladder finds the smallest share of random items the simulation notices, and
leave-family-out reports each recommender's rank with and without its family."""

from __future__ import annotations

import numpy as np
import pandas as pd

from personasim.pipeline.simulate_checks import ladder_check, leave_family_out_check
from personasim.simulation import SessionLog

USERS = [f"u{k}" for k in range(80)]


def _log(watch_share: float, seed: int) -> SessionLog:
    rng = np.random.default_rng(seed)
    shown = np.full(len(USERS), 12)
    watched = rng.binomial(shown, watch_share)
    sessions = pd.DataFrame(
        {"user_id": USERS, "shown": shown, "watched": watched, "liked": watched // 2}
    )
    return SessionLog(events=pd.DataFrame(), sessions=sessions)


def test_the_ladder_finds_the_share_the_simulation_notices():
    pages = {u: [[f"i{k}" for k in range(4 * p, 4 * p + 4)] for p in range(3)] for u in USERS}
    catalogue = [f"i{k}" for k in range(200)]
    test = pd.DataFrame({"user_id": USERS, "item_id": ["i0"] * len(USERS)})
    # the simulated users notice a degraded session only from half of it on
    share_watched = {0.1: 0.5, 0.25: 0.5, 0.5: 0.3, 1.0: 0.1}
    asked = []

    def simulate(name, degraded, variant, prepare=None):
        share = float(variant.removeprefix("ladder-"))
        asked.append((name, share))
        replaced = sum(
            a != b
            for u in USERS
            for old, new in zip(pages[u], degraded[u], strict=True)
            for a, b in zip(old, new, strict=True)
        )
        assert replaced == round(share * 12) * len(USERS)
        return _log(share_watched[share], seed=0)  # the same draws: only the share moves

    result = ladder_check(
        "best",
        pages,
        _log(0.5, seed=0),
        {u: [] for u in USERS},
        catalogue,
        test,
        simulate,
        shares=[1.0, 0.5, 0.25, 0.1],
        k=10,
        seed=0,
        rounds=300,
    )
    assert asked == [("best", 0.1), ("best", 0.25), ("best", 0.5), ("best", 1.0)]
    assert result["monotone"]["watch_rate"] and result["monotone"]["likes"]
    assert result["resolution"]["watch_rate"] == 0.5
    assert result["steps"][0]["watch_rate_drop"]["difference"] == 0
    # i0 is every user's held-out item and sits first on page 1: all random, it is gone
    assert result["steps"][-1]["ndcg"] == 0 < result["ndcg"]
    assert "50% random items" in result["sentence"]


def test_leave_family_out_reports_ranks_with_and_without_and_restores_the_prior():
    metrics = {
        "popular": {"watch_rate": 0.40, "likes": 2.0},
        "itemknn": {"watch_rate": 0.50, "likes": 3.0},
        "mf": {"watch_rate": 0.30, "likes": 1.0},
        "random": {"watch_rate": 0.10, "likes": 0.2},
    }
    in_use = []
    fitted = []

    def simulate(name, pages, variant, prepare=None):
        prepare()
        # without its own family item-kNN falls below everyone but random
        share = {"itemknn": 0.2, "popular": 0.39, "mf": 0.31}[name]
        log = _log(share, seed=1)
        log.sessions["watched"] = (log.sessions["shown"] * share).astype(int)
        log.sessions["liked"] = {"itemknn": 0.5, "popular": 2.0, "mf": 1.0}[name]
        return log

    def check(**only):
        return leave_family_out_check(
            metrics,
            {n: {} for n in metrics},
            lambda family: fitted.append(family) or f"prior without {family}",
            in_use.append,
            simulate,
            **only,
        )

    result = check()
    assert fitted == ["popularity", "itemknn", "implicit_mf"]
    assert in_use[-1] is None  # the agents' own prior is put back
    knn = result["recommenders"]["itemknn"]
    assert (knn["likes_rank"], knn["likes_rank_without"]) == (1, 3)
    assert result["recommenders"]["mf"]["likes_rank_without"] == 3
    assert result["holds"] is False and "2 of 3 recommenders" in result["sentence"]
    # asked for one recommender: only its family leaves, ranked among all of them
    fitted.clear()
    only = check(only=["itemknn"])
    assert fitted == ["itemknn"] and list(only["recommenders"]) == ["itemknn"]
    assert only["recommenders"]["itemknn"] == knn
