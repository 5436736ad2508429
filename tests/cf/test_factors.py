"""Score tables kept as factors: every way of reading them is the dense table's."""

from __future__ import annotations

import numpy as np

from personasim.cf.factors import ScoreFactors


def _factors(**options) -> tuple[ScoreFactors, np.ndarray]:
    rng = np.random.default_rng(0)
    users, items, k = 7, 11, 3
    table = ScoreFactors(
        rng.normal(size=(users, k)).astype("float32"),
        rng.normal(size=(items, k)).astype("float32"),
        rng.normal(size=users),
        rng.normal(size=items),
        3.0,
        **options,
    )
    dense = (
        3.0
        + table.user_bias[:, None]
        + table.item_bias[None, :]
        + table.user_factors.astype("float64") @ table.item_factors.astype("float64").T
    )
    return table, dense


def test_cells_blocks_means_and_minimum_read_the_dense_table():
    table, dense = _factors()
    np.testing.assert_allclose(table.dense(), dense, atol=1e-12)
    rows, cols = np.array([0, 3, 3, 6]), np.array([10, 0, 5, 5])
    np.testing.assert_allclose(table.cells(rows, cols), dense[rows, cols], atol=1e-12)
    np.testing.assert_allclose(table.block(rows[:2], cols), dense[np.ix_(rows[:2], cols)])
    np.testing.assert_allclose(table.mean_row(np.array([1, 2, 4])), dense[[1, 2, 4]].mean(axis=0))
    assert table.minimum() == dense.min()
    assert table.shape == dense.shape


def test_bounds_and_unknown_users_and_items():
    known_users = np.array([True] * 6 + [False])
    known_items = np.array([True] * 10 + [False])
    table, dense = _factors(
        bounds=(1.0, 5.0), user_known=known_users, item_known=known_items, missing=-1.0
    )
    expected = np.clip(dense, 1.0, 5.0)
    expected[~known_users] = -1.0
    expected[:, ~known_items] = -1.0
    np.testing.assert_allclose(table.dense(), expected)
    np.testing.assert_allclose(table.cells(np.array([6, 0]), np.array([0, 10])), [-1.0, -1.0])


def test_saved_arrays_read_back_the_same_table(tmp_path):
    table, _ = _factors(bounds=(1.0, 5.0), item_known=np.arange(11) < 9, missing=0.0)
    with (tmp_path / "t.npz").open("wb") as f:
        np.savez(f, **table.arrays())
    with np.load(tmp_path / "t.npz", allow_pickle=False) as data:
        again = ScoreFactors.from_arrays(data)
    np.testing.assert_array_equal(again.dense(), table.dense())
    assert again.bounds == (1.0, 5.0) and again.missing == 0.0 and again.user_known is None
