"""LensKit's top-N pipeline, with a history lookup whose cost does not grow with the users.

LensKit's ``UserTrainingHistoryLookup`` lists every user id of the training data on each
call (to check their type): 0.5 ms a call on ML-1M's 6,040 users, 10 ms on 100,000, so
asking each user's list in turn is quadratic in the users. :class:`HistoryLookup` reads
the id type once; :func:`topn_pipeline` is LensKit's ``topn_pipeline`` (history lookup,
the training items not in the query as candidates, the scorer, the top-N ranker, the
same component names) with it.
"""

from __future__ import annotations

from typing import Any

from lenskit.basic import UserTrainingHistoryLookup

__all__ = ["HistoryLookup", "topn_pipeline"]


class HistoryLookup(UserTrainingHistoryLookup):
    """The user's training items as the query's history, when the query has none."""

    def __call__(self, query: Any) -> Any:
        """The query with its history filled in from the training data."""
        import pyarrow as pa
        from lenskit.data import RecQuery

        query = RecQuery.create(query)
        if query.user_id is None or self.interactions is None or query.history_items is not None:
            return query
        vocabulary = self.interactions.row_vocabulary
        if isinstance(query.user_id, str) and pa.types.is_integer(vocabulary.id_array().type):
            query.user_id = int(query.user_id)
        query.history_items = self.interactions.row_items(query.user_id)
        query.user_items = query.history_items
        return query


def topn_pipeline(scorer: Any, *, name: str | None = None) -> Any:
    """A top-N pipeline around `scorer` (named "scorer"): LensKit's, with
    :class:`HistoryLookup`."""
    from lenskit.basic import TopNRanker, TrainingItemsCandidateSelector
    from lenskit.data import ID, ItemList, RecQuery
    from lenskit.pipeline import PipelineBuilder

    pipe = PipelineBuilder(name=name)
    query = pipe.create_input("query", RecQuery, ID, ItemList)
    items = pipe.create_input("items", ItemList)
    n = pipe.create_input("n", int, None)
    lookup = pipe.add_component("history-lookup", HistoryLookup(), query=query)
    selected = pipe.add_component(
        "candidate-selector", TrainingItemsCandidateSelector(), query=lookup
    )
    candidates = pipe.use_first_of("candidates", items, selected)
    scored = pipe.add_component("scorer", scorer, query=lookup, items=candidates)
    rank = pipe.add_component("ranker", TopNRanker(), items=scored, n=n)
    pipe.alias("recommender", rank)
    pipe.default_component("recommender")
    return pipe.build()
