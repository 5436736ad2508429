"""`personasim profile`: traits, profiles and rationales with the frozen LLM."""

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
    print_results,
    scale_overrides,
)
from personasim.config import deep_merge
from personasim.pipeline import ProfileStage, resolve_config, run_stage
from personasim.progress import console
from personasim.run_folder import PROFILES
from personasim.workspace import Workspace

__all__ = ["profile"]


def profile(
    workdir: WorkdirOpt,
    config: ConfigOpt = None,
    backend: Annotated[
        str | None,
        typer.Option(help='"hf", "llamacpp", "openai", "template" or a plug-in.'),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help='"smollm2", a model folder, a GGUF file or a server model.')
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Prompts per batch (hf).", min=1)] = None,
    rationales: Annotated[
        bool | None, typer.Option("--rationales/--no-rationales", help="Write rationales (Ml).")
    ] = None,
    template_rationales: Annotated[
        bool | None,
        typer.Option("--template-rationales", help="Render rationales from the data, no model."),
    ] = None,
    force: ForceOpt = False,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Distil each user's train history into a profile and rationales (writes profiles/)."""
    overrides = nested(
        llm__backend=backend,
        llm__model=model,
        llm__base_url=base_url,
        llm__batch_size=batch_size,
        profile__rationales=rationales,
        profile__rationale_backend="template" if template_rationales else None,
    )
    overrides = deep_merge(overrides, scale_overrides(executor, ray_address))
    workspace = Workspace(workdir)
    cfg = resolve_config(workspace, config, overrides)
    result = run_stage(ProfileStage, workspace, cfg, force=force)
    print_results([result])
    s = result.summary
    console.print(
        f"{s['users']} profiles with {s['backend'].get('backend')} in {s['seconds']} s "
        f"({s['users_per_s']} users/s); degenerate generations: "
        f"{s['summaries']['degenerate'] or 'none'} (profiles), "
        f"{(s['rationales'] or {}).get('degenerate') or 'none'} (rationales)"
    )
    console.print(f"written: {workspace.stage_dir(PROFILES.stage)}")
