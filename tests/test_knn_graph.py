"""knn_graph against scikit-learn, a brute-force tie reference, faiss and Dask."""

import sys

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.neighbors import kneighbors_graph

from sklearn_ecluster.cluster import knn_graph
from sklearn_ecluster.utils import rows_per_block


def _eps(dtype):
    return float(np.finfo(dtype).eps)


def _rank_tol(X, dtype):
    """Error bound of a squared distance from the Gram expansion in ``dtype``.

    ``|c|^2 - 2 q.c`` sums d products of terms up to max|x|^2: the worst-case
    rounding is about (d + 2) eps (|q|^2 + |c|^2). Two neighbours closer than
    that in squared distance may come out in either order.
    """
    return (X.shape[1] + 2) * _eps(dtype) * 2 * float((X.astype(np.float64) ** 2).sum(1).max())


def _exact_sq(X, rows, cols):
    """float64 squared distances ``|X[rows[r]] - X[cols[r, t]]|^2`` from differences."""
    X = X.astype(np.float64)
    diff = X[cols] - X[rows][:, None, :]
    return np.einsum("rtd,rtd->rt", diff, diff)


def _brute(X, k, include_self=False):
    """Reference: full float64 distances, self excluded by index, ties by lower index."""
    X = X.astype(np.float64)
    n = X.shape[0]
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    m = k - 1 if include_self else k
    np.fill_diagonal(D, np.inf)
    idx = np.broadcast_to(np.arange(n), D.shape)
    order = np.lexsort((idx, D), axis=1)[:, :m]
    d2 = np.take_along_axis(D, order, 1)
    if include_self:
        order = np.concatenate([np.arange(n)[:, None], order], 1)
        d2 = np.concatenate([np.zeros((n, 1)), d2], 1)
    return order, d2


def _check_valid_knn(G, X, k, tol_sq, metric="euclidean"):
    """G is a kNN graph of X up to reorderings within ``tol_sq`` of squared distance.

    With every ranked value within ``tol_sq`` of the truth, the j-th smallest
    true distance of the chosen set lies in [ref_j, ref_j + 2 tol_sq]; the
    stored values must match the true ones of the chosen indices to the
    rounding of a difference in the graph's dtype.
    """
    n = X.shape[0]
    assert sp.issparse(G) and G.format == "csr" and G.shape == (n, n)
    np.testing.assert_array_equal(np.diff(G.indptr), k)
    ind = G.indices.reshape(n, k)
    assert not (ind == np.arange(n)[:, None]).any(), "self returned"
    assert all(len(set(r)) == k for r in ind), "repeated neighbour"
    ours = _exact_sq(X, np.arange(n), ind)
    _, ref = _brute(X, k)
    ours_sorted = np.sort(ours, 1)
    assert (ours_sorted >= ref - tol_sq).all()
    assert (ours_sorted <= ref + 2 * tol_sq).all()
    vals = G.data.reshape(n, k).astype(np.float64)
    exact = np.sqrt(ours) if metric == "euclidean" else ours
    # a difference and a norm in the dtype: (d + 2) eps relative
    rtol = (X.shape[1] + 2) * _eps(G.dtype)
    np.testing.assert_allclose(vals, exact, rtol=rtol, atol=rtol * exact.max())
    assert (np.diff(vals, axis=1) >= 0).all(), "rows not sorted by distance"


@pytest.fixture
def X64():
    return np.random.default_rng(0).normal(size=(400, 8))


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
@pytest.mark.parametrize("include_self", [False, True])
def test_matches_sklearn_float64(X64, metric, include_self):
    k = 6
    G = knn_graph(X64, k, metric=metric, include_self=include_self, device="cpu")
    ref = kneighbors_graph(X64, k, mode="distance", include_self=include_self)
    assert G.shape == ref.shape and G.nnz == ref.nnz and G.dtype == np.float64
    np.testing.assert_array_equal(G.indptr, ref.indptr)
    # random continuous data: no two distances within float64 rounding
    np.testing.assert_array_equal(G.indices, ref.indices)
    sq, sq_ref = G.data ** (2 if metric == "euclidean" else 1), ref.data ** 2
    # sklearn ranks and reports with the Gram expansion: its rounding bound
    tol = _rank_tol(X64, np.float64)
    np.testing.assert_allclose(sq, sq_ref, rtol=0, atol=tol)
    if include_self:
        # the sample itself is found by index and stored at exactly 0
        ind = G.indices.reshape(-1, k)
        np.testing.assert_array_equal(ind[:, 0], np.arange(X64.shape[0]))
        assert (G.data.reshape(-1, k)[:, 0] == 0).all()


def test_float32_is_a_valid_knn_and_agrees_with_float64(X64):
    X32 = X64.astype(np.float32)
    k = 6
    G32 = knn_graph(X32, k, device="cpu")
    assert G32.dtype == np.float32
    _check_valid_knn(G32, X32, k, _rank_tol(X32, np.float32))
    # torch input in, same graph as NumPy input
    Gt = knn_graph(torch.from_numpy(X32), k)
    np.testing.assert_array_equal(Gt.indices, G32.indices)
    np.testing.assert_array_equal(Gt.data, G32.data)


def test_many_blocks_give_the_same_graph(X64):
    k = 5
    wm = 0.02  # MiB: a handful of rows per block
    step = rows_per_block(3 * X64.shape[0] + 2 * k * X64.shape[1], 8, "cpu", wm, 1)
    assert step < X64.shape[0] // 10, step
    G = knn_graph(X64, k, device="cpu", working_memory=wm)
    ref = knn_graph(X64, k, device="cpu")
    np.testing.assert_array_equal(G.indices, ref.indices)
    # values recomputed from differences, row by row: blocking-independent
    # up to the rounding of one norm
    np.testing.assert_allclose(G.data, ref.data, rtol=(X64.shape[1] + 2) * _eps(np.float64))


def _tied_grid(seed=0):
    """Integer points of a 2-D grid, shuffled: many exactly equal distances."""
    g = np.stack(np.meshgrid(np.arange(7), np.arange(6)), -1).reshape(-1, 2)
    g = np.concatenate([g, g[:5]])  # and a few duplicates (distance 0 pairs)
    return np.random.default_rng(seed).permutation(g).astype(np.float64)


@pytest.mark.parametrize("working_memory", [None, 0.001])
@pytest.mark.parametrize("include_self", [False, True])
def test_ties_by_lower_index_and_duplicates(working_memory, include_self):
    X = _tied_grid()
    k = 7
    G = knn_graph(X, k, include_self=include_self, device="cpu",
                  working_memory=working_memory)
    order, d2 = _brute(X, k, include_self)
    # integer coordinates: every distance is exact, so the lowest-index rule
    # decides every tie, and a duplicate (distance 0) is a neighbour, not self
    np.testing.assert_array_equal(G.indices.reshape(-1, k), order)
    np.testing.assert_array_equal(G.data.reshape(-1, k), np.sqrt(d2))


@pytest.mark.gpu
def test_cuda_matches_cpu(X64):
    G = knn_graph(torch.from_numpy(X64).cuda(), 5)
    ref = knn_graph(X64, 5, device="cpu")
    np.testing.assert_array_equal(G.indices, ref.indices)
    np.testing.assert_allclose(G.data, ref.data, rtol=(X64.shape[1] + 2) * _eps(np.float64))


# ---------------------------------------------------------------- faiss

def _blobs(n=1200, d=16, n_groups=12, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(n_groups, d))
    X = centres[rng.integers(n_groups, size=n)] + rng.normal(size=(n, d))
    return X.astype(np.float32)


def _assert_same_up_to_near_ties(G, ref, X, k, tol_sq):
    """Same neighbour sets, except in rows whose k-th and (k+1)-th distances are a near tie."""
    n = X.shape[0]
    a, b = G.indices.reshape(n, k), ref.indices.reshape(n, k)
    differ = np.array([set(r) != set(s) for r, s in zip(a, b)])
    _, d_next = _brute(X, k + 1)
    gap = d_next[:, k] - d_next[:, k - 1]
    assert (gap[differ] <= 2 * tol_sq).all()
    same = ~differ
    np.testing.assert_allclose(G.data.reshape(n, k)[same], ref.data.reshape(n, k)[same],
                               rtol=(X.shape[1] + 2) * _eps(np.float32))


def test_faiss_exact_equals_torch_exact():
    pytest.importorskip("faiss")
    X = np.random.default_rng(1).normal(size=(800, 12)).astype(np.float32)
    k = 8
    G = knn_graph(X, k, backend="faiss")
    ref = knn_graph(X, k, device="cpu")
    assert G.dtype == np.float32 and G.nnz == ref.nnz
    tol = _rank_tol(X, np.float32)
    _check_valid_knn(G, X, k, tol)
    _assert_same_up_to_near_ties(G, ref, X, k, tol)


def test_faiss_ivf_full_probe_is_exact_and_recall_grows():
    pytest.importorskip("faiss")
    X = _blobs()
    k, L = 6, 16
    tol = _rank_tol(X, np.float32)
    ref = knn_graph(X, k, device="cpu")
    full = knn_graph(X, k, backend="faiss", n_lists=L, n_probe=L, random_state=0)
    # every list searched: the candidates are all samples
    _assert_same_up_to_near_ties(full, ref, X, k, tol)
    # the p nearest cells are nested in p: a superset of candidates can only
    # lower the true distances of the chosen k (up to float32 ranking)
    n = X.shape[0]
    totals = []
    for p in (1, 2, 4, L):
        G = knn_graph(X, k, backend="faiss", n_lists=L, n_probe=p, random_state=0)
        totals.append(_exact_sq(X, np.arange(n), G.indices.reshape(n, k)).sum(1))
    for lo, hi in zip(totals[1:], totals[:-1]):
        assert (lo <= hi + 2 * k * tol).all()
    # same random_state, same graph
    again = knn_graph(X, k, backend="faiss", n_lists=L, n_probe=1, random_state=0)
    G1 = knn_graph(X, k, backend="faiss", n_lists=L, n_probe=1, random_state=0)
    np.testing.assert_array_equal(again.indices, G1.indices)


def test_faiss_ivf_rows_with_too_few_candidates_fall_back_to_exact():
    pytest.importorskip("faiss")
    X = np.random.default_rng(2).normal(size=(200, 4)).astype(np.float32)
    k = 10
    # 100 lists of ~2 points, one probed: most queries see fewer than k + 1
    G = knn_graph(X, k, backend="faiss", n_lists=100, n_probe=1, random_state=0)
    _check_valid_knn(G, X, k, _rank_tol(X, np.float32))


def test_faiss_missing_gives_install_hint(monkeypatch, X64):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        knn_graph(X64, 3, backend="faiss")


# ---------------------------------------------------------------- Dask

@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    # threads, not processes: starts in about a second, and the tasks
    # (torch, releasing the GIL) still run in parallel
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


@pytest.mark.parametrize("include_self", [False, True])
def test_dask_equals_torch(dask_client, X64, include_self):
    import dask.array as da

    k = 6
    # uneven chunks, the last one smaller than k
    Xd = da.from_array(X64, chunks=((150, 150, 96, 4), (8,)))
    G = knn_graph(Xd, k, include_self=include_self)
    ref = knn_graph(X64, k, include_self=include_self, device="cpu")
    np.testing.assert_array_equal(G.indptr, ref.indptr)
    np.testing.assert_array_equal(G.indices, ref.indices)
    np.testing.assert_allclose(G.data, ref.data, rtol=(X64.shape[1] + 2) * _eps(np.float64))


def test_dask_ties_and_duplicates(dask_client):
    import dask.array as da

    X = _tied_grid(1)
    k = 5
    G = knn_graph(da.from_array(X, chunks=10), k)
    order, d2 = _brute(X, k)
    np.testing.assert_array_equal(G.indices.reshape(-1, k), order)
    np.testing.assert_array_equal(G.data.reshape(-1, k), np.sqrt(d2))


def test_dask_bad_inputs(dask_client):
    import dask.array as da

    X = np.random.default_rng(0).normal(size=(20, 3))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        knn_graph(da.from_array(X, chunks=5), 2)
    with pytest.raises(ValueError, match="backend='torch' only"):
        knn_graph(da.from_array(np.ones((20, 3)), chunks=5), 2, backend="faiss")


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("X, exc, match", [
    ("abc", TypeError, "X"),
    (None, TypeError, "X"),
    (sp.random(10, 3, density=0.5, format="csr"), TypeError, "X"),
    (np.ones(10), ValueError, "X"),
    (np.array([[0.0, 1.0], [np.nan, 1.0], [2.0, 2.0]]), ValueError, "NaN"),
    (np.array([[0.0, 1.0], [np.inf, 1.0], [2.0, 2.0]]), ValueError, "infinity"),
    (np.ones((1, 3)), ValueError, "at least 2 samples"),
    (np.ones((4, 2), dtype=complex), TypeError, "real"),
])
def test_bad_X(X, exc, match):
    with pytest.raises(exc, match=match):
        knn_graph(X, 1, device="cpu")


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"n_neighbors": 0}, ValueError, "n_neighbors"),
    ({"n_neighbors": 10}, ValueError, "n_neighbors"),
    ({"n_neighbors": 11, "include_self": True}, ValueError, "n_neighbors"),
    ({"n_neighbors": 2.5}, TypeError, "n_neighbors"),
    ({"n_neighbors": True}, TypeError, "n_neighbors"),
    ({"backend": "annoy"}, ValueError, "backend"),
    ({"metric": "cosine"}, ValueError, "metric"),
    ({"include_self": 1}, TypeError, "include_self"),
    ({"working_memory": 0}, ValueError, "working_memory"),
    ({"working_memory": "1"}, TypeError, "working_memory"),
    ({"n_lists": 4}, ValueError, "n_lists"),
    ({"backend": "faiss", "n_probe": 2}, ValueError, "n_probe"),
    ({"backend": "faiss", "n_lists": 11}, ValueError, "n_lists"),
    ({"backend": "faiss", "n_lists": 4, "n_probe": 5}, ValueError, "n_probe"),
    ({"device": "tpu0"}, ValueError, "device"),
])
def test_bad_parameters(kwargs, exc, match):
    X = np.random.default_rng(0).normal(size=(10, 3))
    kwargs = {"n_neighbors": 3, "device": "cpu", **kwargs}
    with pytest.raises(exc, match=match):
        knn_graph(X, **kwargs)


def test_int_input_is_float64():
    X = np.array([[0, 0], [3, 4], [1, 0]])
    G = knn_graph(X, 1, device="cpu")
    assert G.dtype == np.float64
    np.testing.assert_array_equal(G.toarray(), [[0, 0, 1], [0, 0, np.sqrt(20)],
                                                [1, 0, 0]])
