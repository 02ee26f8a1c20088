"""Tests of the synthetic re-ID feature generator."""

import numpy as np
import pytest
from sklearn.cluster import AgglomerativeClustering
from sklearn.metrics import adjusted_rand_score
from sklearn.neighbors import NearestNeighbors

from sklearn_ecluster.datasets import make_reid_features


def test_shapes_dtypes_and_unit_norm():
    X, y, camids = make_reid_features(200, 12, 32, n_cameras=4, random_state=0)
    assert X.shape == (200, 32) and X.dtype == np.float32
    assert X.flags.c_contiguous
    assert y.shape == camids.shape == (200,)
    assert y.dtype == camids.dtype == np.int64
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(np.unique(y), np.arange(12))
    assert camids.min() >= 0 and camids.max() < 4


def test_float64_and_full_rank():
    X, _, _ = make_reid_features(50, 5, 8, n_informative=8, dtype=np.float64,
                                 random_state=0)
    assert X.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0)


def test_deterministic_and_local_rng():
    state = np.random.get_state()  # noqa: NPY002 (the legacy global state)
    a = make_reid_features(150, 10, 16, random_state=3)
    b = make_reid_features(150, 10, 16, random_state=3)
    c = make_reid_features(150, 10, 16, random_state=4)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    # the global NumPy generator is neither used nor advanced
    after = np.random.get_state()  # noqa: NPY002
    assert state[0] == after[0] and np.array_equal(state[1], after[1])


def test_market_like_uneven_sizes():
    _, y, camids = make_reid_features(12936, 751, 4, random_state=0)
    sizes = np.bincount(y)
    assert sizes.sum() == 12936 and sizes.size == 751
    assert sizes.min() == 2 and 50 <= sizes.max() <= 72
    assert abs(sizes.mean() - 12936 / 751) < 1e-9
    assert np.median(sizes) < sizes.mean()  # long tail to the right
    assert sizes.std() > 5
    # every identity is seen by at least two of the six cameras
    n_cams = [np.unique(camids[y == i]).size for i in range(751)]
    assert min(n_cams) >= 2 and max(n_cams) <= 6


def test_equal_sizes_when_no_spread():
    _, y, _ = make_reid_features(100, 10, 4, size_sigma=0.0, random_state=0)
    np.testing.assert_array_equal(np.bincount(y), 10)


def test_unshuffled_is_ordered_by_identity():
    _, y, _ = make_reid_features(60, 6, 4, shuffle=False, random_state=0)
    assert np.all(np.diff(y) >= 0)


def test_groups_are_recoverable_but_not_trivial():
    X, y, _ = make_reid_features(300, 20, 64, random_state=0)
    labels = AgglomerativeClustering(n_clusters=20, linkage="ward").fit_predict(X)
    assert adjusted_rand_score(y, labels) > 0.5
    nn = NearestNeighbors(n_neighbors=2).fit(X).kneighbors(X, return_distance=False)
    assert (y[nn[:, 1]] == y).mean() > 0.6
    # the identities overlap: a sample's nearest other identity is often closer
    # than its farthest same-identity sample
    D = np.linalg.norm(X[:, None] - X[None], axis=2)
    same = y[:, None] == y[None]
    far_same = np.where(same, D, -np.inf).max(1)
    near_other = np.where(same, np.inf, D).min(1)
    assert (near_other < far_same).mean() > 0.2


@pytest.mark.parametrize(
    "params, exc, name",
    [
        ({"n_samples": 0}, ValueError, "n_samples"),
        ({"n_samples": 10.5}, TypeError, "n_samples"),
        ({"n_identities": 0}, ValueError, "n_identities"),
        ({"n_features": 0}, ValueError, "n_features"),
        ({"n_cameras": 0}, ValueError, "n_cameras"),
        ({"n_informative": 0}, ValueError, "n_informative"),
        ({"n_informative": 64, "n_features": 8}, ValueError, "n_informative"),
        ({"min_size": 0}, ValueError, "min_size"),
        ({"min_size": 5, "max_size": 4}, ValueError, "max_size"),
        ({"n_samples": 10, "n_identities": 6}, ValueError, "n_samples"),
        ({"n_samples": 1000, "n_identities": 5, "max_size": 20}, ValueError, "n_samples"),
        ({"size_sigma": -1.0}, ValueError, "size_sigma"),
        ({"camera_shift": float("nan")}, ValueError, "camera_shift"),
        ({"view_shift": -0.1}, ValueError, "view_shift"),
        ({"noise": "large"}, TypeError, "noise"),
        ({"dtype": np.int32}, ValueError, "dtype"),
    ],
)
def test_invalid_parameters(params, exc, name):
    kwargs = {"n_samples": 40, "n_identities": 4, "n_features": 8, **params}
    with pytest.raises(exc, match=name):
        make_reid_features(**kwargs)
