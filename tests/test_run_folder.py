"""No module spells another stage's files: the run folder's names live in run_folder.py."""

from __future__ import annotations

import ast
from pathlib import Path

from personasim.run_folder import DATA, artifact_names

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "personasim"
OWNER = PACKAGE / "run_folder.py"


def _spelt(path: Path, names: set[str]) -> list[str]:
    """``line: name`` of every string constant in a module that is an artifact's name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
            found.append(f"{node.lineno}: {node.value}")
    return found


def test_no_module_but_run_folder_spells_an_artifact_name() -> None:
    names = artifact_names()
    offenders = {
        str(path.relative_to(PACKAGE)): hits
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != OWNER and (hits := _spelt(path, names))
    }
    assert not offenders, f"use personasim.run_folder's artifacts instead: {offenders}"


def test_the_check_sees_a_spelt_name(tmp_path: Path) -> None:
    module = tmp_path / "reader.py"
    module.write_text('PATH = "data/" + "interactions.parquet"\n')
    assert _spelt(module, artifact_names()) == ["1: interactions.parquet"]
    assert DATA.interactions.name == "interactions.parquet"
