"""Our top-N pipeline is LensKit's: the same lists and scores, with or without a
history given in the query."""

from __future__ import annotations

import numpy as np
import pytest
from lenskit import recommend, score
from lenskit.data import ItemList, RecQuery
from lenskit.knn import ItemKNNScorer
from lenskit.pipeline import topn_pipeline as lenskit_topn_pipeline

from personasim.cf.dataset import training_dataset, training_options
from personasim.cf.pipelines import topn_pipeline


@pytest.fixture(scope="module")
def training(small_log):
    return small_log.ratings.astype({"user_id": str, "item_id": str})


def test_lists_and_scores_are_lenskits(training):
    dataset = training_dataset(training)
    ours = topn_pipeline(ItemKNNScorer(max_nbrs=10, feedback="implicit"), name="knn")
    theirs = lenskit_topn_pipeline(ItemKNNScorer(max_nbrs=10, feedback="implicit"), name="knn")
    for pipeline in (ours, theirs):
        pipeline.train(dataset, training_options(0, len(training)))
    history = training.groupby("user_id")["item_id"].agg(list)
    items = ItemList(item_ids=np.array(sorted(training["item_id"].unique())[:30], dtype=object))
    for user in [*history.index[:5], "a user nobody knows"]:
        assert list(recommend(ours, user, 8).ids()) == list(recommend(theirs, user, 8).ids())
        np.testing.assert_array_equal(
            score(ours, user, items).scores(), score(theirs, user, items).scores()
        )
        given = ItemList(item_ids=np.array(history.iloc[0][:4], dtype=object))
        query = RecQuery(user_id=user, history_items=given)
        assert list(recommend(ours, query, 8).ids()) == list(recommend(theirs, query, 8).ids())
