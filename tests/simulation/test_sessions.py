"""Sessions: pages, watch and rating decisions, the exit rule, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from personasim.config import SimulateConfig
from personasim.simulation import continue_probability, pages_of, run_sessions
from personasim.testing.recommenders import ScriptedAgents


def test_pages_drop_history_and_repeats_and_stop_at_the_limit():
    ranking = ["a", "b", "a", "c", "d", "e", "f", "g"]
    assert pages_of(ranking, {"b"}, 2, 2) == [["a", "c"], ["d", "e"]]
    assert pages_of(["a", "b", "c"], set(), 2, 5) == [["a", "b"], ["c"]]
    assert pages_of([], set(), 4, 5) == []


def test_continue_probability_follows_activity_and_satisfaction():
    cfg = SimulateConfig(patience=(0.4, 0.6, 0.8), satisfaction_weight=0.5)
    assert continue_probability(1, 0.0, cfg) == pytest.approx(0.2)
    assert continue_probability(3, 1.0, cfg) == pytest.approx(0.8)
    assert continue_probability(2, 0.5, cfg) == pytest.approx(0.45)
    assert continue_probability(9, 1.0, cfg) == pytest.approx(0.8)  # clipped to high


def _pages(users, n_items=20, page_size=4, max_pages=5):
    return {
        u: pages_of([f"{u}-i{k}" for k in range(n_items)], set(), page_size, max_pages)
        for u in users
    }


def test_threshold_mode_watches_rates_and_exits_by_the_rule():
    cfg = SimulateConfig(decisions="threshold", patience=(0.4, 0.7, 0.9), max_pages=3)
    pages = _pages(["low", "high"])
    liked = {i: 5 for p in pages.values() for page in p for i in page}
    agents = ScriptedAgents(watch={}, rating=liked, default_watch=0.9)
    log = run_sessions(agents, pages, {"low": 1, "high": 3}, cfg, seed=0, label="t")
    by_user = log.sessions.set_index("user_id")
    # the low-activity user: P(continue) = 0.4 < 0.5 after a perfect page: leaves
    assert by_user.loc["low", "pages"] == 1 and by_user.loc["low", "exit"] == "left"
    # the high-activity user stays (0.9) until max_pages
    assert by_user.loc["high", "pages"] == 3 and by_user.loc["high", "exit"] == "max_pages"
    assert log.events["watched"].all() and (log.events["rating"] == 5).all()
    assert by_user.loc["high", "liked"] == 12
    # one batched call per page, both users in the first
    assert [len(call) for call in agents.calls] == [2, 1, 1]


def test_unsatisfying_pages_end_sessions_sooner():
    cfg = SimulateConfig(decisions="threshold", patience=(0.9, 0.9, 0.9), satisfaction_weight=0.8)
    pages = _pages(["u"])
    bored = ScriptedAgents(default_watch=0.1)  # watches nothing: satisfaction 0
    log = run_sessions(bored, pages, {"u": 3}, cfg, seed=0, label="t")
    assert log.sessions.loc[0, "exit"] == "left" and log.sessions.loc[0, "pages"] == 1
    assert not log.events["watched"].any() and log.events["rating"].isna().all()


def test_running_out_of_items_ends_the_session():
    cfg = SimulateConfig(decisions="threshold", patience=(1.0, 1.0, 1.0))
    pages = {"u": pages_of(["a", "b", "c", "d", "e"], set(), 4, 5), "v": []}
    agents = ScriptedAgents(rating={i: 5 for i in "abcde"}, default_watch=1.0)
    log = run_sessions(agents, pages, {}, cfg, seed=0, label="t")
    by_user = log.sessions.set_index("user_id")
    assert by_user.loc["u", "exit"] == "no_items" and by_user.loc["u", "shown"] == 5
    assert by_user.loc["v", "exit"] == "no_items" and by_user.loc["v", "pages"] == 0
    assert log.events.groupby("user_id")["item_id"].apply(lambda s: s.is_unique).all()


def test_sampled_decisions_follow_the_probabilities_and_the_seed():
    cfg = SimulateConfig(decisions="sample", patience=(1.0, 1.0, 1.0), max_pages=5)
    users = [f"u{k}" for k in range(300)]
    pages = _pages(users)
    agents = ScriptedAgents(default_watch=0.3)
    log = run_sessions(agents, pages, {}, cfg, seed=7, label="x")
    assert log.events["watched"].mean() == pytest.approx(0.3, abs=0.03)
    again = run_sessions(ScriptedAgents(default_watch=0.3), pages, {}, cfg, seed=7, label="x")
    assert log.events.equals(again.events)
    other = run_sessions(ScriptedAgents(default_watch=0.3), pages, {}, cfg, seed=8, label="x")
    assert not log.events["watched"].equals(other.events["watched"])


def test_a_users_session_does_not_depend_on_who_else_runs():
    cfg = SimulateConfig(decisions="sample")
    pages = _pages(["a", "b", "c"])
    ratings = {
        i: int(1 + k % 5)
        for k, i in enumerate(sorted(i for p in pages.values() for pg in p for i in pg))
    }
    dist = ScriptedAgents(rating=ratings, default_watch=0.6)
    together = run_sessions(dist, pages, {"a": 2, "b": 1, "c": 3}, cfg, seed=1, label="r")
    alone = run_sessions(dist, {"b": pages["b"]}, {"b": 1}, cfg, seed=1, label="r")
    mine = together.events[together.events["user_id"] == "b"].reset_index(drop=True)
    assert mine.equals(alone.events)


def test_sampled_ratings_come_from_the_distribution():
    class Uniform(ScriptedAgents):
        def rating_distributions(self, requests):
            return [{"probs": np.full((len(items), 5), 0.2)} for _, items in requests]

    cfg = SimulateConfig(decisions="sample", patience=(1.0, 1.0, 1.0))
    log = run_sessions(
        Uniform(default_watch=1.0),
        _pages([f"u{k}" for k in range(100)]),
        {},
        cfg,
        seed=0,
        label="r",
    )
    shares = log.events["rating"].value_counts(normalize=True).sort_index()
    assert list(shares.index) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert np.allclose(shares.to_numpy(), 0.2, atol=0.04)
    assert log.events["liked"].equals(log.events["rating"] >= 4)


def test_one_pass_page_scoring_gives_the_same_sessions():
    """Agents that answer a page in one call (``page_scores``) are asked only that, once
    per shown page, and their sessions are those of two-call agents giving the same
    answers."""
    pages = _pages([f"u{k}" for k in range(20)])
    ratings = {i: 1 + len(i) % 5 for p in pages.values() for pg in p for i in pg}

    class OnePass:
        def __init__(self):
            self.pages = 0

        def page_scores(self, requests):
            self.pages += len(requests)
            out = []
            for _, items in requests:
                probs = np.zeros((len(items), 5))
                probs[np.arange(len(items)), [ratings[i] - 1 for i in items]] = 1.0
                out.append((np.full(len(items), 0.6), {"probs": probs}))
            return out

        def watch_probabilities(self, requests):
            raise AssertionError("asked P(watch) apart from the page")

        rating_distributions = watch_probabilities

    for mode in ("sample", "threshold"):
        cfg = SimulateConfig(decisions=mode)
        two = run_sessions(
            ScriptedAgents(rating=ratings, default_watch=0.6), pages, {}, cfg, seed=2, label="r"
        )
        agents = OnePass()
        one = run_sessions(agents, pages, {}, cfg, seed=2, label="r", one_pass=True)
        assert one.events.equals(two.events) and one.sessions.equals(two.sessions)
        assert agents.pages == int(two.sessions["pages"].sum())


class _Remembering(ScriptedAgents):
    """Scripted agents that keep what they are told a user watched, and record what
    each user had watched when asked about a page."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.session_watched: dict[str, list[str]] = {}
        self.seen_at_ask: list[tuple[str, list[str]]] = []
        self.forgotten = 0

    def remember(self, user_id, item_ids):
        self.session_watched.setdefault(user_id, []).extend(item_ids)

    def forget_sessions(self):
        self.forgotten += 1
        self.session_watched.clear()

    def watch_probabilities(self, requests):
        for user, _ in requests:
            self.seen_at_ask.append((user, list(self.session_watched.get(user, []))))
        return super().watch_probabilities(requests)


def test_agents_are_told_what_each_user_watched_earlier_in_the_session():
    cfg = SimulateConfig(decisions="threshold", patience=(0.9, 0.9, 0.9), max_pages=3)
    pages = _pages(["a"], n_items=12)
    first_two = {i: 0.9 for i in pages["a"][0][:2]}  # the first page's first two items
    agents = _Remembering(watch=first_two, default_watch=0.1, rating={i: 5 for i in first_two})
    agents.session_watched = {"a": ["stale"]}  # left over from another run
    run_sessions(agents, pages, {"a": 3}, cfg, seed=0, label="t")
    assert agents.seen_at_ask[0] == ("a", [])  # forgotten before the sessions
    assert agents.seen_at_ask[1] == ("a", pages["a"][0][:2])  # oldest first, on page 2
    assert agents.session_watched == {} and agents.forgotten == 2  # and after them

    agents = _Remembering(watch=first_two, default_watch=0.1, rating={i: 5 for i in first_two})
    off = cfg.model_copy(update={"session_recency": False})
    run_sessions(agents, pages, {"a": 3}, off, seed=0, label="t")
    assert all(not watched for _, watched in agents.seen_at_ask)
