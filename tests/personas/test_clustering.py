"""k-means++ with K by the elbow, merging small personas, soft membership."""

from __future__ import annotations

import numpy as np
import pytest

from personasim.personas.assignment import soft_membership
from personasim.personas.clustering import choose_k, cluster, merge_small_clusters


def _blobs(k: int = 4, per: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, size=(k, 8))
    labels = np.repeat(np.arange(k), per)
    return centres[labels] + rng.normal(0, 0.5, size=(k * per, 8)), labels


def test_elbow_finds_the_true_number_of_groups():
    x, truth = _blobs(4)
    result = cluster(x, k=0, k_min=2, k_max=9, min_size=5, n_init=5, seed=0)
    assert result.k_chosen == 4 and result.k == 4
    assert max(result.silhouette, key=lambda k: result.silhouette[k] or -1) == 4
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth, result.labels) == pytest.approx(1.0)
    assert sorted(result.inertia) == list(range(2, 10))


def test_choose_k_falls_back_to_silhouette_without_a_knee():
    assert choose_k({2: 10.0, 3: 9.0}, {2: 0.1, 3: 0.4}) == 3


def test_same_seed_same_personas():
    x, _ = _blobs(3, seed=1)
    a = cluster(x, k=0, k_min=2, k_max=6, min_size=1, n_init=3, seed=7)
    b = cluster(x, k=0, k_min=2, k_max=6, min_size=1, n_init=3, seed=7)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_allclose(a.centroids, b.centroids)


def test_small_personas_are_merged_into_the_nearest_and_relabelled_by_size():
    x = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2], [10.3], [3.0], [2.9]])
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2])
    new, centroids, merged = merge_small_clusters(x, labels, min_size=3)
    assert merged == [2]
    # The two points near 3 join the group near 0 (nearer than the one near 10), which
    # then is the largest persona: number 0.
    assert new.tolist() == [0, 0, 0, 1, 1, 1, 1, 0, 0]
    np.testing.assert_allclose(centroids[:, 0], [np.mean([0, 0.1, 0.2, 3.0, 2.9]), 10.15])


def test_soft_membership():
    d = np.array([[0.1, 0.3, 0.5], [0.4, 0.2, 0.4]])
    m = soft_membership(d, temperature=0.1)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    assert m.argmax(axis=1).tolist() == [0, 1]
    crisp = soft_membership(d, temperature=0.01)
    assert crisp.max(axis=1).min() > m.max(axis=1).max()
    assert m[0, 0] / m[0, 1] == pytest.approx(np.exp(2.0))


def test_many_users_cluster_in_mini_batches_with_a_sampled_silhouette(monkeypatch):
    from sklearn.metrics import adjusted_rand_score, silhouette_score

    from personasim.personas import clustering

    x, truth = _blobs(4, per=300)
    monkeypatch.setattr(clustering, "MINIBATCH_ABOVE", 500)
    monkeypatch.setattr(clustering, "SILHOUETTE_SAMPLE", 400)
    assert type(clustering._kmeans(x, 4, seed=0, n_init=3)).__name__ == "MiniBatchKMeans"
    result = cluster(x, k=0, k_min=2, k_max=6, min_size=5, n_init=3, seed=0)
    assert result.k == 4 and adjusted_rand_score(truth, result.labels) == pytest.approx(1.0)
    expected = silhouette_score(x, truth, sample_size=400, random_state=0)
    assert clustering.silhouette_of(x, truth) == pytest.approx(expected)
