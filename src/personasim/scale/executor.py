"""Where the heavy stages run: in this process, or as Ray work.

An :class:`Executor` maps a function over independent pieces of work (chunks of users to
profile, personas to train) and scores a table of pairs with a scorer it builds where
the work runs (the agents, for the evaluation). The in-process executor is a plain
loop; the Ray executor submits Ray tasks (GPUs requested when the cluster has them) and
scores with Ray Data over partitions of users. It knows nothing of what it runs: the
callers hand it functions.

Each piece of work is a pure function of its inputs and seeds, so the results do not
depend on the executor (tests check Ray against in-process on a local 2-CPU Ray).

With Ray, the run folder must be visible to every node at the same path (a shared
filesystem; on one machine it always is): workers read the run's artifacts and write
their checkpoints there, exactly as the in-process code does.
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import pandas as pd

from personasim.config import ScaleConfig
from personasim.errors import ConfigError
from personasim.progress import progress

__all__ = ["Executor", "InProcessExecutor", "RayExecutor", "get_executor"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

PairScorer = Callable[[pd.DataFrame], pd.DataFrame]
"""Scores a table of ``user_id, item_id`` pairs: one output row per input row."""


class Executor(Protocol):
    """Runs independent pieces of work and scores rating pairs."""

    name: str
    parallelism: int
    """How many pieces can run at once (to size the chunks of work)."""
    gpus: int
    """GPUs available to the work (0 on CPU)."""

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], *, label: str, gpu: bool = False
    ) -> list[R]:
        """`fn` over `items`, results in order; `gpu` asks a GPU per piece when present."""
        ...

    def score_pairs(
        self, make_scorer: Callable[[], PairScorer], pairs: pd.DataFrame
    ) -> pd.DataFrame:
        """``make_scorer()(pairs)``, a user's pairs always in one call; `make_scorer`
        (picklable for Ray) builds the scorer where the work runs, once per worker."""
        ...


class InProcessExecutor:
    """Everything in this process, one piece after the other."""

    name = "in-process"
    parallelism = 1

    @property
    def gpus(self) -> int:
        """CUDA devices of this machine."""
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], *, label: str, gpu: bool = False
    ) -> list[R]:
        """A loop."""
        return [fn(item) for item in items]

    def score_pairs(
        self, make_scorer: Callable[[], PairScorer], pairs: pd.DataFrame
    ) -> pd.DataFrame:
        """Build the scorer here and score every pair."""
        return make_scorer()(pairs)


class _PairScorer:
    """A Ray Data actor: builds the scorer once, scores one partition of users per call."""

    def __init__(self, make_scorer: Callable[[], PairScorer]) -> None:
        self.scorer = make_scorer()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        scored = self.scorer(batch.drop(columns="position"))
        return scored.assign(position=batch["position"].to_numpy())


class RayExecutor:
    """Ray tasks for pieces of work, Ray Data actors for scoring.

    Args:
        scale: The `[scale]` section (cluster address, local CPUs, scoring workers).
    """

    name = "ray"

    def __init__(self, scale: ScaleConfig) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                'scale.executor = "ray" needs Ray: pip install "personasim[ray]" (or "ray[data]")'
            ) from None
        self.scale = scale
        self._started = False
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.WARNING,
                "log_to_driver": False,
            }
            if scale.ray_address:
                options["address"] = scale.ray_address
            else:
                options["num_cpus"] = scale.ray_cpus or os.cpu_count() or 1
            ray.init(**options)
            self._started = True
        resources = ray.cluster_resources()
        self.cpus = int(resources.get("CPU", 1))
        self.gpus = int(resources.get("GPU", 0))
        self.parallelism = max(self.gpus or self.cpus, 1)
        logger.info("ray: %d CPU(s), %d GPU(s)", self.cpus, self.gpus)

    def _options(self, gpu: bool) -> dict[str, Any]:
        if gpu and self.gpus:
            return {"num_cpus": 1, "num_gpus": 1}
        return {"num_cpus": 1}

    def map(
        self, fn: Callable[[T], R], items: Sequence[T], *, label: str, gpu: bool = False
    ) -> list[R]:
        """One Ray task per item; waits for all, in order, with a progress bar."""
        import ray

        if not items:
            return []
        remote = ray.remote(_call).options(**self._options(gpu))
        refs = [remote.remote(fn, item) for item in items]
        pending = list(refs)
        with progress(label, total=len(refs), unit="tasks") as advance:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                advance(len(done))
        return ray.get(refs)

    def score_pairs(
        self, make_scorer: Callable[[], PairScorer], pairs: pd.DataFrame
    ) -> pd.DataFrame:
        """Ray Data over partitions of users: each actor builds the scorer once and scores
        whole users (a user's pairs never straddle two calls)."""
        import ray

        if pairs.empty:
            return InProcessExecutor().score_pairs(make_scorer, pairs)
        workers = self.scale.ray_workers or max(1, (self.gpus or self.cpus // 2))
        users = pairs["user_id"].drop_duplicates().tolist()
        parts = max(1, min(len(users), workers * 4))
        owner = {u: i * parts // len(users) for i, u in enumerate(users)}
        frame = pairs.assign(position=range(len(pairs)))
        blocks = [g for _, g in frame.groupby(frame["user_id"].map(owner), sort=True)]
        dataset = ray.data.from_pandas(blocks)
        scored = dataset.map_batches(
            _PairScorer,
            fn_constructor_kwargs={"make_scorer": make_scorer},
            batch_size=None,  # one block = one partition of whole users
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=min(workers, parts)),
            num_cpus=1 if not self.gpus else 0,
            num_gpus=1 if self.gpus else 0,
        )
        with progress(f"scoring on ray ({workers} workers)", total=None):
            out = scored.to_pandas()
        out = out.sort_values("position").drop(columns="position")
        # Ray hands back Arrow-backed columns: the same NumPy types as in-process.
        return pd.DataFrame(
            {c: out[c].to_numpy(dtype=_numpy_dtype(out[c])) for c in out.columns},
            index=pairs.index,
        )

    def close(self) -> None:
        """Shut down the local Ray this executor started (a joined cluster stays up)."""
        import ray

        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False


def _numpy_dtype(column: pd.Series) -> Any:
    dtype = column.dtype
    return getattr(dtype, "numpy_dtype", None) if isinstance(dtype, pd.ArrowDtype) else None


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


_EXECUTORS: dict[tuple[Any, ...], Executor] = {}


def get_executor(scale: ScaleConfig) -> Executor:
    """The executor of `scale.executor`, one per process and setting: a local Ray is
    started on first use (or a cluster joined) and shut down when Python exits."""
    if scale.executor == "in-process":
        return InProcessExecutor()
    key = (scale.executor, scale.ray_address, scale.ray_cpus, scale.ray_workers)
    if key not in _EXECUTORS:
        for old in list(_EXECUTORS.values()):  # one Ray per process
            old.close()  # type: ignore[attr-defined]
        _EXECUTORS.clear()
        executor = RayExecutor(scale)
        atexit.register(executor.close)
        _EXECUTORS[key] = executor
    return _EXECUTORS[key]
