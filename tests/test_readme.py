"""The README's promises that code can check."""

from __future__ import annotations

import re
from pathlib import Path

from personasim.config import config_reference

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_reference_is_in_sync():
    text = (ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- config-reference:start[^>]*-->\n(.*)<!-- config-reference:end -->", text, re.S
    )
    assert block, "README lost its configuration reference markers"
    assert block.group(1).strip() == config_reference().strip(), (
        "regenerate the README block with `personasim config reference`"
    )


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / "README.md").read_text()
    assert "make test" in (ROOT / ".ci" / "run").read_text()
