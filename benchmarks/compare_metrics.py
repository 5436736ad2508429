"""Two metrics.json files compared number by number, timings left out: what a refactor
must leave unchanged (issue 37 checked the demo's `eval/` and `simulate/` metrics with it).

    .venv/bin/python benchmarks/compare_metrics.py BEFORE.json AFTER.json

Keys that hold durations (``wall_time_s`` and any ``*_s``, ``*seconds*``) are dropped;
NaN equals NaN; every other value must be equal exactly. Exit status 1 on a difference.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any


def _is_timing(key: str) -> bool:
    return key.endswith("_s") or "seconds" in key or key == "wall_time"


def without_timings(value: Any) -> Any:
    """`value` with every duration key removed, recursively."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not _is_timing(k)}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def differences(before: Any, after: Any, where: str = "") -> list[str]:
    """Every place where `after` differs from `before` (``path: before != after``)."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = [f"{where}/{k}: only in one file" for k in sorted(set(before) ^ set(after))]
        for key in sorted(set(before) & set(after)):
            found += differences(before[key], after[key], f"{where}/{key}")
        return found
    if isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            return [f"{where}: {len(before)} items != {len(after)}"]
        return [
            d
            for i, pair in enumerate(zip(before, after, strict=True))
            for d in differences(*pair, f"{where}[{i}]")
        ]
    both_nan = all(isinstance(v, float) and math.isnan(v) for v in (before, after))
    if before != after and not both_nan:
        return [f"{where}: {before!r} != {after!r}"]
    return []


def main() -> None:
    """Print the differences of two metrics files (or that they are identical)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    args = parser.parse_args()
    before, after = (without_timings(json.loads(p.read_text())) for p in (args.before, args.after))
    found = differences(before, after)
    print("\n".join(found) if found else "identical (timings left out)")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
