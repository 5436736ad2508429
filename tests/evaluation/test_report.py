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
        evaluate={"mf_epochs": 3, "agents": [], "taste_candidates": 8, "bootstrap_rounds": 200},
        report={"title": "A <test> report"},
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
    assert "| popularity |" in summary and "## Taste alignment" in summary


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
