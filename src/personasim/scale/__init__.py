"""Scale-out: the heavy stages on Ray (see :mod:`personasim.scale.executor`)."""

from __future__ import annotations

from personasim.scale.executor import Executor, InProcessExecutor, RayExecutor, get_executor

__all__ = ["Executor", "InProcessExecutor", "RayExecutor", "get_executor"]
