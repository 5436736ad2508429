"""Catching unusable generations, and cleaning usable ones."""

from __future__ import annotations

import pytest

from personasim.profiles.quality import clean_rationale, clean_summary, degeneracy

GOOD = (
    "This viewer enjoys light comedies and animated family movies, and tends to "
    "dislike horror and slow war dramas."
)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("...", "empty"),
        (
            "They like the film noir genre. They like the film noir genre. They like the film "
            "noir genre.",
            "repetition",
        ),
        ("good good good good good good good good good good good good", "repetition"),
        ("Summary so far: they like comedies and dramas and more.", "prompt echo"),
        ("Write the new summary in two sentences: what kinds of movies", "prompt echo"),
    ],
)
def test_degenerate_generations_are_named(text, reason):
    assert degeneracy(text) == reason


def test_copying_a_long_run_of_the_prompt_is_echo():
    prompt = "- Toy Story (1995), Animation/Children's/Comedy: 5/5\n- Heat (1995), Action: 2/5"
    copied = "Toy Story 1995 Animation Children's Comedy 5 5 Heat 1995 Action 2 5 and more"
    assert degeneracy(copied, prompt) == "prompt echo"
    assert degeneracy(GOOD, prompt) is None


def test_listing_the_prompts_titles_is_echo():
    titles = ["Toy Story", "Heat", "Babe", "Scream"]
    listing = "They rated Toy Story, Heat and Babe, which are movies from the nineties."
    assert degeneracy(listing, titles=titles) == "prompt echo"
    assert (
        degeneracy("They loved Toy Story but not Scream, being a comedy fan.", titles=titles)
        is None
    )


def test_a_normal_summary_passes():
    assert degeneracy(GOOD) is None


def test_cleaning():
    assert clean_summary("Updated profile: **Loves** comedies.\n- Hates horror.") == (
        "Loves comedies. Hates horror."
    )
    assert clean_rationale("Answer: They loved the jokes and the music. Also other things.") == (
        "They loved the jokes and the music."
    )
    long = "word " * 400
    assert len(clean_summary(long, max_chars=100)) <= 103
