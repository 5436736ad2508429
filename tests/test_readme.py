"""The README's and the guide's promises that code can check."""

from __future__ import annotations

import re
from pathlib import Path

from personasim.config import config_reference

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_is_in_sync():
    text = (ROOT / "docs" / "configuration.md").read_text()
    block = re.search(
        r"<!-- config-reference:start[^>]*-->\n(.*)<!-- config-reference:end -->", text, re.S
    )
    assert block, "docs/configuration.md lost its configuration reference markers"
    assert block.group(1).strip() == config_reference().strip(), (
        "regenerate the block of docs/configuration.md with `personasim config reference`"
    )


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / "README.md").read_text()
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_the_pages_link_to_files_that_exist():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_the_readme_stays_a_front_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 120, "move the detail to docs/ (the README is the front page)"
    for page in (ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in text, f"the README does not link to docs/{page.name}"
