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
