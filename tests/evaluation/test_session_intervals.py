"""The simulated verdict's intervals: pooled watch rates and likes per session, and
differences from the best paired over the same users."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from personasim.evaluation.session_intervals import session_intervals


def _sessions(rng, name, watch_p, users=60):
    shown = rng.integers(4, 20, users)
    watched = rng.binomial(shown, watch_p)
    return pd.DataFrame(
        {
            "recommender": name,
            "user_id": [f"u{k}" for k in range(users)],
            "shown": shown,
            "watched": watched,
            "liked": rng.binomial(watched, 0.5),
        }
    )


def test_watch_rate_is_pooled_and_a_clearly_worse_recommender_is_called_so():
    rng = np.random.default_rng(0)
    good, bad = _sessions(rng, "good", 0.6), _sessions(rng, "bad", 0.2)
    out = session_intervals(pd.concat([good, bad]), rounds=500, seed=0)
    assert out["recommenders"]["good"]["watch_rate"] == pytest.approx(
        good["watched"].sum() / good["shown"].sum(), abs=1e-6
    )
    assert out["recommenders"]["bad"]["likes"] == pytest.approx(bad["liked"].mean(), abs=1e-6)
    low, high = out["recommenders"]["good"]["watch_rate_ci"]
    assert low < out["recommenders"]["good"]["watch_rate"] < high
    assert out["best"] == {"watch_rate": "good", "likes": "good"}
    assert out["vs_best"]["watch_rate"]["bad"]["verdict"] == "worse"


def test_identical_sessions_differ_by_exactly_nothing():
    rng = np.random.default_rng(1)
    one = _sessions(rng, "one", 0.4)
    out = session_intervals(pd.concat([one, one.assign(recommender="two")]), rounds=200)
    for measure in ("watch_rate", "likes"):
        entry = next(iter(out["vs_best"][measure].values()))
        assert entry["difference"] == 0 and entry["ci"] == [0, 0]
        assert entry["verdict"] == "no clear difference"
    against = session_intervals(
        pd.concat([one, one.assign(recommender="two")]), rounds=200, reference="two"
    )
    assert list(against["vs_best"]["likes"]) == ["one"]
