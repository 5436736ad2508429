"""The adapters' learning-rate schedule: linear from the configured rate to zero."""

from __future__ import annotations

import pytest
import torch

from personasim.agents.training import linear_decay


def test_the_rate_falls_linearly_to_zero_over_the_steps():
    weight = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([weight], lr=1e-3)
    schedule = linear_decay(optimizer, total_steps=8)
    seen = []
    for _ in range(8):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx([1e-3 * (1 - step / 8) for step in range(8)])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)
