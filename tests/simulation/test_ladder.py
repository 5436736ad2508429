"""The ladder's degraded pages: the asked share of each page replaced by unseen items."""

from __future__ import annotations

from personasim.simulation.ladder import degrade_pages

PAGES = {"a": [["i1", "i2", "i3", "i4"], ["i5", "i6", "i7", "i8"]], "b": [["i2", "i9"]]}
HISTORY = {"a": ["h1", "h2"], "b": ["i1"]}
CATALOGUE = [f"i{k}" for k in range(1, 40)] + ["h1", "h2"]


def test_a_share_of_each_session_is_replaced_by_items_the_user_has_not_met():
    for share in (0.1, 0.5):
        degraded = degrade_pages(PAGES, HISTORY, CATALOGUE, share, seed=0)
        for user, pages in PAGES.items():
            met = set(HISTORY[user]) | {i for page in pages for i in page}
            assert [len(p) for p in degraded[user]] == [len(p) for p in pages]
            old = [i for page in pages for i in page]
            new = [i for page in degraded[user] for i in page]
            replaced = [k for k, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
            # over the session: 10% of 8 items is one item (of a page of 4, none)
            assert len(replaced) == round(share * len(old))
            assert not {new[k] for k in replaced} & met
            assert len(new) == len(set(new))  # never an item twice in a session


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
