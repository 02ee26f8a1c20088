"""The graph mode (``connectivity``): against the dense path, the naive
reference restricted to the graph, scipy's Ward and brute-force criteria."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _naive_reference import (
    cluster_summary,
    merge_sets,
    naive_agglomerate,
    pair_criterion,
    sample_distances,
)
from scipy.cluster.hierarchy import linkage as scipy_linkage
from scipy.spatial.distance import pdist
from sklearn.neighbors import kneighbors_graph

from sklearn_ecluster.cluster import EnergyAgglomerative
from sklearn_ecluster.cluster import _linkage as linkage_module
from sklearn_ecluster.cluster._cut import choose_cut
from sklearn_ecluster.cluster._sample_distances import (
    Membership,
    TensorSampleDistances,
    cluster_pair_values,
)

#: float64 sums of at most n^2 distances in two different orders: the
#: criterion values of the two paths agree to a few hundred ulps
RTOL64 = 1e-11

CONFIGS = [
    dict(),  # the paper: batched, unweighted, SSD
    dict(weighted=True, merge_schedule="geometric"),
    dict(regularizer="ssd_merged"),
    dict(linkage="single", regularizer="size", lam=0.005),
    dict(linkage="average", regularizer="dispersion", lam=0.1),
    dict(merge_percent=None),  # exact, not reducible: the greedy engine
    dict(merge_percent=None, weighted=True, regularizer=None),
    dict(merge_percent=None, linkage="average", regularizer=None),
    dict(merge_percent=None, linkage="single", regularizer=None),
    dict(merge_percent=None, linkage="average", regularizer="size", lam=0.01),
]


def _unit_rows(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _complete(n):
    return sp.csr_matrix(np.ones((n, n)))


@pytest.mark.parametrize("kw", CONFIGS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "paper")
def test_complete_graph_equals_dense(kw):
    X = _unit_rows(150, 6, 0)
    dense = EnergyAgglomerative(n_clusters=12, device="cpu", **kw).fit(X)
    graph = EnergyAgglomerative(n_clusters=12, device="cpu", connectivity=_complete(150),
                                **kw).fit(X)
    assert graph.engine_.startswith("graph_")
    np.testing.assert_array_equal(graph.labels_, dense.labels_)
    np.testing.assert_array_equal(graph.children_, dense.children_)
    np.testing.assert_allclose(graph.distances_, dense.distances_, rtol=RTOL64, atol=0)
    assert graph.history_["n_clusters"] == dense.history_["n_clusters"]


def test_complete_graph_with_init_labels_equals_dense():
    X = _unit_rows(120, 5, 1)
    init = np.random.default_rng(1).integers(0, 50, size=120)
    for kw in (dict(), dict(merge_percent=None, weighted=True, regularizer=None)):
        dense = EnergyAgglomerative(n_clusters=7, device="cpu", **kw).fit(X, init_labels=init)
        graph = EnergyAgglomerative(n_clusters=7, device="cpu", connectivity=_complete(120),
                                    **kw).fit(X, init_labels=init)
        np.testing.assert_array_equal(graph.labels_, dense.labels_)
        np.testing.assert_array_equal(graph.children_, dense.children_)
        assert graph.n_leaves_ == dense.n_leaves_


def test_complete_graph_weighted_energy_is_scipy_ward_on_sqrt_distances():
    X = _unit_rows(90, 4, 2)
    model = EnergyAgglomerative(n_clusters=1, merge_percent=None, weighted=True,
                                regularizer=None, device="cpu",
                                connectivity=_complete(90)).fit(X)
    assert model.engine_ == "graph_reducible"
    Z = scipy_linkage(np.sqrt(pdist(X)), method="ward")
    ours = model.get_linkage_matrix()
    # SPEC 2: scipy's Ward heights on sqrt(d), squared, are the weighted
    # energy distances (float64, Lance-Williams vs cross sums: ~1e-12 relative)
    np.testing.assert_allclose(ours[:, 2], Z[:, 2] ** 2, rtol=1e-9)
    ref_sets = merge_sets(Z[:, :2].astype(np.int64), 90)
    assert merge_sets(model.children_, 90) == ref_sets


@pytest.mark.parametrize("kw", [
    dict(),
    dict(weighted=True, merge_schedule="geometric"),
    dict(linkage="single", regularizer="size", lam=0.005),
    dict(linkage="average", regularizer="dispersion", lam=0.1),
    dict(merge_percent=None),
    dict(merge_percent=None, linkage="single", regularizer=None),
], ids=["paper", "weighted-geometric", "buc", "dbc", "exact-greedy", "exact-single"])
def test_sparse_graph_equals_naive_reference_restricted_to_the_graph(kw):
    X = _unit_rows(70, 5, 3)
    graph = kneighbors_graph(X, 4)
    adjacency = (graph + graph.T).toarray() > 0
    model = EnergyAgglomerative(n_clusters=6, device="cpu", connectivity=graph, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # components, if any
        model.fit(X)
    ref = naive_agglomerate(X, n_clusters=6, vectorized=True, adjacency=adjacency, **kw)
    np.testing.assert_array_equal(model.labels_, ref["labels"])
    np.testing.assert_array_equal(model.children_, ref["children"])
    np.testing.assert_allclose(model.distances_, ref["distances"], rtol=RTOL64)


@pytest.mark.parametrize("kw", [
    dict(weighted=True), dict(linkage="average")
], ids=["weighted-energy", "average"])
def test_sparse_graph_rounds_merge_adjacent_clusters_at_their_exact_criterion(kw):
    # on a sparse graph the rounds are RAC's hierarchy (not always the greedy
    # one): every merge joins two adjacent clusters, at the criterion value
    # of those two clusters computed from their points
    X = _unit_rows(80, 5, 4)
    graph = kneighbors_graph(X, 5)
    adjacency = (graph + graph.T).toarray() > 0
    model = EnergyAgglomerative(n_clusters=5, merge_percent=None, regularizer=None,
                                device="cpu", connectivity=graph, **kw).fit(X)
    assert model.engine_ == "graph_reducible"
    linkage = kw.get("linkage", "energy")
    metric = "euclidean" if linkage == "energy" else "sqeuclidean"
    Dm, Dsq = sample_distances(X, metric), sample_distances(X, "sqeuclidean")
    members = {i: [i] for i in range(80)}
    for t, (a, b) in enumerate(model.children_):
        A, B = members[a], members[b]
        assert adjacency[np.ix_(A, B)].any()
        ref = pair_criterion(X, Dm, Dsq, cluster_summary(X, Dm, Dsq, np.array(A)),
                             cluster_summary(X, Dm, Dsq, np.array(B)), linkage=linkage,
                             regularizer=None, lam=0.0, weighted=kw.get("weighted", False))
        np.testing.assert_allclose(model.distances_[t], ref, rtol=RTOL64)
        members[80 + t] = A + B


def test_graph_mode_never_builds_the_dense_pair_matrix(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the graph mode built an N x N pair matrix")

    monkeypatch.setattr(linkage_module.ClusterState, "from_samples", refuse)
    X = _unit_rows(60, 4, 5)
    g = kneighbors_graph(X, 5)
    for kw in (dict(), dict(merge_percent=None), dict(merge_percent=None, weighted=True,
                                                      regularizer=None)):
        EnergyAgglomerative(n_clusters=4, device="cpu", connectivity=g, **kw).fit(X)
    EnergyAgglomerative(device="cpu", connectivity=g).fit(X)  # automatic cut


def test_automatic_cut_with_complete_graph_equals_dense():
    X = _unit_rows(100, 3, 6)
    dense = EnergyAgglomerative(device="cpu").fit(X)
    graph = EnergyAgglomerative(device="cpu", connectivity=_complete(100)).fit(X)
    np.testing.assert_array_equal(graph.labels_, dense.labels_)
    assert graph.cut_score_ == pytest.approx(dense.cut_score_, rel=1e-12)
    assert graph.criterion_ == dense.criterion_


def test_subsampled_silhouette_is_sklearns_on_the_subsample():
    from sklearn.metrics import silhouette_score

    X = _unit_rows(300, 4, 7)
    model = EnergyAgglomerative(n_clusters=1, merge_percent=None, weighted=True,
                                regularizer=None, device="cpu").fit(X)
    Xt = torch.as_tensor(X)
    q, score = choose_cut(Xt, model.children_, np.arange(300), 300, "euclidean",
                          sample_size=120)
    sub = np.sort(np.random.default_rng(0).choice(300, size=120, replace=False))
    from sklearn_ecluster.cluster._tree import labels_at_cuts

    labels = labels_at_cuts(model.children_, np.arange(300), 300, [q])[q]
    # the package's distances use the Gram expansion: in float64 a distance
    # of ~0.1 between unit vectors is accurate to ~eps / 0.1^2 ~ 1e-14
    # absolute in d^2, ~1e-8 relative in the mean of ratios (as elsewhere)
    assert score == pytest.approx(silhouette_score(X[sub], labels[sub]), rel=1e-6)


def test_disconnected_graph_stops_with_a_warning():
    X = np.vstack([_unit_rows(20, 3, 8), 10 + _unit_rows(20, 3, 9)])
    block = np.zeros((40, 40))
    block[:20, :20] = 1
    block[20:, 20:] = 1
    with pytest.warns(UserWarning, match="2 connected components"):
        model = EnergyAgglomerative(n_clusters=1, merge_percent=None, device="cpu",
                                    connectivity=sp.csr_matrix(block)).fit(X)
    assert model.n_clusters_ == 2
    np.testing.assert_array_equal(model.labels_, np.repeat([0, 1], 20))


def test_connectivity_forms_give_the_same_fit():
    X = _unit_rows(50, 4, 10)
    g = kneighbors_graph(X, 4)
    ref = EnergyAgglomerative(n_clusters=5, device="cpu", connectivity=g).fit(X).labels_
    for form in (g.toarray(), g.T.tocoo(), lambda Z: kneighbors_graph(Z, 4)):
        labels = EnergyAgglomerative(n_clusters=5, device="cpu",
                                     connectivity=form).fit(X).labels_
        np.testing.assert_array_equal(labels, ref)


def test_float32_tensor_input():
    # well-separated groups: every criterion value between groups is far above
    # those inside them, so float32 rounding (any CPU, any thread count)
    # cannot change which clusters the fit ends with
    rng = np.random.default_rng(11)
    centres = np.linalg.qr(rng.normal(size=(8, 8)))[0]  # orthonormal: 1.41 apart
    X = centres[np.arange(160) % 8] + 0.05 * rng.normal(size=(160, 8))
    X /= np.linalg.norm(X, axis=1, keepdims=True)  # L2-normalised, as lam=0.9 expects
    g = kneighbors_graph(X, 6)
    for kw in (dict(), dict(merge_percent=None, weighted=True, regularizer=None)):
        a = EnergyAgglomerative(n_clusters=8, device="cpu", connectivity=g, **kw).fit(X)
        b = EnergyAgglomerative(n_clusters=8, device="cpu", connectivity=g, **kw).fit(
            torch.as_tensor(X, dtype=torch.float32))
        np.testing.assert_array_equal(b.labels_, a.labels_)
        np.testing.assert_array_equal(a.labels_, np.arange(160) % 8)


@pytest.mark.parametrize("connectivity, err, match", [
    (True, TypeError, "connectivity must be"),
    ("knn", TypeError, "connectivity"),
    (sp.csr_matrix((5, 5)), ValueError, r"shape \(n_samples, n_samples\)"),
    (0, ValueError, "connectivity=0"),
])
def test_bad_connectivity(connectivity, err, match):
    X = _unit_rows(30, 3, 12)
    with pytest.raises(err, match=match):
        EnergyAgglomerative(n_clusters=2, device="cpu", connectivity=connectivity).fit(X)


def test_dense_precomputed_metric_is_refused_in_graph_mode():
    # the graph mode holds no N x N matrix: a precomputed distance must be
    # sparse there (tests/test_sparse_precomputed.py)
    X = _unit_rows(20, 3, 13)
    D = sample_distances(X, "euclidean")
    with pytest.raises(ValueError, match="precomputed' with connectivity needs a sparse X"):
        EnergyAgglomerative(n_clusters=2, metric="precomputed", regularizer=None,
                            device="cpu", connectivity=_complete(20)).fit(D)


@pytest.mark.parametrize("reduce", ["sum", "amin"])
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean"])
def test_cluster_pair_values_are_brute_force_reductions(reduce, metric):
    rng = np.random.default_rng(14)
    X = torch.as_tensor(rng.normal(size=(90, 7)))
    labels = torch.as_tensor(rng.integers(0, 9, size=90))
    members = Membership(labels, 9)
    ca = torch.as_tensor([0, 1, 2, 2, 8, 3])
    cb = torch.as_tensor([1, 3, 2, 5, 8, 7])
    D = sample_distances(X.numpy(), metric)
    op = np.sum if reduce == "sum" else np.min
    ref = [op(D[np.ix_(labels.numpy() == a, labels.numpy() == b)]) for a, b in
           zip(ca.tolist(), cb.tolist(), strict=True)]
    source = TensorSampleDistances(X, metric)
    blocks = cluster_pair_values(source, members, ca, cb, reduce)
    # the Gram expansion: absolute error ~ eps * (|a|^2 + |b|^2) per squared distance
    np.testing.assert_allclose(blocks.numpy(), ref, rtol=1e-9, atol=1e-9)
    # a budget of a few hundred numbers: every pair is too big for one block
    # and goes through the tiles (square tiles smaller than the clusters)
    tiled = cluster_pair_values(TensorSampleDistances(X, metric, working_memory=2e-3),
                                members, ca, cb, reduce)
    np.testing.assert_allclose(tiled.numpy(), ref, rtol=1e-9, atol=1e-9)
    # the pair-by-pair path (what a source without blocks, e.g. Dask, uses)
    class PairsOnly:
        def __init__(self, inner):
            self.dtype, self.device, self.pairs = inner.dtype, inner.device, inner.pairs

    pairwise = cluster_pair_values(PairsOnly(source), members, ca, cb, reduce, max_pairs=7)
    np.testing.assert_allclose(pairwise.numpy(), ref, rtol=1e-12, atol=1e-12)


def test_dask_input_gives_the_in_memory_labels():
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("dask.distributed")
    X = _unit_rows(240, 6, 15)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        Xd = da.from_array(X, chunks=70).persist()
        for kw in (dict(n_clusters=15), dict(n_clusters=15, merge_percent=None,
                                             weighted=True, regularizer=None),
                   dict(n_clusters=15, merge_percent=None, linkage="single",
                        regularizer=None), dict()):
            ref = EnergyAgglomerative(device="cpu", connectivity=6, **kw).fit(X)
            got = EnergyAgglomerative(device="cpu", connectivity=6, **kw).fit(Xd)
            np.testing.assert_array_equal(got.labels_, ref.labels_)
            np.testing.assert_array_equal(got.children_, ref.children_)
            np.testing.assert_allclose(got.distances_, ref.distances_, rtol=RTOL64)
            assert got.n_features_in_ == 6
        with pytest.raises(ValueError, match="needs the graph mode"):
            EnergyAgglomerative(device="cpu").fit(Xd)


@pytest.mark.gpu
@pytest.mark.parametrize("kw", [dict(merge_percent=None, weighted=True, regularizer=None),
                                dict(merge_percent=None, linkage="single",
                                     regularizer=None)],
                         ids=["weighted-exact", "single-exact"])
def test_cuda_graph_mode_gives_the_cpu_labels(kw):
    # well-separated groups: float32 on the GPU cannot reorder any merge
    rng = np.random.default_rng(16)
    centres = rng.normal(size=(12, 16)) * 10
    X = (centres[np.arange(240) % 12] + rng.normal(size=(240, 16))).astype(np.float32)
    g = kneighbors_graph(X, 8)
    cpu = EnergyAgglomerative(n_clusters=12, device="cpu", connectivity=g, **kw).fit(X)
    gpu = EnergyAgglomerative(n_clusters=12, connectivity=g, **kw).fit(
        torch.from_numpy(X).cuda())
    assert gpu.device_.type == "cuda" and gpu.engine_ == cpu.engine_
    np.testing.assert_array_equal(gpu.labels_, cpu.labels_)
    # and the kNN graph built on the GPU (an int) gives the same fit
    built = EnergyAgglomerative(n_clusters=12, connectivity=8, **kw).fit(
        torch.from_numpy(X).cuda())
    np.testing.assert_array_equal(built.labels_, cpu.labels_)


def test_more_neighbours_than_samples_is_the_complete_graph():
    # a recipe's connectivity=30 on a set of 24 images: every other sample
    X = _unit_rows(24, 3, 14)
    kw = dict(n_clusters=3, merge_percent=None, weighted=True, regularizer=None,
              device="cpu")
    dense = EnergyAgglomerative(**kw).fit(X)
    for k in (23, 30):
        model = EnergyAgglomerative(connectivity=k, **kw).fit(X)
        assert model.engine_ == "graph_reducible"
        np.testing.assert_array_equal(model.children_, dense.children_)
        np.testing.assert_allclose(model.distances_, dense.distances_, rtol=1e-12)
