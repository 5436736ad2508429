"""`personasim evaluate`: score the test ratings with every model (writes eval/)."""

from __future__ import annotations

from typing import Annotated

import typer

from personasim.cli._common import (
    ConfigOpt,
    ExecutorOpt,
    ForceOpt,
    RayAddressOpt,
    WorkdirOpt,
    nested,
    print_metrics,
    print_results,
    scale_overrides,
)
from personasim.config import deep_merge
from personasim.pipeline import EvaluateStage, resolve_config, run_stage
from personasim.progress import console
from personasim.run_folder import EVAL
from personasim.workspace import Workspace

__all__ = ["evaluate"]


def evaluate(
    workdir: WorkdirOpt,
    config: ConfigOpt = None,
    seed: Annotated[int | None, typer.Option(help="Seed of model fitting.")] = None,
    baselines_only: Annotated[
        bool,
        typer.Option(
            "--baselines-only",
            help=(
                "Score the baselines only (evaluate.agents = []): no trained agents needed "
                "(the agents' priors alone are scored when train has run)."
            ),
        ),
    ] = False,
    force: ForceOpt = False,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Fit the baselines, predict every test rating, write eval/predictions.parquet and
    eval/metrics.json.

    The agents of `evaluate.agents` must have been trained (`personasim train`; exit
    code 3 otherwise, with the command); --baselines-only scores the baselines (and,
    when train has run, the agents' priors alone, which need no language model).
    """
    workspace = Workspace(workdir)
    overrides = deep_merge(nested(seed=seed), scale_overrides(executor, ray_address))
    if baselines_only:
        overrides = deep_merge(overrides, {"evaluate": {"agents": []}})
    cfg = resolve_config(workspace, config, overrides)
    result = run_stage(EvaluateStage, workspace, cfg, force=force)
    print_results([result])
    print_metrics(result.summary["metrics"])
    console.print(f"written: {workspace.stage_dir(EVAL.stage)}")
