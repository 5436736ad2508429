"""`personasim config`: show the effective configuration or the reference of all keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from personasim.cli._common import ConfigOpt
from personasim.config import config_reference, dump_config, load_config, read_toml
from personasim.run_folder import RUN

__all__ = ["config_app"]

config_app = typer.Typer(help="Show the configuration and its reference.", no_args_is_help=True)


@config_app.command("show")
def show(
    workdir: Annotated[Path | None, typer.Option("--workdir", "-w", help="A run folder.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Print the effective configuration as TOML (defaults, run folder, --config)."""
    layers = []
    run_config = None if workdir is None else workdir / RUN.config
    if run_config is not None and run_config.exists():
        layers.append((str(run_config), read_toml(run_config)))
    if config is not None:
        layers.append((str(config), read_toml(config)))
    typer.echo(dump_config(load_config(layers)), nl=False)


@config_app.command("reference")
def reference() -> None:
    """Print every configuration key with its default and meaning (Markdown)."""
    typer.echo(config_reference())
