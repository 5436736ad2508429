"""Every `personasim` command in the README and docs/ parses: its subcommand and options
exist and take the values given (a renamed or removed option fails here, not in a
reader's shell). The README's quick start also runs: tests/test_quick_start.py."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

from personasim.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def documented_commands() -> list[tuple[str, list[str]]]:
    """``(page, argv)`` of every `personasim` line of the pages' shell blocks."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```(?:bash|sh|console)\n(.*?)```", page.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.strip().removeprefix("$ ")
                line = re.sub(r"^(\w+=\S+\s+)+", "", line)  # PERSONASIM_API_KEYS=... personasim
                if line.startswith("personasim "):
                    command = line.split(" &")[0].split(" | ")[0]
                    found.append((page.name, shlex.split(command, comments=True)[1:]))
    return found


COMMANDS = documented_commands()


def test_the_pages_document_commands():
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize(("page", "argv"), COMMANDS, ids=[" ".join(a) for _, a in COMMANDS])
def test_a_documented_command_parses(page, argv):
    command = typer.main.get_command(app)
    ctx, name, args = None, "personasim", list(argv)
    # a group: `personasim config show ...` (or options of the group itself)
    while hasattr(command, "get_command") and args and not args[0].startswith("-"):
        ctx = command.context_class(command, info_name=name, parent=ctx)
        name, args = args[0], args[1:]
        found = command.get_command(ctx, name)
        assert found is not None, f"{page}: no command {name!r} in `personasim {argv}`"
        command = found
    command.make_context(name, args, parent=ctx, resilient_parsing=False)
