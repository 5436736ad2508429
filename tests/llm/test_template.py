"""The template backend renders each request with the renderer the request carries."""

from __future__ import annotations

import pytest

from personasim.errors import BackendError
from personasim.llm.base import GenerationRequest
from personasim.llm.template import TemplateGenerator
from personasim.profiles.taste import render_rationale


def test_each_request_is_rendered_by_its_own_template():
    context = {
        "item": {"item_id": "i1", "title": "Alien", "year": 1979, "genres": ["Horror"]},
        "taste": {"liked_genres": ["Horror"], "disliked_genres": [], "top_genres": ["Horror"]},
        "rating": 5.0,
    }
    requests = [
        GenerationRequest(messages=(), max_new_tokens=8, task="rationale", context=context,
                          template=render_rationale),
        GenerationRequest(messages=(), max_new_tokens=8, task="x", context={"n": 2},
                          template=lambda c: f"n={c['n']}"),
    ]  # fmt: skip
    assert TemplateGenerator().generate(requests) == [render_rationale(context), "n=2"]


def test_a_request_without_a_template_is_refused_naming_its_task():
    request = GenerationRequest(messages=(), max_new_tokens=8, task="summary")
    with pytest.raises(BackendError, match="no template for task 'summary'"):
        TemplateGenerator().generate([request])
