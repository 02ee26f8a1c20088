"""DaskSampleDistances against TensorSampleDistances on the same data."""

import numpy as np
import pytest
import torch

from sklearn_ecluster.cluster._dask import DaskSampleDistances, is_dask_array
from sklearn_ecluster.cluster._sample_distances import (
    Membership,
    TensorSampleDistances,
    cluster_pair_values,
)

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

EPS64 = float(np.finfo(np.float64).eps)


@pytest.fixture(scope="module")
def client():
    # threads, not processes: starts in about a second; the tasks release the GIL
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.fixture(scope="module")
def data(client):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(230, 6)) + 3.0  # off-centre: SSD by |x|^2 - n|mu|^2 would cancel
    Xd = da.from_array(X, chunks=(60, 3)).persist()  # uneven rows, split features
    return X, Xd


def _rtol(X):
    # a difference and a norm (or a mean) over d terms in float64
    return (X.shape[1] + 2) * EPS64


def test_is_dask_array(data):
    X, Xd = data
    assert is_dask_array(Xd)
    assert not is_dask_array(X) and not is_dask_array(torch.from_numpy(X))


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
def test_pairs_equal_tensor_source(data, metric):
    X, Xd = data
    src = DaskSampleDistances(Xd, metric)
    ref = TensorSampleDistances(torch.from_numpy(X), metric)
    assert src.n_samples == ref.n_samples and src.dtype == torch.float64
    assert src.device == torch.device("cpu") and src.metric == metric
    g = torch.Generator().manual_seed(0)
    i = torch.randint(0, X.shape[0], (3000,), generator=g)
    j = torch.randint(0, X.shape[0], (3000,), generator=g)
    got, want = src.pairs(i, j), ref.pairs(i, j)
    assert got.dtype == torch.float64 and got.device.type == "cpu"
    torch.testing.assert_close(got, want, rtol=_rtol(X), atol=_rtol(X) * float(want.max()))
    assert src.pairs(i[:0], j[:0]).numel() == 0


def test_float32_source_keeps_float32(data):
    X, _ = data
    X32 = X.astype(np.float32)
    src = DaskSampleDistances(da.from_array(X32, chunks=50), "euclidean")
    assert src.dtype == torch.float32
    i, j = torch.arange(0, 200), torch.arange(30, 230)
    got = src.pairs(i, j)
    want = TensorSampleDistances(torch.from_numpy(X32), "euclidean").pairs(i, j)
    assert got.dtype == torch.float32
    eps32 = float(np.finfo(np.float32).eps)
    torch.testing.assert_close(got, want, rtol=(X.shape[1] + 2) * eps32, atol=0)


def test_moments_equal_tensor_source(data):
    X, Xd = data
    K = 7
    labels = torch.from_numpy(np.random.default_rng(1).integers(0, K - 1, X.shape[0]))
    # cluster K - 1 is empty: mean 0, SSD 0, as in the tensor source
    means, ssd = DaskSampleDistances(Xd, "euclidean").moments(labels, K)
    ref_means, ref_ssd = TensorSampleDistances(torch.from_numpy(X), "euclidean").moments(
        labels, K)
    assert means.shape == (K, X.shape[1]) and ssd.dtype == torch.float64
    torch.testing.assert_close(means, ref_means, rtol=_rtol(X), atol=_rtol(X) * 3.0)
    # SSD of n terms of size |x - mu|^2: relative rounding ~ (n + d) eps
    torch.testing.assert_close(ssd, ref_ssd, rtol=(X.shape[0] + X.shape[1]) * EPS64, atol=0)
    # and against the definition, in NumPy
    lab = labels.numpy()
    for c in range(K - 1):
        Xc = X[lab == c]
        np.testing.assert_allclose(float(ssd[c]), ((Xc - Xc.mean(0)) ** 2).sum(),
                                   rtol=(X.shape[0] + X.shape[1]) * EPS64)


def test_singleton_moments(data):
    X, Xd = data
    n = X.shape[0]
    means, ssd = DaskSampleDistances(Xd, "euclidean").moments(torch.arange(n), n)
    torch.testing.assert_close(means, torch.from_numpy(X), rtol=0, atol=0)
    assert (ssd == 0).all()
    # one sample per cluster in another order: the general two-pass path
    perm = torch.from_numpy(np.random.default_rng(3).permutation(n))
    means, ssd = DaskSampleDistances(Xd, "euclidean").moments(perm, n)
    torch.testing.assert_close(means[perm], torch.from_numpy(X), rtol=0, atol=0)
    assert (ssd == 0).all()


@pytest.mark.parametrize("reduce", ["sum", "amin"])
def test_cluster_pair_values_equal_tensor_source(data, reduce):
    X, Xd = data
    K = 9
    labels = torch.from_numpy(np.random.default_rng(2).integers(0, K, X.shape[0]))
    members = Membership(labels, K)
    ca = torch.tensor([0, 1, 2, 3, 4, 8, 5])
    cb = torch.tensor([1, 2, 3, 3, 7, 0, 6])  # (3, 3): one cluster with itself
    src = DaskSampleDistances(Xd, "euclidean")
    ref = TensorSampleDistances(torch.from_numpy(X), "euclidean")
    # a small max_pairs: the pairs of big clusters split across calls
    got = cluster_pair_values(src, members, ca, cb, reduce, max_pairs=500)

    class PairsOnly:  # the tensor source's pair-by-pair path: the same arithmetic
        dtype, device, pairs = ref.dtype, ref.device, ref.pairs

    want = cluster_pair_values(PairsOnly, members, ca, cb, reduce, max_pairs=500)
    # a sum of up to ~30^2 distances: its rounding grows with the count
    n_terms = int((members.sizes[ca] * members.sizes[cb]).max())
    rtol = _rtol(X) if reduce == "amin" else (n_terms + X.shape[1]) * EPS64
    torch.testing.assert_close(got, want, rtol=rtol, atol=0)


def test_bad_source_arguments(data):
    X, Xd = data
    with pytest.raises(TypeError, match="dask.array.Array"):
        DaskSampleDistances(X, "euclidean")
    with pytest.raises(ValueError, match="metric"):
        DaskSampleDistances(Xd, "cosine")
    with pytest.raises(TypeError, match="float32 or float64"):
        DaskSampleDistances(da.ones((10, 2), dtype=np.int64, chunks=5), "euclidean")
    with pytest.raises(ValueError, match="2-D"):
        DaskSampleDistances(da.ones(10, chunks=5), "euclidean")
