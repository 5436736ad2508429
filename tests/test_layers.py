"""The layers of the package point one way (imports inside functions count too).

Bottom to top: errors / config / workspace / progress / scale (a generic executor: it
takes functions and imports no domain module), data, cf / llm, profiles, personas,
agents, evaluation | simulation (which do not import each other), pipeline, cli / serve.
A lower layer that needs a higher one's work takes a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "personasim"

LAYERS = {
    **dict.fromkeys(
        (
            "errors",
            "config",
            "workspace",
            "run_folder",
            "progress",
            "_version",
            "scale",
            "rating_scale",
        ),
        0,
    ),
    "data": 1,
    **dict.fromkeys(("cf", "llm"), 2),
    "profiles": 3,
    "personas": 4,
    "agents": 5,
    **dict.fromkeys(("evaluation", "simulation"), 6),
    "pipeline": 7,
    **dict.fromkeys(("cli", "serve"), 8),
}
"""Each top-level module's layer; ``testing`` (helpers for tests) may import anything."""

SIBLINGS_APART = {"evaluation", "simulation"}
"""Modules of one layer that must not import each other."""


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, personasim module)`` of every import in a file, relative ones resolved."""
    package = path.relative_to(PACKAGE).with_suffix("").parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                found.append((node.lineno, ".".join(base + [node.module or ""]).strip(".")))
            elif node.module and node.module.startswith("personasim."):
                found.append((node.lineno, node.module.removeprefix("personasim.")))
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name.removeprefix("personasim."))
                for a in node.names
                if a.name.startswith("personasim.")
            ]
    return found


def _upward(path: Path) -> list[str]:
    mine = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    if mine not in LAYERS:
        return []
    bad = []
    for line, module in _imports(path):
        theirs = module.split(".")[0]
        if theirs not in LAYERS:
            continue
        apart = theirs != mine and {theirs, mine} <= SIBLINGS_APART
        if LAYERS[theirs] > LAYERS[mine] or apart:
            bad.append(f"{path.relative_to(PACKAGE)}:{line}: {mine} imports {module}")
    return bad


def test_every_top_level_module_has_a_layer():
    tops = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if not p.name.startswith("__")}
    tops -= {"testing", "py.typed"}
    assert tops <= set(LAYERS), f"give these a layer: {sorted(tops - set(LAYERS))}"


def test_no_import_points_up_the_layers():
    bad = [b for f in sorted(PACKAGE.rglob("*.py")) for b in _upward(f)]
    assert not bad, "imports that point up the layers:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from personasim.pipeline.runner import resolve_config\n", ["pipeline.runner"]),
        ("def f():\n    from personasim.agents import UserAgent\n", ["agents"]),
        ("from ..agents import UserAgent\n", ["agents"]),
        ("import personasim.evaluation.taste\n", ["evaluation.taste"]),
    ],
)
def test_the_check_sees_every_kind_of_import(tmp_path, monkeypatch, source, expected):
    folder = tmp_path / "personasim" / "scale"
    folder.mkdir(parents=True)
    module = folder / "executor.py"
    module.write_text(source)
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path / "personasim")
    assert [m for _, m in _imports(module)] == expected
    assert len(_upward(module)) == 1
