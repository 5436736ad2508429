"""Shared pieces of the CLI: options, logging set-up, output tables."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.logging import RichHandler
from rich.table import Table

from personasim.pipeline.stage import StageResult
from personasim.progress import console

__all__ = [
    "ConfigOpt",
    "ForceOpt",
    "WorkdirOpt",
    "configure_logging",
    "nested",
    "print_metrics",
    "print_results",
]

WorkdirOpt = Annotated[
    Path,
    typer.Option(
        "--workdir",
        "-w",
        help="The run folder (created if missing).",
        file_okay=False,
        resolve_path=True,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="A TOML run configuration (see `personasim config reference`).",
        dir_okay=False,
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Redo the stage even if it is up to date.")]
ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        "--executor",
        help='"in-process" or "ray": run the heavy work as Ray tasks (scale.executor).',
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help='Join this Ray cluster (e.g. "auto", "ray://head:10001"); implies --executor ray.',
    ),
]


def scale_overrides(executor: str | None, ray_address: str | None) -> dict[str, Any]:
    """The `[scale]` overrides of --executor and --ray-address."""
    if executor is not None and executor not in ("in-process", "ray"):
        raise typer.BadParameter(
            f'{executor!r}: use "in-process" or "ray"', param_hint="--executor"
        )
    if ray_address and executor == "in-process":
        raise typer.BadParameter("--ray-address needs --executor ray", param_hint="--ray-address")
    return nested(
        scale__executor="ray" if ray_address else executor, scale__ray_address=ray_address
    )


def configure_logging(verbosity: int, quiet: bool) -> None:
    """INFO by default (stage decisions), DEBUG with -v, WARNING with --quiet."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbosity else logging.INFO)
    handler = RichHandler(
        console=console,
        show_path=verbosity > 0,
        show_time=verbosity > 0,
        rich_tracebacks=True,
        markup=False,
    )
    logging.basicConfig(level=level, handlers=[handler], format="%(message)s", force=True)
    # Libraries speak only when asked to.
    for name in ("lenskit", "numba", "urllib3", "filelock", "sentence_transformers", "httpx"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity > 1 else logging.WARNING)


def nested(**flat: Any) -> dict[str, Any]:
    """Turn ``{"split.users": 10, "seed": 1}`` into nested settings, dropping Nones."""
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        if value is None:
            continue
        node = out
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def print_results(results: list[StageResult]) -> None:
    """A table of what each stage did."""
    table = Table(title="stages", title_justify="left")
    for col in ("stage", "status", "why", "wall time (s)"):
        table.add_column(col)
    for r in results:
        status = "[green]ran[/green]" if r.ran else "[dim]skipped[/dim]"
        table.add_row(r.stage, status, r.reason, f"{r.recorded_wall_time_s:.1f}")
    console.print(table)


def print_metrics(metrics: dict[str, dict[str, Any]]) -> None:
    """The rating-fidelity table of ``eval/metrics.json``: every model on the same pairs
    (those the agents scored, when they scored a sample), ranked by RMSE there."""
    if not metrics:
        console.print("rating fidelity: not measured (the log has no ratings)")
        return
    shared = {
        name: {**m, **m["on_agent_pairs"]} if "on_agent_pairs" in m else m
        for name, m in metrics.items()
    }
    sizes = {m["n"] for m in shared.values()}
    title = (
        f"rating prediction on the {sizes.pop()} test pairs every model scored"
        if len(sizes) == 1
        else "rating prediction on the test ratings"
    )
    sampled = any("on_agent_pairs" in m for m in metrics.values())
    table = Table(title=title, title_justify="left")
    columns = ["model", "RMSE", "MAE", "URR", "n", "users"]
    for col in columns + (["RMSE (all test pairs)"] if sampled else []):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, m in sorted(shared.items(), key=lambda kv: kv[1].get("rmse", 9)):
        row = [
            name,
            f"{m['rmse']:.4f}",
            f"{m['mae']:.4f}",
            f"{m['urr']:.3f}" if "urr" in m else "",
            str(m["n"]),
            str(metrics[name].get("n_users", "")),
        ]
        if sampled:
            row.append(f"{metrics[name]['rmse']:.4f}" if "on_agent_pairs" in metrics[name] else "")
        table.add_row(*row)
    console.print(table)
    if any(m.get("kind") == "agent" and m.get("urr", 0) >= 0.5 for m in metrics.values()):
        console.print(
            "URR: the share of answers whose free text would not start with a rating (greedy "
            "decoding). The predictions are read from the rating digits' probabilities, so a "
            "high URR (briefly trained adapters, the base model) leaves the RMSE meaningful: "
            "it says the agent would not answer with a rating if asked to write one."
        )
    fit = {m.get("fit_data") for m in metrics.values() if m.get("fit_data")}
    if fit:
        console.print(f"baselines fitted on: {'; '.join(sorted(fit))}")
