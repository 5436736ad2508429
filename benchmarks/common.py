"""What every benchmark shares: one process per measured path (so each peak memory is
its own), a row per path, and one table whose ratios compare paths of the same run."""

from __future__ import annotations

import multiprocessing as mp
import resource
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Row", "isolated", "matmul_flops", "naive_rates", "peak_mib", "print_rows"]


@dataclass
class Row:
    """One measured path of one stage.

    Attributes:
        stage: What is measured ("ingest", "score", ...).
        path: Which implementation ("naive", "fast", ...).
        work: How much work it did, in `unit`.
        unit: What `work` counts ("rows", "decisions", ...).
        seconds: Wall time of the work (loading excluded unless said).
        peak_mib: Peak resident memory of the process that did it.
        naive: Whether this is the baseline of its stage (ratios divide by it).
        note: Anything the reader needs (sizes, settings).
    """

    stage: str
    path: str
    work: float
    unit: str
    seconds: float
    peak_mib: float
    naive: bool = False
    note: str = ""
    flops: float = 0.0
    """Model FLOPs of the work (2 x parameters x tokens of the forward passes), when
    known: with the machine's matmul rate in `dtype` it gives the floor of `seconds`."""
    dtype: str = ""
    """The compute dtype of the path ("float32", "bfloat16"), when it has one."""
    tokens_per_unit: float = 0.0
    """Tokens through the model per unit of work (e.g. per decision), when known."""
    floor_seconds: float = 0.0
    """`flops` over the matmul rate measured in `dtype` on this machine (filled by the
    runner)."""

    @property
    def rate(self) -> float:
        """Work per second."""
        return self.work / self.seconds if self.seconds > 0 else float("nan")

    def as_dict(self, naive_rate: float | None = None) -> dict[str, Any]:
        """JSON-ready, with the throughput and the ratio to the stage's naive path."""
        return {
            **asdict(self),
            "throughput": self.rate,
            "vs_naive": self.rate / naive_rate if naive_rate else None,
            "floor_ratio": self.seconds / self.floor_seconds if self.floor_seconds else None,
        }


def peak_mib(pid: int | str = "self") -> float:
    """A process's peak resident memory (MiB), this one's by default. Linux's VmHWM
    belongs to the process image, so a spawned child does not inherit its parent's peak
    (ru_maxrss does)."""
    try:
        for line in open(f"/proc/{pid}/status", encoding="ascii"):  # noqa: SIM115
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    if pid != "self":
        return float("nan")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(target: Callable[..., Any], args: tuple[Any, ...], queue: Any) -> None:
    try:
        result = target(*args)
        queue.put(("ok", result, peak_mib()))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        queue.put(("error", f"{type(e).__name__}: {e}", 0.0))


def isolated(target: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Run ``target(*args)`` in a fresh process; return its result and peak RSS (MiB).

    Raises:
        RuntimeError: The child failed (its error message).
    """
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(target, args, queue))
    proc.start()
    status, result, peak = queue.get()
    proc.join()
    if status != "ok":
        raise RuntimeError(result)
    return result, peak


def print_rows(rows: list[Row], title: str = "") -> None:
    """A Markdown table: rate, ratio to the naive path of the same stage, peak memory."""
    if title:
        print(f"{title}\n")
    print(
        "| stage | path | dtype | work | seconds | throughput | vs naive | x FLOP floor "
        "| peak RSS (MiB) | note |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    naive = naive_rates(rows)
    for r in rows:
        base = naive.get(r.stage)
        ratio = f"{r.rate / base:.2f}x" if base else "-"
        work = f"{r.work:,.0f} {r.unit}"
        rate = f"{r.rate:,.1f} {r.unit}/s"
        floor = f"{r.seconds / r.floor_seconds:.2f}" if r.floor_seconds else "-"
        print(
            f"| {r.stage} | {r.path} | {r.dtype or '-'} | {work} | {r.seconds:.2f} | {rate} "
            f"| {ratio} | {floor} | {r.peak_mib:,.0f} | {r.note} |"
        )


def naive_rates(rows: list[Row]) -> dict[str, float]:
    """The rate of each stage's naive path."""
    return {r.stage: r.rate for r in rows if r.naive}


def matmul_flops(
    device: str = "cpu", dtype_name: str = "float32", size: int = 2048, repeat: int = 5
) -> float:
    """The measured dense matmul rate (FLOP/s) of `device` in `dtype_name`, best of
    `repeat`."""
    import time

    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeat + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best
