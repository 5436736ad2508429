"""Every stage's throughput in one table: the fast path against the naive one, same run.

    .venv/bin/python benchmarks/run_all.py [--full] [--only ingest score ...]
        [--json FILE] [--gpu-results benchmarks/results/gpu.json]

Stages: ingest (Arrow reader vs a csv loop, ML-1M), tables (out-of-core DuckDB vs pandas,
synthetic 10k users), profile (batched vs one user at a time, SmolLM2), train (packed vs
plain LoRA loop), score (shared prefix + mixed-persona batches vs one prompt per item),
simulate (batched pages vs one user at a time). Each path runs in its own process, so
each peak memory is its own; ratios divide by the naive path of the same stage measured
in this run. The default sizes are small (about 10 minutes on 2 CPU cores); `--full`
uses each benchmark's own defaults.

The scoring rows also give the FLOP floor: 2 x parameters x tokens of the forward passes
over this machine's measured matmul rate (float32 on a CPU, bf16 on CUDA), and the share
of it reached. When a GPU run's results exist (`--gpu-results`, written by this command
with `--json` on a GPU machine), its table is printed after this one.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ingest_throughput  # noqa: E402
import profile_throughput  # noqa: E402
import scale_tables  # noqa: E402
import score_throughput  # noqa: E402
import simulate_sessions  # noqa: E402
import train_throughput  # noqa: E402
from common import Row, matmul_flops, print_rows  # noqa: E402

QUICK = {
    "ingest": lambda: ingest_throughput.measure("ml-1m", repeat=1),
    "tables": lambda: scale_tables.measure(
        [10_000], 10_000, Path("/tmp/personasim-bench-tables"), "2GB"
    )[0],
    "profile": lambda: profile_throughput.measure(users=4, ratings=10, dataset="ml-100k"),
    "train": lambda: train_throughput.measure(examples=32, epochs=1, users=4),
    "score": lambda: score_throughput.measure(users=4, items=16),
    "simulate": lambda: simulate_sessions.measure(users=6, pages=2),
}
FULL = {
    "ingest": lambda: ingest_throughput.measure(),
    "tables": lambda: scale_tables.measure(
        [10_000, 100_000], 100_000, Path("/tmp/personasim-bench-tables"), "4GB"
    )[0],
    "profile": lambda: profile_throughput.measure(),
    "train": lambda: train_throughput.measure(),
    "score": lambda: score_throughput.measure(),
    "simulate": lambda: simulate_sessions.measure(),
}


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _machine(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def _floor(rows: list[Row], rate: float) -> None:
    for r in rows:
        if r.flops:
            floor = r.flops / rate
            r.note += f"; FLOP floor {floor:.2f} s ({floor / r.seconds:.0%} of it reached)"


def main() -> None:
    """Run the chosen stages' benchmarks and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="Each benchmark's own sizes.")
    parser.add_argument("--only", nargs="+", choices=list(QUICK), help="Just these stages.")
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    parser.add_argument(
        "--gpu-results",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "gpu.json",
        help="A GPU run's --json output, printed after this run's table.",
    )
    args = parser.parse_args()
    device = _device()
    rate = matmul_flops(device)
    chosen = FULL if args.full else QUICK
    rows: list[Row] = []
    started = time.perf_counter()
    for stage in args.only or list(chosen):
        t0 = time.perf_counter()
        print(f"[{stage}] running ...", file=sys.stderr, flush=True)
        rows.extend(chosen[stage]())
        print(f"[{stage}] {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    _floor(rows, rate)
    machine = _machine(device)
    title = (
        f"personasim benchmarks on {machine} (matmul {rate / 1e9:,.0f} GFLOP/s), "
        f"{'full' if args.full else 'quick'} sizes, {time.perf_counter() - started:.0f} s"
    )
    print_rows(rows, title)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": machine,
            "device": device,
            "matmul_flops": rate,
            "date": time.strftime("%Y-%m-%d"),
            "rows": [r.as_dict() for r in rows],
        }
        args.json.write_text(json.dumps(payload, indent=1))
    if device != "cuda" and args.gpu_results.exists():
        gpu = json.loads(args.gpu_results.read_text())
        gpu_rows = [Row(**{k: v for k, v in r.items() if k != "rate"}) for r in gpu["rows"]]
        print()
        print_rows(gpu_rows, f"last GPU run: {gpu['machine']}, {gpu['date']}")
    elif device != "cuda":
        print("\nno GPU run recorded (run this command with --json on a GPU machine)")


if __name__ == "__main__":
    main()
