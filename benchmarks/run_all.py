"""Every stage's throughput in one table: the fast path against the naive one, same run.

    .venv/bin/python benchmarks/run_all.py [--full] [--stages score,train]
        [--json FILE] [--gpu-results benchmarks/results/gpu.json]

Stages: ingest (Arrow reader vs a csv loop, ML-1M), tables (out-of-core DuckDB vs pandas,
synthetic 10k users), profile (batched vs one user at a time, SmolLM2), train (packed vs
plain LoRA loop), score (shared prefix + mixed-persona batches vs one prompt per item),
simulate (batched pages vs one user at a time). Each path runs in its own process, so
each peak memory is its own; ratios divide by the naive path of the same stage measured
in this run. The default sizes are small (about 10 minutes on 2 CPU cores); `--full`
uses each benchmark's own defaults.

The scoring and training rows also give the FLOP floor: their model FLOPs (2 x
parameters x tokens per forward pass) over this machine's matmul rate measured in the
row's own dtype (float32, bf16), and how many times the floor the path took. When a
GPU run's results exist (`--gpu-results`, written by this command
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
import prior_agents  # noqa: E402
import profile_throughput  # noqa: E402
import scale_tables  # noqa: E402
import score_throughput  # noqa: E402
import simulate_sessions  # noqa: E402
import train_throughput  # noqa: E402
from common import Row, isolated, matmul_flops, naive_rates, print_rows  # noqa: E402

QUICK = {
    "ingest": lambda: ingest_throughput.measure("ml-1m", repeat=1),
    "tables": lambda: scale_tables.measure(
        [10_000], 10_000, Path("/tmp/personasim-bench-tables"), "2GB"
    )[0],
    "profile": lambda: profile_throughput.measure(users=4, ratings=10, dataset="ml-100k"),
    "train": lambda: train_throughput.measure(examples=64, epochs=2, users=4),
    "score": lambda: score_throughput.measure(users=4, items=32),
    "simulate": lambda: simulate_sessions.measure(users=8, pages=5),
    "agents": lambda: prior_agents.measure(users=8, items=32),
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
    "agents": lambda: prior_agents.measure(),
}


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _machine(device: str) -> str:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_name(0)
    threads, _ = isolated(torch.get_num_threads)
    return f"{platform.processor() or platform.machine()} CPU, {threads} threads"


def _floors(rows: list[Row], device: str) -> dict[str, float]:
    """Fill each row's FLOP floor from a matmul measured in its dtype; the rates."""
    rates = {}
    for r in rows:
        if r.flops:
            dtype = r.dtype or ("bfloat16" if device == "cuda" else "float32")
            if dtype not in rates:  # in a fresh process, as the paths ran
                rates[dtype], _ = isolated(matmul_flops, device, dtype)
            r.floor_seconds = r.flops / rates[dtype]
            r.note += f"; FLOP floor {r.floor_seconds:.2f} s at {rates[dtype] / 1e9:,.0f} GFLOP/s"
    return rates


def main() -> None:
    """Run the chosen stages' benchmarks and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="Each benchmark's own sizes.")
    parser.add_argument(
        "--stages",
        "--only",
        type=lambda text: [x for x in text.replace(" ", ",").split(",") if x],
        help=f"Comma-separated stages ({', '.join(QUICK)}); default all.",
    )
    parser.add_argument("--json", type=Path, help="Also write the rows here (a JSON list).")
    parser.add_argument(
        "--gpu-results",
        type=Path,
        default=Path(__file__).resolve().parent / "results" / "gpu.json",
        help="A GPU run's --json output, printed after this run's table.",
    )
    args = parser.parse_args()
    unknown = sorted(set(args.stages or []) - set(QUICK))
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(QUICK)}")
    device = _device()
    chosen = FULL if args.full else QUICK
    rows: list[Row] = []
    started = time.perf_counter()
    for stage in args.stages or list(chosen):
        t0 = time.perf_counter()
        print(f"[{stage}] running ...", file=sys.stderr, flush=True)
        rows.extend(chosen[stage]())
        print(f"[{stage}] {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    rates = _floors(rows, device)
    machine = _machine(device)
    matmul = ", ".join(f"{k} {v / 1e9:,.0f}" for k, v in rates.items())
    title = (
        f"personasim benchmarks on {machine} (matmul GFLOP/s: {matmul or 'not measured'}), "
        f"{'full' if args.full else 'quick'} sizes, {time.perf_counter() - started:.0f} s"
    )
    print_rows(rows, title)
    if args.json:
        naive = naive_rates(rows)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "machine": machine,
            "device": device,
            "date": time.strftime("%Y-%m-%d"),
            "matmul_flops": rates,
        }
        payload = [{**r.as_dict(naive.get(r.stage)), **meta} for r in rows]
        args.json.write_text(json.dumps(payload, indent=1) + "\n")
    if device != "cuda" and args.gpu_results.exists():
        gpu = json.loads(args.gpu_results.read_text())
        gpu = gpu["rows"] if isinstance(gpu, dict) else gpu
        fields = set(Row.__dataclass_fields__)
        gpu_rows = [Row(**{k: v for k, v in r.items() if k in fields}) for r in gpu]
        print()
        print_rows(gpu_rows, f"last GPU run: {gpu[0].get('machine', '?') if gpu else '?'}")
    elif device != "cuda":
        print("\nno GPU run recorded (run this command with --json on a GPU machine)")


if __name__ == "__main__":
    main()
