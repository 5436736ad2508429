"""Inference batches sized from free GPU memory (CUDA is faked: the arithmetic is what
a GPU user relies on)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from personasim.llm.device import bytes_per_sequence, fitting_batch

SMOLLM2 = SimpleNamespace(
    hidden_size=576,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    intermediate_size=1536,
    vocab_size=49152,
)


def test_cpu_keeps_the_configured_batch():
    assert fitting_batch(16, device="cpu", model_config=SMOLLM2, tokens=512, fraction=0.8) == 16


def test_cuda_batch_grows_with_free_memory_and_is_capped(monkeypatch):
    import torch

    per = bytes_per_sequence(SMOLLM2, 512)
    # KV of 30 layers x 3 heads x 64 dims x 2 (k, v) x 512 tokens in bf16 is most of it.
    assert 2 * 30 * 3 * 64 * 512 * 2 < per < 4 * 2 * 30 * 3 * 64 * 512 * 2
    free = {"bytes": 10 * per}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (free["bytes"], 80 << 30))
    assert fitting_batch(4, device="cuda", model_config=SMOLLM2, tokens=512, fraction=0.5) == 5
    assert fitting_batch(8, device="cuda", model_config=SMOLLM2, tokens=512, fraction=0.5) == 8
    assert fitting_batch(8, device="cuda", model_config=SMOLLM2, tokens=512, fraction=0.0) == 8
    free["bytes"] = 80 << 30
    big = fitting_batch(16, device="cuda", model_config=SMOLLM2, tokens=512, fraction=0.8)
    assert big == int(0.8 * (80 << 30)) // per
    capped = fitting_batch(
        16, device="cuda", model_config=SMOLLM2, tokens=512, fraction=0.8, cap=64
    )
    assert capped == 64


@pytest.mark.gpu
def test_real_cuda_batch_fits():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    size = fitting_batch(1, device="cuda", model_config=SMOLLM2, tokens=256, fraction=0.5)
    assert size >= 1
