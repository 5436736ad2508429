"""The CLI on the built-in data: the commands users run, their output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from personasim import __version__


def _personasim(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PERSONASIM_PROGRESS": "0", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "personasim", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_version_and_help(cli):
    assert cli("--version").output == f"personasim {__version__}"
    res = cli("--help")
    assert res.code == 0
    for command in ("ingest", "evaluate", "run", "status", "config"):
        assert command in res.output


def test_config_reference_and_show(cli, tmp_path):
    res = cli("config", "reference")
    assert res.code == 0 and "[split]" in res.output and "train_fraction" in res.output
    cfg = tmp_path / "c.toml"
    cfg.write_text("seed = 9\n[split]\nusers = 5\n")
    res = cli("config", "show", "--config", cfg)
    assert res.code == 0 and "seed = 9" in res.output and "users = 5" in res.output


def test_ml100k_ingest_then_evaluate_as_a_user_runs_them(tmp_path):
    workdir = tmp_path / "run"
    res = _personasim(
        "ingest", "--workdir", workdir, "--dataset", "ml-100k", "--users", "50", "--seed", "3"
    )
    assert res.returncode == 0, res.stderr
    assert "50 users sampled of 216 eligible in ml-100k" in res.stderr
    res = _personasim("evaluate", "--workdir", workdir)
    assert res.returncode == 3  # the agents are not trained: it says how
    assert f"run `personasim train --workdir {workdir}`" in " ".join(res.stderr.split())
    assert not (workdir / "eval").exists()
    res = _personasim("evaluate", "--workdir", workdir, "--baselines-only")
    assert res.returncode == 0, res.stderr
    metrics = json.loads((workdir / "eval" / "metrics.json").read_text())
    assert metrics["biased_mf"]["rmse"] < metrics["global_mean"]["rmse"]
    assert metrics["user_item_bias"]["rmse"] < metrics["global_mean"]["rmse"]
    assert "other users" in metrics["biased_mf"]["fit_data"]
    for line in ("biased_mf", "global_mean", "RMSE"):
        assert line in res.stderr
    # status: everything up to date
    res = _personasim("status", "--workdir", workdir)
    assert res.returncode == 0 and res.stderr.count("up to date") == 2


def test_sampled_users_only_option_is_reported(cli, tmp_path):
    res = cli(
        "ingest",
        "--workdir",
        tmp_path,
        "--dataset",
        "ml-100k",
        "--users",
        "30",
        "--sampled-users-only",
    )
    assert res.code == 0, res.output
    res = cli("evaluate", "--workdir", tmp_path, "--baselines-only")
    assert res.code == 0, res.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["biased_mf"]["fit_data"] == "train part of the 30 sampled users"
    assert pd.read_parquet(tmp_path / "data" / "others.parquet").empty


def test_usage_errors_exit_2_and_data_errors_exit_3(cli, tmp_path):
    res = cli("ingest", "--workdir", tmp_path / "a", "--dataset", "ml-100k", "--users", "5000")
    assert res.code == 2 and "only 216 users have between 100 and 200 ratings" in res.output
    res = cli("evaluate", "--workdir", tmp_path / "b")
    assert res.code == 3 and "run `personasim ingest" in res.output
    res = cli("ingest", "--workdir", tmp_path / "c", "--path", tmp_path / "nope.csv")
    assert res.code == 2 and "does not exist" in res.output
    res = cli("ingest", "--workdir", tmp_path / "d", "--no-such-option")
    assert res.code == 2


def test_run_reads_a_log_given_by_its_options(cli, tmp_path, small_log):
    ratings, items, _ = small_log.write_csv(tmp_path / "log")
    res = cli("run", "--workdir", tmp_path / "a", "--path", tmp_path / "nope.csv")
    assert res.code == 2 and "does not exist" in res.output
    # the options reach the ingest stage: a wrong column name is named as ingest names it
    res = cli("run", "--workdir", tmp_path / "b", "--path", ratings, "--items", items,
              "--title-col", "name", "--rating-scale", "1", "5", "--users", "5")  # fmt: skip
    assert res.code == 2 and "column 'name': no such column" in res.output


def test_status_of_a_folder_that_does_not_exist_creates_nothing(cli, tmp_path):
    res = cli("status", "--workdir", tmp_path / "nope")
    assert res.code == 2 and "is not a run folder (it does not exist)" in res.output
    assert not (tmp_path / "nope").exists()


def test_an_internal_error_has_its_own_exit_code(cli, tmp_path, monkeypatch):
    import personasim.pipeline.ingest as ingest

    def broken(*_, **__):
        raise RuntimeError("a bug")

    monkeypatch.setattr(ingest, "log_spec", broken)
    res = cli("ingest", "--workdir", tmp_path, "--dataset", "ml-100k", "--users", "5")
    assert res.code == 4 and "unexpected RuntimeError: a bug (an internal error" in res.output


@pytest.mark.slow
@pytest.mark.model
def test_paper_protocol_on_ml1m(cli, tmp_path):
    """200 users with 100-200 ratings, 60:40 temporal split: the baselines of the paper."""
    res = cli("ingest", "--workdir", tmp_path, "--dataset", "ml-1m", "--users", "200",
              "--min-ratings", "100", "--max-ratings", "200", "--seed", "0")  # fmt: skip
    assert res.code == 0, res.output
    inter = pd.read_parquet(tmp_path / "data" / "interactions.parquet")
    assert inter.user_id.nunique() == 200
    counts = inter.groupby("user_id").size()
    assert counts.between(100, 200).all()
    # the rating baselines are the point; the taste lists of three scorers ride along
    # (SASRec and the shown lists take minutes on ML-1M: benchmarks/choice_model.py)
    config = tmp_path / "ratings.toml"
    config.write_text(
        '[evaluate]\ntaste_shown = []\ntaste_baselines = ["popularity", "itemknn", "implicit_mf"]\n'
    )
    res = cli("evaluate", "--workdir", tmp_path, "--config", config, "--baselines-only")
    assert res.code == 0, res.output
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["biased_mf"]["n"] == int((inter.split == "test").sum())
    assert 0.8 < m["biased_mf"]["rmse"] < m["user_item_bias"]["rmse"] < m["item_bias"]["rmse"]
    assert m["item_bias"]["rmse"] < m["global_mean"]["rmse"]


# Killed in evaluate, once its first model's results are checkpointed.
IN_EVALUATE = """
from personasim.evaluation.checkpoints import UnitStore
real = UnitStore.save
def save(self, *args, **kwargs):
    real(self, *args, **kwargs)
    kill()
UnitStore.save = save
"""


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_finished_stages(killed_cli, tmp_path):
    """kill -9 while `run` is in evaluate; the rerun skips ingest and finishes every
    stage."""
    workdir = tmp_path / "run"
    config = tmp_path / "no-agents.toml"
    config.write_text(
        '[llm]\nbackend = "template"\n[agents]\nmodes = []\n'
        '[evaluate]\nagents = []\ntaste_shown = []\ntaste_baselines = ["popularity"]\n'
        '[simulate]\nrecommenders = ["popular", "itemknn"]\nagent_optional = true\n'
    )
    args = ["run", "--workdir", workdir, "--dataset", "ml-100k", "--users", "20", "--seed", "1",
            "--config", config]  # fmt: skip
    killed_cli(IN_EVALUATE, *args)
    assert (workdir / "data" / "manifest.json").exists()
    assert not (workdir / "eval" / "manifest.json").exists()
    ingest_manifest = (workdir / "data" / "manifest.json").read_bytes()

    res = _personasim(*args)
    assert res.returncode == 0, res.stderr
    assert "ingest: up to date, skipped" in res.stderr
    assert "evaluate: running" in res.stderr
    assert (workdir / "data" / "manifest.json").read_bytes() == ingest_manifest
    assert not (workdir / ".staging").exists()
    # (a resumed stage's artifacts are an uninterrupted run's: test_kill_resume.py)
    assert (workdir / "report" / "report.html").exists()


def test_profile_with_the_template_backend(cli, tmp_path):
    assert cli("ingest", "--workdir", tmp_path, "--dataset", "ml-100k", "--users", "10").code == 0
    res = cli("profile", "--workdir", tmp_path, "--backend", "template")
    assert res.code == 0, res.output
    assert "10 profiles with template" in res.output
    profiles = pd.read_parquet(tmp_path / "profiles" / "profiles.parquet")
    assert list(profiles.columns[:5]) == [
        "user_id",
        "activity",
        "conformity",
        "diversity",
        "profile_text",
    ]
    assert profiles.profile_text.str.contains("Activity: ").all()
    rationales = pd.read_parquet(tmp_path / "profiles" / "rationales.parquet")
    assert list(rationales.columns[:3]) == ["user_id", "item_id", "rating"]
    assert "rationale" in rationales.columns
    res = cli("profile", "--workdir", tmp_path)
    assert res.code == 0 and "skipped" in res.output


def test_simulate_refuses_a_malformed_plugin_option(cli, tmp_path):
    res = cli("simulate", "--workdir", tmp_path, "--recommender", "no-equals-sign")
    assert res.code == 2
    assert "expected NAME=module:object" in res.output


def test_simulate_prints_the_recommender_table(capsys):
    from personasim.cli.simulate import print_simulation

    metrics = {
        "recommenders": {
            "popular": {"watch_rate": 0.41, "likes": 1.5, "ndcg": 0.1973, "recall": 0.19},
            "mf": {"watch_rate": 0.44, "likes": 2.0, "ndcg": 0.141, "recall": 0.15},
        },
        "settings": {"offline_k": 10},
        "agreement": {"headline": {"n": 2, "kendall_tau": -1.0, "spearman": -1.0}},
        "per_user_agreement": {"defined_users": 7, "kendall_tau": {"mean": 0.18}},
    }
    print_simulation(metrics)
    out = " ".join(capsys.readouterr().err.split())
    assert "popular" in out and "0.197" in out and "nDCG@10" in out
    assert "Kendall tau -1.000" in out and "mean over 7" in out


def test_scale_options_are_checked_and_recorded(cli, log_files, tmp_path):
    bad = cli("train", "--workdir", tmp_path / "a", "--executor", "spark")
    assert bad.code == 2 and "in-process" in bad.output
    both = cli(
        "profile", "--workdir", tmp_path / "b", "--executor", "in-process", "--ray-address", "auto"
    )
    assert both.code == 2 and "--ray-address needs --executor ray" in both.output
    ratings, items, _ = log_files
    ok = cli(
        "ingest", "--workdir", tmp_path / "c", "--path", ratings, "--items", items,
        "--users", "5", "--min-ratings", "20", "--tables", "duckdb",
    )  # fmt: skip
    assert ok.code == 0, ok.output
    manifest = json.loads((tmp_path / "c" / "data" / "manifest.json").read_text())
    assert manifest["summary"]["tables"] == "duckdb"
    assert manifest["summary"]["users"] == 5


def test_a_full_disk_gives_a_clear_error_and_keeps_finished_stages(
    cli, log_files, tmp_path, monkeypatch
):
    import errno

    import pyarrow.parquet as pq

    ratings, items, _ = log_files
    args = ["--workdir", tmp_path / "run", "--path", ratings, "--items", items, "--users", "5",
            "--min-ratings", "20"]  # fmt: skip
    assert cli("ingest", *args).code == 0
    before = (tmp_path / "run" / "data" / "manifest.json").read_bytes()

    def full(*_, **__):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "x"))

    monkeypatch.setattr(pq, "write_table", full)
    failed = cli("ingest", *args, "--force")
    assert failed.code == 3
    assert "no space left" in failed.output and "rerun once fixed" in failed.output
    assert (tmp_path / "run" / "data" / "manifest.json").read_bytes() == before
    assert not list((tmp_path / "run").glob(".staging/ingest-*"))


def test_serve_names_its_agents_as_evaluate_and_simulate_do(cli, tmp_path):
    refused = cli("serve", "--workdir", str(tmp_path), "--agent", "lora")
    assert refused.code == 2
    assert "use zero-shot, global-lora, persona-lora" in refused.output


def test_the_closing_table_ranks_every_model_on_the_pairs_all_of_them_scored(capsys):
    from personasim.cli._common import print_metrics

    baseline = {"kind": "baseline", "urr": 0.0, "n_users": 200}
    metrics = {
        # better on all 11,386 pairs, worse on the 2,000 the agent scored
        "item_knn": {**baseline, "rmse": 0.8920, "mae": 0.70, "n": 11386,
                     "on_agent_pairs": {"rmse": 0.8851, "mae": 0.69, "n": 2000}},
        "biased_mf": {**baseline, "rmse": 0.8935, "mae": 0.70, "n": 11386,
                      "on_agent_pairs": {"rmse": 0.8795, "mae": 0.69, "n": 2000}},
        "global-lora": {"kind": "agent", "rmse": 0.8776, "mae": 0.68, "urr": 1.0, "n": 2000,
                        "n_users": 200},
    }  # fmt: skip
    print_metrics(metrics)
    captured = capsys.readouterr()
    out = " ".join((captured.out + captured.err).split())
    assert "rating prediction on the 2000 test pairs every model scored" in out
    order = [out.index(name) for name in ("global-lora", "biased_mf", "item_knn")]
    assert order == sorted(order)  # by RMSE on the shared pairs, not on all pairs
    assert "0.8920" in out  # each baseline's RMSE on every test pair stays beside it
    assert "a high URR (briefly trained adapters" in out


def test_ctrl_c_says_what_was_kept(cli, tmp_path, monkeypatch):
    from personasim.pipeline import ProfileStage

    assert cli("ingest", "--workdir", tmp_path, "--dataset", "ml-100k", "--users", "10").code == 0

    def interrupted(self, out):
        raise KeyboardInterrupt

    monkeypatch.setattr(ProfileStage, "build", interrupted)
    res = cli("profile", "--workdir", tmp_path, "--backend", "template")
    assert res.code == 130
    assert f"kept in {tmp_path}: finished stages data/" in res.output
    assert "nothing half-written" in res.output and "rerun the command to resume" in res.output
    assert not (tmp_path / "profiles" / "manifest.json").exists()


def test_baselines_only_also_scores_the_priors_alone_of_a_trained_run(cli, trained_run, copy_run):
    run = copy_run(trained_run)
    res = cli("evaluate", "--workdir", run, "--baselines-only")
    assert res.code == 0, res.output
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert (
        metrics["prior"]["kind"] == "prior" and metrics["prior"]["n"] == metrics["global_mean"]["n"]
    )
    assert not {"global-lora", "persona-lora"} & set(metrics)  # no language model asked
    taste = json.loads((run / "eval" / "taste.json").read_text())
    assert all("watch-prior" in models for models in taste.values())
