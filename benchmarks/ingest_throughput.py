"""Throughput of log ingestion: personasim's reader against a naive one, same run.

The fast path is :func:`personasim.data.log.load_log` (Arrow CSV reader, vectorised
validation with exact error locations). The naive path is what one writes by hand: the
standard `csv` module and per-row Python checks with the same rules (ids present,
numeric rating on the scale, whole timestamps, no repeated user-item pair). Each runs
in its own process so that peak memory is its own.

    .venv/bin/python benchmarks/ingest_throughput.py [--dataset ml-1m] [--repeat 3]
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import resource
import time


def _fast(dataset: str) -> tuple[int, float]:
    from personasim.config import DataConfig
    from personasim.data.log import load_log
    from personasim.data.sources import log_spec

    spec = log_spec(DataConfig(dataset=dataset))
    t0 = time.perf_counter()
    log = load_log(spec)
    return len(log.interactions), time.perf_counter() - t0


def _naive(dataset: str) -> tuple[int, float]:
    from personasim.config import DataConfig
    from personasim.data.sources import log_spec

    spec = log_spec(DataConfig(dataset=dataset))
    t0 = time.perf_counter()
    seen: set[tuple[str, str]] = set()
    rows = []
    with spec.path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=spec.delimiter, quoting=csv.QUOTE_NONE)
        header = next(reader)
        cu, ci = header.index(spec.columns.user), header.index(spec.columns.item)
        cr, ct = header.index(spec.columns.rating), header.index(spec.columns.timestamp)
        for line, fields in enumerate(reader, start=2):
            user, item = fields[cu].strip(), fields[ci].strip()
            if not user or not item:
                raise ValueError(f"row {line}: empty id")
            rating = float(fields[cr])
            if not spec.rating_scale[0] <= rating <= spec.rating_scale[1]:
                raise ValueError(f"row {line}: rating out of scale")
            stamp = float(fields[ct])
            if stamp % 1:
                raise ValueError(f"row {line}: fractional timestamp")
            if (user, item) in seen:
                raise ValueError(f"row {line}: duplicate")
            seen.add((user, item))
            rows.append((user, item, rating, int(stamp), line))
    return len(rows), time.perf_counter() - t0


def _measure(fn, dataset: str, queue: mp.Queue) -> None:
    n, seconds = fn(dataset)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((n, seconds, peak_mib))


def _run(fn, dataset: str) -> tuple[int, float, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure, args=(fn, dataset, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    """Print rows/s of both paths, their ratio and peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    best: dict[str, tuple[int, float, float]] = {}
    for _ in range(args.repeat):  # interleaved, best of N: the machine is noisy
        for name, fn in (("personasim", _fast), ("naive csv loop", _naive)):
            n, seconds, peak = _run(fn, args.dataset)
            if name not in best or seconds < best[name][1]:
                best[name] = (n, seconds, peak)
    naive_rate = best["naive csv loop"][0] / best["naive csv loop"][1]
    print(f"ingestion of {args.dataset} (best of {args.repeat})\n")
    print("| path | rows | seconds | rows/s | speed-up | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for name, (n, seconds, peak) in best.items():
        rate = n / seconds
        print(
            f"| {name} | {n} | {seconds:.2f} | {rate:,.0f} | {rate / naive_rate:.1f}x "
            f"| {peak:.0f} |"
        )


if __name__ == "__main__":
    main()
