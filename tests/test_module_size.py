"""Every module has one job: at most 400 lines, opening with a sentence that says it."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "personasim"
MAX_LINES = 400


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in sorted(PACKAGE.rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these along their jobs: {long}"


def test_every_module_opens_with_a_docstring_that_says_its_job() -> None:
    missing = [
        str(p.relative_to(PACKAGE))
        for p in sorted(PACKAGE.rglob("*.py"))
        if p.name != "_version.py"
        and not (ast.get_docstring(ast.parse(p.read_text())) or "").strip()
    ]
    assert not missing, f"say each module's job in its first sentence: {missing}"
