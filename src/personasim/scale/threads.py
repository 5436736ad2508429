"""How many CPU threads torch runs on, whatever else initialised it.

LensKit, on its first fit, sets torch's intra-op threads to its "backend threads":
``max(min(cpus // threads, 4), 1)``, which is 1 on a 2-core machine. Every model stage
fits a LensKit model (the CF prior, the baselines, the recommenders) before it scores or
trains, so the agents then ran on one core of two: half the speed. personasim tells
LensKit the count it wants through LensKit's own setting (``LK_NUM_BACKEND_THREADS``)
and sets torch's count again where model work starts.
"""

from __future__ import annotations

import os

__all__ = ["compute_threads", "configure_threads"]

_LENSKIT_BACKEND = "LK_NUM_BACKEND_THREADS"


def compute_threads(requested: int = 0) -> int:
    """Threads for model work: `requested`, else the standard ``OMP_NUM_THREADS`` (a Ray
    worker's share, or the user's), else every core."""
    if requested > 0:
        return requested
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    return os.cpu_count() or 1


def configure_threads(requested: int = 0) -> int:
    """Set torch's intra-op threads to :func:`compute_threads` (and LensKit's backend
    threads, unless the user set them) and return the count."""
    import torch

    threads = compute_threads(requested)
    os.environ.setdefault(_LENSKIT_BACKEND, str(threads))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
