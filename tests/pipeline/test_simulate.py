"""Stage `simulate` end to end on the tiny trained run: LensKit recommenders and a
plug-in, real LoRA agents, offline metrics, agreement, feedback rounds, resume."""

from __future__ import annotations

import json
import shutil
from html import unescape

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau

from personasim.config import load_config
from personasim.errors import ConfigError
from personasim.pipeline import EvaluateStage, ReportStage, SimulateStage, run_stage
from personasim.run_folder import DATA
from personasim.workspace import Workspace

pytestmark = pytest.mark.slow

PLUGIN = "personasim.testing.recommenders:RecentlyPopular"


def _config(base, **simulate):
    settings = json.loads(base.model_dump_json())
    # the checks' leave-family-out refits the stacked prior (the run's own is item-kNN's)
    settings["agents"]["watch_prior"] = "stacked"
    settings["cf"]["implicit_mf_epochs"] = 3
    settings["simulate"] = {
        "users": 6,
        "max_pages": 2,
        "plugins": {"recent": PLUGIN},
        "recommenders": ["random", "popular", "itemknn", "mf", "recent"],
        "feedback_rounds": 0,
        **simulate,
    }
    return load_config([("test", settings)])


@pytest.fixture(scope="module")
def simulated(trained_run, agent_log_files, make_agent_config, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("simulated") / "run"
    shutil.copytree(trained_run, workdir)
    cfg = _config(
        make_agent_config(agent_log_files),
        feedback_rounds=1,
        feedback_users=3,
        other_watch_priors=["popularity"],
    )
    result = run_stage(SimulateStage, Workspace(workdir), cfg)
    return workdir, cfg, result


def test_sessions_offline_metrics_and_agreement_are_written(simulated):
    workdir, _, result = simulated
    assert result.ran
    out = workdir / "simulate"
    metrics = json.loads((out / "metrics.json").read_text())
    names = ["random", "popular", "itemknn", "mf", "recent"]
    assert list(metrics["recommenders"]) == names
    for row in metrics["recommenders"].values():
        assert row["users"] == 6
        assert 0 <= row["watch_rate"] <= 1 and 1 <= row["exit_page"] <= 2
        assert 0 <= row["ndcg"] <= 1 and 0 <= row["recall"] <= 1
        assert 0 < row["coverage"] <= 1 and row["novelty"] > 0
    # the headline agreement is Kendall's tau of the recommenders' likes and nDCG
    head = metrics["agreement"]["headline"]
    rows = metrics["recommenders"]
    likes = [rows[n]["likes"] for n in names]
    ndcg = [rows[n]["ndcg"] for n in names]
    assert head["n"] == 5
    if np.ptp(likes) > 0 and np.ptp(ndcg) > 0:
        assert head["kendall_tau"] == pytest.approx(kendalltau(likes, ndcg).statistic, abs=1e-3)
    else:
        assert pd.isna(head["kendall_tau"])
    events = pd.read_parquet(out / "events.parquet")
    # an item is never shown twice in a session, and never one the user rated in train
    assert not events.duplicated(["recommender", "round", "user_id", "item_id"]).any()
    interactions = pd.read_parquet(workdir / "data" / "interactions.parquet")
    train = set(
        zip(
            *interactions.loc[interactions.split == "train", ["user_id", "item_id"]].T.values,
            strict=True,
        )
    )
    assert not any((u, i) in train for u, i in zip(events.user_id, events.item_id, strict=True))
    # watched items are rated on the scale; skipped ones are not
    assert events.loc[events.watched, "rating"].between(1, 5).all()
    assert events.loc[~events.watched, "rating"].isna().all()
    assert set(events["persona"].dropna()) <= {"p0", "p1"}
    assert metrics["personas"]["mf"]
    offline = pd.read_parquet(out / "offline.parquet")
    assert set(offline["recommender"]) == set(names) and offline["user_id"].nunique() == 6
    # each recommender's nDCG is the mean of its users' (computed against LensKit's and
    # the textbook definition in tests/simulation/test_measures.py)
    for name in names:
        mine = offline[offline.recommender == name]
        assert rows[name]["ndcg"] == pytest.approx(mine["ndcg"].mean(), abs=1e-3)
    feedback = pd.read_parquet(out / "feedback.parquet")
    assert sorted(set(feedback["round"])) == [0, 1]
    assert (feedback.loc[feedback["round"] == 1, "users"] == 3).all()
    assert set(metrics["feedback_trends"]) == set(names)


def test_the_feedback_study_runs_ten_rounds_on_the_priors(
    trained_run, agent_log_files, make_agent_config, copy_run, monkeypatch
):
    """Ten rounds of every recommender retrained on what the agents watched, on agents
    answered by their priors (no model loaded), measured per round and read as a trend."""
    from personasim import UserAgent

    workdir = copy_run(trained_run)
    base = make_agent_config(agent_log_files, language_model="off")
    settings = json.loads(base.model_dump_json())
    settings["simulate"] = {
        "users": 8,
        "max_pages": 2,
        "recommenders": ["random", "popular", "itemknn"],
        "feedback_rounds": 10,
        "ladder": [],
        "leave_family_out": False,
    }
    cfg = load_config([("test", settings)])
    monkeypatch.setattr(UserAgent, "from_workdir", lambda *a, **k: pytest.fail("model loaded"))
    run_stage(SimulateStage, Workspace(workdir), cfg)
    metrics = json.loads((workdir / "simulate" / "metrics.json").read_text())
    feedback = pd.read_parquet(workdir / "simulate" / "feedback.parquet")
    assert len(feedback) == 3 * 11
    for name, part in feedback.groupby("recommender"):
        part = part.sort_values("round")
        assert part["round"].tolist() == list(range(11))
        added = part["items_added"].to_numpy()
        assert added[0] == 0 and (np.diff(added) >= 0).all() and added[-1] > 0
        drift = part["history_drift"].to_numpy()
        assert drift[0] == 0 and drift[-1] > 0
        for measure in ("watch_rate", "likes", "coverage", "gini_exposure", "genre_entropy"):
            assert part[measure].notna().all(), (name, measure)
        assert part["coverage"].between(0, 1).all() and part["gini_exposure"].between(0, 1).all()
        trend = metrics["feedback_trends"][name]
        assert trend["trend"] in {"narrows", "broadens", "stays", "mixed"}
        assert trend["sentence"].startswith(f"{name} ") and "over 10 rounds" in trend["sentence"]
    # every round's decisions are counted: each shown item a watch, each watched a rating
    made = sum(r["shown"] + round(r["shown"] * r["watch_rate"]) for r in metrics["feedback"])
    assert metrics["decisions"] == {"language_model": 0, "prior": made}


def test_the_verdict_comes_with_intervals_and_checks_against_its_own_model(simulated):
    workdir, _, _ = simulated
    metrics = json.loads((workdir / "simulate" / "metrics.json").read_text())
    rows, intervals = metrics["recommenders"], metrics["intervals"]
    for name, row in rows.items():
        mine = intervals["recommenders"][name]
        assert mine["watch_rate"] == pytest.approx(row["watch_rate"], abs=1e-4)
        low, high = mine["likes_ci"]
        assert low <= mine["likes"] <= high
    best = intervals["best"]["likes"]
    assert set(intervals["vs_best"]["likes"]) == set(rows) - {best}
    ladder = metrics["checks"]["ladder"]
    strong = ["popular", "itemknn", "mf"]
    assert ladder["recommender"] == max(strong, key=lambda n: rows[n]["ndcg"])
    assert [s["share"] for s in ladder["steps"]] == [0.1, 0.25, 0.5, 1.0]
    for step in ladder["steps"]:
        assert step["likes_drop"]["difference"] == pytest.approx(
            step["likes"] - ladder["likes"], abs=1e-5
        )
        assert len(step["ndcg_drop"]["ci"]) == 2
    assert set(ladder["monotone"]) == {"watch_rate", "likes", "ndcg"}
    assert ladder["steps"][-1]["ndcg"] <= ladder["ndcg"]  # random pages hit less of the log
    family_out = metrics["checks"]["leave_family_out"]
    assert {n: e["family"] for n, e in family_out["recommenders"].items()} == {
        "popular": "popularity",
        "itemknn": "itemknn",
        "mf": "implicit_mf",
    }
    for entry in family_out["recommenders"].values():
        assert 1 <= entry["likes_rank_without"] <= len(rows)
    assert isinstance(family_out["holds"], bool) and "Leave-family-out" in family_out["sentence"]
    # the sessions again under a single-scorer prior, for comparison
    other = metrics["watch_priors"]["popularity"]
    assert set(other["recommenders"]) == set(rows)
    assert "kendall_tau" in other["watch_rate~ndcg"]


def test_the_checks_resume_from_their_checkpoints(simulated, monkeypatch, tmp_path):
    workdir, cfg, _ = simulated
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    shutil.rmtree(copy / "simulate")

    def no_agents(*args, **kwargs):
        raise AssertionError("the agents were asked again")

    monkeypatch.setattr("personasim.agents.UserAgent.from_workdir", no_agents)
    monkeypatch.setattr("personasim.agents.choice_prior.fit_choice_prior", no_agents)
    assert run_stage(SimulateStage, Workspace(copy), cfg).ran
    again = json.loads((copy / "simulate" / "metrics.json").read_text())
    first = json.loads((workdir / "simulate" / "metrics.json").read_text())
    assert again["checks"] == first["checks"]


def test_a_copy_of_a_recommenders_lists_gets_the_same_sessions(
    simulated, agent_log_files, make_agent_config, tmp_path
):
    """Common random numbers: a rankings file that shows exactly what `popular` shows
    is simulated to exactly its sessions (different draws once gave 1.80 vs 2.07 likes)."""
    from personasim.cf import training_log
    from personasim.simulation.recommenders import create_recommender

    workdir, _, _ = simulated
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    shutil.rmtree(copy / "simulate")
    base = make_agent_config(agent_log_files)
    path = tmp_path / "copy.parquet"
    cfg = _config(
        base,
        recommenders=["popular", "copy"],
        rankings={"copy": str(path)},
        ladder=[],
        leave_family_out=False,
    )
    interactions = pd.read_parquet(copy / "data" / "interactions.parquet")
    training, _ = training_log(Workspace(copy), interactions)
    popular = create_recommender("popular", cfg.simulate)
    popular.fit(training[["user_id", "item_id", "rating", "timestamp"]], seed=cfg.seed)
    seen = interactions[interactions.split == "train"].groupby("user_id")["item_id"].agg(list)
    rows = [
        (user, item, rank)
        for user in seen.index
        for rank, item in enumerate(popular.recommend(user, seen[user], 60), start=1)
    ]
    pd.DataFrame(rows, columns=["user_id", "item_id", "rank"]).to_parquet(path)
    run_stage(SimulateStage, Workspace(copy), cfg)
    events = pd.read_parquet(copy / "simulate" / "events.parquet")
    columns = [c for c in events.columns if c != "recommender"]
    mine, theirs = (
        events.loc[events.recommender == name, columns].reset_index(drop=True)
        for name in ("popular", "copy")
    )
    pd.testing.assert_frame_equal(mine, theirs)
    metrics = json.loads((copy / "simulate" / "metrics.json").read_text())
    for measure in ("watch_rate", "likes"):
        assert (
            metrics["recommenders"]["popular"][measure] == metrics["recommenders"]["copy"][measure]
        )
        assert metrics["intervals"]["vs_best"][measure]
        assert next(iter(metrics["intervals"]["vs_best"][measure].values()))["ci"] == [0, 0]


def test_a_failed_simulation_resumes_from_its_checkpoints(
    simulated, agent_log_files, make_agent_config, monkeypatch, tmp_path
):
    workdir, _, _ = simulated
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    shutil.rmtree(copy / "simulate")
    base = make_agent_config(agent_log_files)
    # a plug-in that fails after popular and mf have run: the stage fails, writes nothing
    failing = _config(
        base,
        plugins={"bad": "tests.simulation.test_recommenders:fails"},
        recommenders=["popular", "mf", "bad"],
        ladder=[],  # the checks run after every recommender (tested with the verdict)
        leave_family_out=False,
    )
    with pytest.raises(ConfigError, match="recommender plug-in 'bad'"):
        run_stage(SimulateStage, Workspace(copy), failing)
    assert not (copy / "simulate").exists()

    # rerun without it: popular and mf come from their checkpoints, nobody asks the agents
    def no_agents(*args, **kwargs):
        raise AssertionError("the agents were asked again")

    monkeypatch.setattr("personasim.agents.UserAgent.from_workdir", no_agents)
    cfg = _config(base, recommenders=["popular", "mf"], ladder=[], leave_family_out=False)
    assert run_stage(SimulateStage, Workspace(copy), cfg).ran
    resumed = pd.read_parquet(copy / "simulate" / "events.parquet")
    first = pd.read_parquet(workdir / "simulate" / "events.parquet")
    first = first[first["recommender"].isin(["popular", "mf"]) & (first["round"] == 0)]
    pd.testing.assert_frame_equal(resumed, first.reset_index(drop=True))
    # and an up-to-date stage is skipped
    assert not run_stage(SimulateStage, Workspace(copy), cfg).ran
    # a finished simulation keeps each recommender's sessions: changing the list
    # reruns the stage without asking the agents again for the ones it already ran
    only = _config(base, recommenders=["mf"], ladder=[], leave_family_out=False)
    assert run_stage(SimulateStage, Workspace(copy), only).ran
    only_mf = pd.read_parquet(copy / "simulate" / "events.parquet")
    pd.testing.assert_frame_equal(
        only_mf, first[first["recommender"] == "mf"].reset_index(drop=True)
    )


def test_without_its_agent_simulate_fails_unless_the_agent_is_optional(
    trained_run, agent_log_files, make_agent_config, tmp_path
):
    workdir = tmp_path / "run"
    shutil.copytree(trained_run, workdir)
    base = make_agent_config(agent_log_files)
    cfg = _config(base, recommenders=["popular", "mf"], agent="persona-lora")
    settings = json.loads(cfg.model_dump_json())
    settings["agents"]["modes"] = ["global"]
    with pytest.raises(ConfigError, match="add 'persona' to agents.modes"):
        run_stage(SimulateStage, Workspace(workdir), load_config([("test", settings)]))
    assert not (workdir / "simulate").exists()
    settings["simulate"]["agent_optional"] = True
    cfg = load_config([("test", settings)])
    run_stage(SimulateStage, Workspace(workdir), cfg)
    metrics = json.loads((workdir / "simulate" / "metrics.json").read_text())
    assert metrics["recommenders"]["popular"]["ndcg"] >= 0
    assert pd.isna(metrics["recommenders"]["popular"]["watch_rate"])


def test_the_report_shows_the_simulation(simulated, copy_run):
    simulated_run, cfg, _ = simulated
    workdir = copy_run(simulated_run)
    settings = json.loads(cfg.model_dump_json())
    settings["evaluate"].update({"agents": [], "taste": False, "free_generation_pairs": 0})
    cheap = load_config([("test", settings)])
    run_stage(EvaluateStage, Workspace(workdir), cheap)
    run_stage(ReportStage, Workspace(workdir), cheap)
    html = (workdir / "report" / "report.html").read_text()
    for anchor in ("simulation-table", "agreement-table", "feedback-table", "Simulated vs offline"):
        assert anchor in html
    metrics = json.loads((workdir / "simulate" / "metrics.json").read_text())
    mf = metrics["recommenders"]["mf"]
    assert f"{mf['ndcg']:.4f}" in html and f"{mf['watch_rate']:.3f}" in html
    summary = (workdir / "report" / "summary.md").read_text()
    assert "## Recommenders: simulated sessions and the held-out log" in summary
    assert "| recent |" in summary and "## Feedback loop" in summary
    assert "## Wall time and peak memory per stage" in summary
    # every decision of these agents (LM weights 1) was the language model's
    made = metrics["decisions"]["language_model"]
    assert made > 0 and metrics["decisions"]["prior"] == 0
    assert f"Decisions: {made:,} by the language model and 0 by the priors alone" in summary
    for trend in metrics["feedback_trends"].values():
        assert trend["sentence"] in summary and trend["sentence"] in unescape(html)
    # the verdict leads with the simulation, its certainty and its checks
    best = metrics["intervals"]["best"]["likes"]
    assert f"Simulation: the simulated users prefer {best}" in summary
    assert metrics["checks"]["ladder"]["sentence"] in summary
    assert metrics["checks"]["leave_family_out"]["sentence"] in summary
    assert summary.index("Simulation: the simulated") < summary.index("## Recommenders")


def test_a_rankings_file_is_simulated_and_a_changed_file_again(
    simulated, agent_log_files, make_agent_config, tmp_path, caplog
):
    workdir, _, _ = simulated
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    shutil.rmtree(copy / "simulate")
    interactions = pd.read_parquet(copy / "data" / "interactions.parquet")
    seen = interactions[interactions.split == "train"].groupby("user_id")["item_id"].agg(set)
    catalogue = sorted(set(interactions["item_id"]))
    users = sorted(seen.index)

    def write(order):
        rows = [
            (u, i, rank)
            for u in users
            for rank, i in enumerate([i for i in order if i not in seen[u]], start=1)
        ]
        pd.DataFrame(rows, columns=["user_id", "item_id", "rank"]).to_parquet(
            tmp_path / "prod.parquet"
        )

    def first_pages(cfg):
        run_stage(SimulateStage, Workspace(copy), cfg)
        events = pd.read_parquet(copy / "simulate" / "events.parquet")
        return events, events[(events.page == 1) & (events.recommender == "prod")]

    base = make_agent_config(agent_log_files)
    cfg = _config(
        base, recommenders=["popular", "prod"], rankings={"prod": str(tmp_path / "prod.parquet")}
    )
    write(catalogue)
    events, prod = first_pages(cfg)
    # each user's first page is the file's first ranked items the user has not seen
    for user, page in prod.groupby("user_id"):
        expected = [i for i in catalogue if i not in seen[user]][: len(page)]
        assert page.sort_values("position")["item_id"].tolist() == expected
    popular = events[events.recommender == "popular"].reset_index(drop=True)

    write(catalogue[::-1])  # the team exports new lists: prod is simulated again
    caplog.clear()
    with caplog.at_level("INFO", logger="personasim"):
        events, prod = first_pages(cfg)
    assert "simulate: popular round 0 restored from checkpoint" in caplog.text
    assert "simulate: prod round 0 restored" not in caplog.text
    for user, page in prod.groupby("user_id"):
        expected = [i for i in catalogue[::-1] if i not in seen[user]][: len(page)]
        assert page.sort_values("position")["item_id"].tolist() == expected
    pd.testing.assert_frame_equal(
        events[events.recommender == "popular"].reset_index(drop=True), popular
    )


@pytest.mark.model
def test_the_sessions_get_back_the_stacked_model_the_train_stage_fitted(real_trained_run):
    """The stored prior is a matrix; simulate fits its model again for the sessions'
    recency: the same data, seed and families give the same scores as the matrix."""
    from types import SimpleNamespace

    from personasim.agents.watch_prior import WatchPrior
    from personasim.data.tables import read_parquet
    from personasim.pipeline.simulate_priors import session_model_attacher
    from personasim.workspace import resolve_config

    ws = Workspace(real_trained_run)
    prior = WatchPrior.load(ws.stage_dir("adapters"))
    assert prior.kind == "stacked" and prior.session is None
    interactions = read_parquet(ws.path(DATA.interactions))
    items = read_parquet(ws.path(DATA.items))
    attach = session_model_attacher(ws, resolve_config(ws), interactions, items)
    attach(SimpleNamespace(watch_prior=prior))
    for row, user in enumerate(prior.users[:4]):
        again = prior.session.scores(user, prior.items)
        np.testing.assert_allclose(again, prior.matrix[row], rtol=1e-5, atol=1e-5)
    watched = prior.items[:3]
    assert not np.allclose(prior.log_odds(prior.users[0], prior.items, recent=watched),
                           prior.log_odds(prior.users[0], prior.items))  # fmt: skip
