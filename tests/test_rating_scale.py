"""Rating scales: their levels, the digits the agents answer with, and the refusals."""

from __future__ import annotations

import numpy as np
import pytest

from personasim.config import DataConfig, SimulateConfig
from personasim.errors import ConfigError
from personasim.evaluation.metrics import parse_rating
from personasim.rating_scale import RatingScale


def test_stars_are_answered_with_their_own_digits():
    scale = RatingScale(1, 5, 1)
    assert scale.levels.tolist() == [1, 2, 3, 4, 5]
    assert scale.labels == ("1", "2", "3", "4", "5")
    assert scale.question() == "How would you rate it, from 1 to 5?"  # the prompt of old
    assert (scale.high_from, scale.low_to) == (4.0, 2.0)
    assert RatingScale(0, 5, 1).labels == ("0", "1", "2", "3", "4", "5")


@pytest.mark.parametrize(
    ("scale", "levels", "question"),
    [
        (
            RatingScale(0.5, 5, 0.5),
            [0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5],
            "How would you rate it, from 0.5 to 5 in steps of 0.5? Answer with one digit, "
            "from 0 for 0.5 to 9 for 5.",
        ),
        (
            RatingScale(1, 10, 1),
            list(range(1, 11)),
            "How would you rate it, from 1 to 10? Answer with one digit, from 0 for 1 to 9 for 10.",
        ),
    ],
)
def test_other_scales_name_the_digit_of_each_rating(scale, levels, question):
    assert scale.levels.tolist() == levels
    assert scale.labels == tuple(str(d) for d in range(10))
    assert not scale.answers_in_units
    assert scale.question() == question
    # a free answer is a digit: it gives the rating it stands for
    assert parse_rating("7", scale) == levels[7]
    assert parse_rating("no idea", scale) is None


def test_ratings_off_the_levels_are_refused_never_rounded():
    scale = RatingScale(1, 5, 1)
    assert scale.off_level([1, 3.5, 5, 5.5, np.nan]).tolist() == [False, True, False, True, True]
    assert scale.index([1.0, 3.0, 5.0]).tolist() == [0, 2, 4]
    with pytest.raises(ValueError, match="rating 3.5 is not a level"):
        scale.index([3.5])
    assert RatingScale(0.5, 5, 0.5).index([0.5, 2.5, 3.5]).tolist() == [0, 4, 6]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rating_scale": [0, 10]}, "has 11 levels; the agents answer with one digit per level"),
        ({"rating_scale": [1, 100]}, "has 100 levels"),
        ({"rating_scale": [1, 5], "rating_step": 0.3}, "does not divide the rating scale"),
        ({"rating_scale": [5, 1]}, "lowest < highest"),
    ],
)
def test_a_scale_the_agents_cannot_answer_on_is_refused_with_what_to_do(settings, message):
    from personasim.config import load_config

    with pytest.raises(ConfigError, match=message):
        load_config([("run.toml", {"data": settings})])


def test_likes_default_to_the_top_quarter_of_the_scale():
    assert SimulateConfig().likes_from(DataConfig().scale) == 4.0
    ten = DataConfig(rating_scale=(1, 10)).scale
    assert SimulateConfig().likes_from(ten) == 7.75
    assert SimulateConfig(like_threshold=9).likes_from(ten) == 9
