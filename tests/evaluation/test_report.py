"""The report: one self-contained HTML file that a browser renders, and its Markdown."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from personasim import run_pipeline

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def reported_run(small_log, log_config, tmp_path_factory) -> Path:
    """Template profiles, personas, baselines, taste lists and the report (no agents)."""
    cfg = log_config(
        small_log.write_csv(tmp_path_factory.mktemp("log")),
        seed=3,
        split={"users": 20, "min_ratings": 20, "max_ratings": 0},
        personas={"k": 2, "min_size": 2, "n_init": 2},
        agents={"modes": []},
        cf={"mf_epochs": 3},
        evaluate={"agents": [], "taste_candidates": 8, "bootstrap_rounds": 200},
        report={"title": "A <test> report"},
        simulate={"agent_optional": True},
    )
    workdir = tmp_path_factory.mktemp("run")
    run_pipeline(workdir, cfg)
    return workdir


def test_report_is_one_self_contained_file(reported_run):
    html = (reported_run / "report" / "report.html").read_text()
    # Nothing fetched at view time: no external scripts, styles or images.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html
    images = re.findall(r'src="data:image/png;base64,', html)
    assert len(images) >= 5  # error bars, F1, AUC, histograms, calibration, persona map
    # Titles are escaped, tables hold every model and every taste list.
    assert "A &lt;test&gt; report" in html
    metrics = json.loads((reported_run / "eval" / "metrics.json").read_text())
    for name in metrics:
        assert f"<td>{name}</td>" in html
    assert "popularity 1:9" in html and "uniform 1:1" in html
    summary = (reported_run / "report" / "summary.md").read_text()
    assert summary.startswith("# A <test> report")
    assert "| popularity |" in summary and "## Taste alignment: AUC" in summary
    # one row per model, one column per list kind, the best of each marked
    taste = json.loads((reported_run / "eval" / "taste.json").read_text())
    auc_section = summary.split("## Taste alignment: AUC")[1].split("\n## ")[0]
    for kind, models in taste.items():
        best = max(models, key=lambda m: models[m]["auc"])
        row = next(line for line in auc_section.splitlines() if line.startswith(f"| {best} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[list(taste).index(kind) + 1].endswith("★")


def test_popularity_separates_uniform_negatives_better_than_matched_ones(reported_run):
    taste = json.loads((reported_run / "eval" / "taste.json").read_text())
    uniform = np.mean([taste[f"uniform 1:{r}"]["popularity"]["auc"] for r in (1, 3, 9)])
    matched = np.mean([taste[f"popularity 1:{r}"]["popularity"]["auc"] for r in (1, 3, 9)])
    assert uniform > matched


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (`make test` installs it)")
def test_report_renders_in_headless_chromium(reported_run, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            (reported_run / "report" / "report.html").as_uri(),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    image = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert image.shape == (2400, 1280)
    # The dark header band on top, then tables and figures: far from a blank page.
    assert image[:40].mean() < 80
    assert image.std() > 30 and (image < 128).mean() > 0.02


def test_the_verdict_names_the_best_agent_against_the_best_baseline():
    from personasim.evaluation.report_data import ReportData
    from personasim.evaluation.report_sentences import verdict

    def rating(rmse, vs=None):
        entry = {"rmse": rmse}
        if vs:
            entry["vs_best_baseline"] = vs
        return {"compared": entry}

    data = ReportData(
        title="t",
        metrics={
            "biased_mf": rating(0.89),
            "global-lora": rating(
                0.90,
                {
                    "baseline": "biased_mf",
                    "rmse_difference": 0.01,
                    "ci": [0.0, 0.02],
                    "verdict": "worse",
                },
            ),
            "persona-lora": rating(
                0.87,
                {
                    "baseline": "biased_mf",
                    "rmse_difference": -0.02,
                    "ci": [-0.03, -0.01],
                    "verdict": "better",
                },
            ),
        },
        taste={
            "uniform 1:1": {
                "itemknn": {"auc": 0.80},
                "persona-lora": {
                    "auc": 0.85,
                    "vs_best_baseline": {
                        "against": "itemknn",
                        "auc": 0.05,
                        "auc_ci": [0.02, 0.08],
                        "verdict": "better",
                    },
                },
            },
            "popularity 1:1": {
                "itemknn": {"auc": 0.70},
                "persona-lora": {
                    "auc": 0.66,
                    "vs_best_baseline": {
                        "against": "itemknn",
                        "auc": -0.04,
                        "auc_ci": [-0.07, -0.01],
                        "verdict": "worse",
                    },
                },
            },
        },
    )
    ratings, taste = verdict(data)
    assert ratings.startswith("Ratings: persona-lora RMSE 0.8700 against biased_mf 0.8900")
    assert "-0.0200" in ratings and ratings.endswith("better.")
    assert "above the best baseline on 1 list kind(s), below on 1" in taste
    assert "uniform 1:1: persona-lora AUC 0.850 vs itemknn +0.050" in taste
