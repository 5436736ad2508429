"""`personasim personas`: cluster users into personas; `personas assign`: place new users."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.markup import escape
from rich.table import Table

from personasim.cli._common import ConfigOpt, ForceOpt, WorkdirOpt, nested, print_results
from personasim.errors import ColumnError, ConfigError, DataError
from personasim.personas.assignment import PersonaModel
from personasim.personas.features import TRAIT_COLUMNS
from personasim.pipeline import PersonasStage, resolve_config, run_stage
from personasim.progress import console
from personasim.run_folder import PERSONAS
from personasim.workspace import Workspace, atomic_path

__all__ = ["personas_app"]

personas_app = typer.Typer(
    help="Group users into personas (run with no sub-command), or assign new users.",
    invoke_without_command=True,
)


def print_cards(cards: list[dict]) -> None:
    """The persona cards as a table, then each persona's description."""
    table = Table(title="personas", title_justify="left")
    columns = (
        "persona",
        "users",
        "activity l/m/h",
        "conformity l/m/h",
        "diversity l/m/h",
        "top genres",
        "set apart by",
        "mean rating",
    )
    for col in columns:
        table.add_column(col, overflow="fold")
    for card in cards:
        traits = [
            "/".join(str(card["traits"][t][lvl]) for lvl in ("low", "medium", "high"))
            for t in ("activity", "conformity", "diversity")
        ]
        genres = ", ".join(f"{g['genre']} {g['share']:.0%}" for g in card["top_genres"][:3])
        table.add_row(
            card["persona"],
            f"{card['size']} ({card['share']:.0%})",
            *traits,
            genres,
            "; ".join(d["text"] for d in card.get("distinguishing", [])),
            "-" if card["mean_rating"] is None else f"{card['mean_rating']:.2f}",
        )
    console.print(table)
    for card in cards:
        if card.get("description"):
            console.print(
                f"[bold]{card['persona']}[/bold]: {escape(card['description'])}", highlight=False
            )


@personas_app.callback()
def personas(
    ctx: typer.Context,
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", "-w", help="The run folder.", file_okay=False, resolve_path=True),
    ] = None,
    config: ConfigOpt = None,
    k: Annotated[
        int | None, typer.Option(help="Number of personas (0: by the elbow).", min=0)
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(help='Blocks clustered: "taste", "taste+embedding", "taste=1,traits=0.5".'),
    ] = None,
    min_size: Annotated[int | None, typer.Option(help="Smallest persona.", min=1)] = None,
    describe: Annotated[
        bool | None,
        typer.Option("--describe/--no-describe", help="Describe personas with the LLM."),
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Embed the profiles, cluster them with k-means++, write personas/ (cards, map)."""
    if ctx.invoked_subcommand is not None:
        return
    if workdir is None:
        raise ConfigError("--workdir is required")
    overrides = nested(
        personas__k=k,
        personas__features=features,
        personas__min_size=min_size,
        personas__describe=describe,
    )
    workspace = Workspace(workdir)
    cfg = resolve_config(workspace, config, overrides)
    result = run_stage(PersonasStage, workspace, cfg, force=force)
    print_results([result])
    cards = json.loads(workspace.path(PERSONAS.cards).read_text())
    print_cards(cards)
    s = result.summary
    console.print(
        f"K = {s['k']} (elbow chose {s['k_chosen']}; merged away: {s['merged_sizes'] or 'none'}), "
        f"silhouette {s['silhouette']}; map: {workspace.path(PERSONAS.map)}"
    )


@personas_app.command("assign")
def assign(
    workdir: WorkdirOpt,
    user_file: Annotated[
        Path,
        typer.Option(
            help="CSV/Parquet of new users: either their ratings (the run's user, item, "
            "rating and time columns; they are profiled like the run's users) or user_id "
            "and profile_text (plus the raw trait columns if the personas used traits).",
            exists=True,
            dir_okay=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(help="Write user_id, persona, membership (and profile_text) to Parquet."),
    ] = None,
) -> None:
    """Assign users who were not clustered to the nearest persona, with soft membership."""
    from personasim.data.reading import read_table_file
    from personasim.personas.coldstart import assign_new_users

    workspace = Workspace(workdir)
    raw = read_table_file(user_file)
    if "profile_text" in raw.columns:
        model = PersonaModel.from_workdir(workdir)
        needed = [("user", "user_id"), ("profile_text", "profile_text")]
        with_traits = "traits" in model.space.weights
        if with_traits:
            needed += [("traits", c) for c in TRAIT_COLUMNS]
        raw.require_columns(needed)
        frame = raw.frame
        texts = frame["profile_text"].astype(str).tolist()
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:
            raise DataError(
                "empty profile_text",
                file=user_file,
                row=raw.row_number(empty[0]),
                column="profile_text",
            )
        traits = frame[list(TRAIT_COLUMNS)].apply(pd.to_numeric) if with_traits else None
        result = model.assign(texts, traits=traits)
        users = frame["user_id"].astype(str).tolist()
    else:
        config = resolve_config(workspace)
        if config.data.columns.item not in raw.columns:
            raise ColumnError(
                "needs either a profile_text column (profiled users) or the ratings columns "
                f"{config.data.columns.user}, {config.data.columns.item}, "
                f"{config.data.columns.rating} (users to profile); it has "
                f"{', '.join(raw.columns)}",
                file=user_file,
                row=1,
            )
        profiles, result, model = assign_new_users(workspace, config, raw)
        users = profiles["user_id"].astype(str).tolist()
        texts = profiles["profile_text"].tolist()
    table = Table(title="assignments (soft membership per persona)", title_justify="left")
    table.add_column("user")
    table.add_column("persona")
    for name in model.names:
        table.add_column(name, justify="right")
    for user, persona, row in zip(users, result.personas, result.membership, strict=True):
        table.add_row(user, persona, *(f"{p:.2f}" for p in row))
    console.print(table)
    if output is not None:
        out = pd.DataFrame(
            {
                "user_id": users,
                "persona": result.personas,
                "membership": list(result.membership),
                "profile_text": texts,
            }
        )
        with atomic_path(output) as tmp:
            out.to_parquet(tmp, index=False)
        console.print(f"written: {output}")
