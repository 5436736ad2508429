"""Taste statistics and their rendering."""

from __future__ import annotations

import pandas as pd

from personasim.profiles.taste import render_rationale, render_taste, taste_line, taste_of


def _history():
    return pd.DataFrame(
        {
            "rating": [5.0, 5.0, 4.0, 1.0, 2.0, 3.0],
            "genres": [
                ["Comedy"],
                ["Comedy", "Romance"],
                ["Comedy"],
                ["Horror"],
                ["Horror"],
                ["Drama"],
            ],
            "year": [1995, 1994, 1999, 1980, 1982, 1996],
            "train_mean_rating": [4.0, 4.0, 3.5, 2.5, 3.0, 3.0],
        }
    )


def test_taste_finds_liked_and_disliked_genres():
    taste = taste_of(_history())
    assert taste["n"] == 6 and taste["mean_rating"] == 3.33
    assert taste["liked_genres"][0] == "Comedy"
    assert taste["disliked_genres"] == ["Horror"]
    assert taste["decades"][0] == "1990s"
    assert taste["share_high"] == 0.5 and taste["share_low"] == 0.33
    # (1 + 1 + 0.5 - 1.5 - 1 + 0) / 6
    assert taste["vs_average"] == 0.0


def test_renderings_state_the_taste():
    taste = taste_of(_history())
    text = render_taste(taste)
    assert "Comedy" in text and "Horror" in text and "1990s" in text
    assert taste_line(taste) == "likes Comedy and dislikes Horror"
    loved = render_rationale(
        {"item": {"genres": ["Comedy"], "mean_rating": 4.0}, "taste": taste, "rating": 5}
    )
    hated = render_rationale(
        {"item": {"genres": ["Horror"], "mean_rating": 3.0}, "taste": taste, "rating": 1}
    )
    assert "Comedy" in loved and "love" in loved
    assert "Horror" in hated and "dislike" in hated


def test_a_history_without_ratings_is_described_by_what_was_watched():
    history = _history().assign(rating=float("nan"))
    taste = taste_of(history)
    assert taste["rated"] is False and taste["n"] == 6
    assert taste["top_genres"][:2] == ["Comedy", "Horror"]
    assert taste["liked_genres"] == [] and taste["mean_rating"] is None
    text = render_taste(taste)
    assert "Mostly watches Comedy, Horror" in text and "Rates" not in text
    assert taste_line(taste) == "watches mostly Comedy, Horror, Drama"
    item = {"item_id": "1", "title": "Clerks", "year": 1994, "genres": ["Comedy"]}
    reason = render_rationale({"item": item, "taste": taste, "rating": float("nan")})
    assert reason == "Watched (Comedy): Comedy is one of the genres they watch most."


def test_the_prompts_of_a_log_without_ratings_ask_what_was_watched():
    from personasim.profiles.prompts import (
        profile_update_messages,
        prompts_hash,
        rationale_messages,
    )

    item = {"item_id": "1", "title": "Clerks", "year": 1994, "genres": ["Comedy"]}
    watched = profile_update_messages("", [(item, float("nan"))])[1]["content"]
    assert "Newly watched:\n- Clerks (1994), Comedy\n" in watched and "rating" not in watched
    rated = profile_update_messages("", [(item, 4.0)])[1]["content"]
    assert "New ratings (1 = hated, 5 = loved)" in rated and "- Clerks (1994), Comedy: 4" in rated
    why = rationale_messages("watches mostly Comedy", item, float("nan"))[0]["content"]
    assert why.startswith("A viewer who watches mostly Comedy watched the movie Clerks (1994)")
    # the rated templates keep their hash (rated runs stay up to date); the watched ones
    # have their own
    assert prompts_hash() != prompts_hash(watched=True)
