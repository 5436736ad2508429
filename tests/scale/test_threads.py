"""Model work runs on the threads asked for, even after LensKit set torch to one."""

from __future__ import annotations

import torch

from personasim.scale.threads import compute_threads, configure_threads


def test_the_thread_count_follows_the_setting_then_omp_then_the_cores(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert compute_threads() == 3
    assert compute_threads(5) == 5
    monkeypatch.delenv("OMP_NUM_THREADS")
    import os

    assert compute_threads() == (os.cpu_count() or 1)


def test_torch_gets_its_threads_back_after_lenskit_took_them(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.delenv("LK_NUM_BACKEND_THREADS", raising=False)
    try:
        torch.set_num_threads(1)  # what LensKit's first fit does on a 2-core machine
        assert configure_threads() == 2
        assert torch.get_num_threads() == 2
        import os

        assert os.environ["LK_NUM_BACKEND_THREADS"] == "2"  # LensKit's own setting
    finally:
        torch.set_num_threads(before)
