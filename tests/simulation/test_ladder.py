"""The ladder's degraded pages: the asked share of each page replaced by unseen items."""

from __future__ import annotations

from personasim.simulation.ladder import degrade_pages

PAGES = {"a": [["i1", "i2", "i3", "i4"], ["i5", "i6", "i7", "i8"]], "b": [["i2", "i9"]]}
HISTORY = {"a": ["h1", "h2"], "b": ["i1"]}
CATALOGUE = [f"i{k}" for k in range(1, 40)] + ["h1", "h2"]


def test_a_share_of_every_page_is_replaced_by_items_the_user_has_not_met():
    degraded = degrade_pages(PAGES, HISTORY, CATALOGUE, 0.5, seed=0)
    for user, pages in PAGES.items():
        met = set(HISTORY[user]) | {i for page in pages for i in page}
        for page, new in zip(pages, degraded[user], strict=True):
            assert len(new) == len(page)
            replaced = [k for k, (old, now) in enumerate(zip(page, new, strict=True)) if old != now]
            assert len(replaced) == round(0.5 * len(page))
            assert not {new[k] for k in replaced} & met
        flat = [i for page in degraded[user] for i in page]
        assert len(flat) == len(set(flat))  # never an item twice in a session


def test_the_whole_page_at_share_one_and_the_same_draws_for_the_same_seed():
    whole = degrade_pages(PAGES, HISTORY, CATALOGUE, 1.0, seed=3)
    assert all(
        not set(new) & set(old)
        for user in PAGES
        for old, new in zip(PAGES[user], whole[user], strict=True)
    )
    assert degrade_pages(PAGES, HISTORY, CATALOGUE, 0.25, seed=3) == degrade_pages(
        PAGES, HISTORY, CATALOGUE, 0.25, seed=3
    )
    assert degrade_pages(PAGES, HISTORY, CATALOGUE, 0.25, seed=3) != degrade_pages(
        PAGES, HISTORY, CATALOGUE, 0.25, seed=4
    )
