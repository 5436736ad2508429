"""A stage's peak memory is its own: the high-water mark is reset before it and read
after it, so memory an earlier stage took does not count."""

from __future__ import annotations

import numpy as np
import pytest

from personasim.scale.memory import peak_rss_mib, reset_peak


def test_the_peak_counts_what_was_held_since_the_reset():
    if not reset_peak():
        pytest.skip("the peak cannot be reset here (not Linux)")
    before = peak_rss_mib()
    block = np.ones(200 * 1024 * 1024 // 8)  # 200 MiB, touched
    held = peak_rss_mib()
    del block
    assert held >= before + 190
    reset_peak()  # the block is gone: a new measurement starts below it
    assert peak_rss_mib() < held - 150


def test_a_stage_manifest_records_its_peak(trained_run):
    import json

    manifest = json.loads((trained_run / "adapters" / "manifest.json").read_text())
    assert manifest["peak_rss_mib"] > 50
    assert manifest["peak_rss_scope"] in {"stage", "process"}
