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
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Row, isolated, print_rows  # noqa: E402


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


def measure(dataset: str = "ml-1m", repeat: int = 3) -> list[Row]:
    """Rows/s of both readers, best of `repeat` (interleaved: the machine is noisy)."""
    best: dict[str, Row] = {}
    for _ in range(repeat):
        for name, fn, naive in (("personasim", _fast, False), ("naive csv loop", _naive, True)):
            (n, seconds), peak = isolated(fn, dataset)
            if name not in best or seconds < best[name].seconds:
                note = f"{dataset}, best of {repeat}"
                best[name] = Row("ingest", name, n, "rows", seconds, peak, naive, note)
    return list(best.values())


def main() -> None:
    """Print rows/s of both paths, their ratio and peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print_rows(measure(args.dataset, args.repeat), f"ingestion of {args.dataset}")


if __name__ == "__main__":
    main()
