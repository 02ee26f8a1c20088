"""The graph mode on a sparse precomputed distance (``missing_distance``).

References: the dense precomputed path on the densified matrix (a complete
pattern must give the same tree), the naive reference restricted to the
stored pairs (a sparse pattern), brute-force silhouettes, and the k-reciprocal
Jaccard distance, whose pairs without a common neighbour are at exactly 1.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _naive_reference import naive_agglomerate, pair_criterion
from sklearn.metrics import silhouette_score

from sklearn_ecluster.cluster import EnergyAgglomerative
from sklearn_ecluster.cluster._cut import silhouette_scores
from sklearn_ecluster.cluster._sparse_distances import SparsePrecomputedDistances
from sklearn_ecluster.metrics import jaccard_distance
from sklearn_ecluster.self_training import make_recipe
from sklearn_ecluster.self_training._loop import _takes_sparse_distances

# float64 sums of at most a few thousand terms, in another order than the reference
RTOL64 = 1e-10


def _groups(n_groups=8, size=10, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return np.repeat(rng.normal(size=(n_groups, d)) * 3, size, axis=0) + \
        0.5 * rng.normal(size=(n_groups * size, d))


def _densified(S, missing):
    """The dense matrix a sparse one stands for: ``missing`` where nothing is stored."""
    D = np.full(S.shape, missing, dtype=np.float64)
    coo = S.tocoo()
    D[coo.row, coo.col] = coo.data
    np.fill_diagonal(D, 0.0)
    return D


def _sparse_pattern(D, keep_share, seed):
    """A symmetric random pattern of D (each pair kept with probability keep_share)."""
    rng = np.random.default_rng(seed)
    keep = np.triu(rng.random(D.shape) < keep_share, 1)
    keep = keep | keep.T
    return sp.csr_matrix(np.where(keep, D, 0.0))


EXACT = dict(merge_percent=None, regularizer=None)
CASES = [
    dict(EXACT, weighted=True),
    dict(EXACT, weighted=False),
    dict(EXACT, linkage="average"),
    dict(EXACT, linkage="single"),
    dict(merge_percent=0.1, weighted=True, regularizer=None),
    dict(merge_percent=0.1, linkage="single", regularizer="size", lam=0.005),
]
IDS = ["weighted", "unweighted", "average", "single", "batched", "buc"]


@pytest.mark.parametrize("kw", CASES, ids=IDS)
def test_complete_pattern_gives_the_dense_tree(kw):
    # every pair stored: the graph is complete, so the tree is the dense one
    X = _groups()
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    S = sp.csr_matrix(D + np.where(np.eye(len(D)) > 0, 0.0, 1e-300))  # all stored
    assert S.nnz == D.size - len(D)
    dense = EnergyAgglomerative(n_clusters=1, metric="precomputed", device="cpu",
                                **kw).fit(D)
    sparse = EnergyAgglomerative(n_clusters=1, metric="precomputed", device="cpu",
                                 missing_distance=123.0, **kw).fit(S)
    assert sparse.engine_.startswith("graph_")
    np.testing.assert_array_equal(sparse.children_, dense.children_)
    np.testing.assert_allclose(sparse.distances_, dense.distances_, rtol=RTOL64)


def _fit_on_a_sparse_pattern(kw, missing=2.5):
    """Euclidean distances of 6 groups, 30 % of the pairs stored; the fit."""
    X = _groups(n_groups=6, size=8, seed=1)
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    S = _sparse_pattern(D, 0.3, seed=2)
    model = EnergyAgglomerative(n_clusters=5, metric="precomputed", device="cpu",
                                missing_distance=missing, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # components, if any
        model.fit(S)
    return S, missing, model


@pytest.mark.parametrize("kw", [CASES[1], CASES[3], CASES[4], CASES[5]],
                         ids=[IDS[1], IDS[3], IDS[4], IDS[5]])
def test_sparse_pattern_equals_the_naive_reference_on_the_stored_pairs(kw):
    # the naive reference on the densified matrix, merges restricted to
    # clusters with a stored pair between them: the criterion of a pair
    # counts the pairs not stored at missing_distance
    S, missing, model = _fit_on_a_sparse_pattern(kw)
    adjacency = S.toarray() != 0
    ref = naive_agglomerate(_densified(S, missing), n_clusters=5, metric="precomputed",
                            vectorized=True, adjacency=adjacency, **kw)
    np.testing.assert_array_equal(model.labels_, ref["labels"])
    np.testing.assert_array_equal(model.children_, ref["children"])
    np.testing.assert_allclose(model.distances_, ref["distances"], rtol=RTOL64)


@pytest.mark.parametrize("kw", [CASES[0], CASES[2]], ids=[IDS[0], IDS[2]])
def test_sparse_pattern_rounds_merge_adjacent_clusters_at_their_exact_criterion(kw):
    # reducible criteria run by RNN rounds: on a sparse graph that is RAC's
    # hierarchy (not always the greedy one); every merge joins two clusters
    # with a stored pair between them, at the criterion of those two clusters
    # on the densified matrix
    S, missing, model = _fit_on_a_sparse_pattern(kw)
    assert model.engine_ == "graph_reducible"
    Dm = _densified(S, missing)
    adjacency = S.toarray() != 0
    n = S.shape[0]
    members = {i: [i] for i in range(n)}
    for t, (a, b) in enumerate(model.children_):
        A, B = np.array(members[a]), np.array(members[b])
        assert adjacency[np.ix_(A, B)].any()
        ref = pair_criterion(Dm, Dm, np.zeros_like(Dm), A, B,
                             linkage=kw.get("linkage", "energy"), regularizer=None,
                             lam=0.0, weighted=kw.get("weighted", False))
        np.testing.assert_allclose(model.distances_[t], ref, rtol=RTOL64)
        members[n + t] = members[a] + members[b]


def test_sparse_jaccard_clusters_as_the_dense_jaccard():
    # the Jaccard distance is 1 for pairs without a common neighbour: the
    # sparse matrix with missing_distance=1 is the dense one, exactly
    X = _groups(seed=3)
    D = jaccard_distance(X, k1=10, k2=3)
    S = jaccard_distance(X, k1=10, k2=3, sparse=True)
    np.testing.assert_allclose(_densified(S, 1.0), D, rtol=0, atol=1e-12)
    kw = dict(metric="precomputed", device="cpu", merge_percent=None, weighted=True,
              regularizer=None)
    ref = naive_agglomerate(D, n_clusters=8, metric="precomputed", vectorized=True,
                            adjacency=S.toarray() != 0, merge_percent=None,
                            weighted=True, regularizer=None)
    model = EnergyAgglomerative(n_clusters=8, missing_distance=1.0, **kw).fit(S)
    np.testing.assert_array_equal(model.labels_, ref["labels"])
    # the automatic cut scores the same silhouette as scikit-learn's on the dense matrix
    auto = EnergyAgglomerative(missing_distance=1.0, **kw).fit(S)
    assert auto.cut_score_ == pytest.approx(
        silhouette_score(D, auto.labels_, metric="precomputed"), rel=1e-10)


def test_sparse_silhouette_equals_scikit_learn():
    X = _groups(n_groups=5, size=7, seed=4)
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    S = _sparse_pattern(D, 0.4, seed=5)
    source = SparsePrecomputedDistances(S, 3.0, torch.float64, torch.device("cpu"))
    rng = np.random.default_rng(6)
    labelings = [rng.integers(0, k, len(X)) for k in (2, 5, 9)]
    labelings = [np.unique(lab, return_inverse=True)[1] for lab in labelings]
    ours = silhouette_scores(source, labelings, "precomputed")
    dense = _densified(S, 3.0)
    for score, lab in zip(ours, labelings, strict=True):
        assert score == pytest.approx(silhouette_score(dense, lab, metric="precomputed"),
                                      rel=1e-10)
    # the subsample of the automatic cut above 20,000 samples: the same source
    idx = np.sort(rng.choice(len(X), 20, replace=False))
    sub = source.take(idx)
    np.testing.assert_array_equal(
        sub.pairs(*(torch.as_tensor(a) for a in np.triu_indices(20, 1))).numpy(),
        dense[np.ix_(idx, idx)][np.triu_indices(20, 1)])


def test_source_lookups_and_symmetrisation_by_brute_force():
    rng = np.random.default_rng(7)
    A = np.where(rng.random((40, 40)) < 0.2, rng.random((40, 40)), 0.0)
    pattern = (A != 0) | (A != 0).T
    A = np.where(pattern, A + A.T + 0.5, 0.0)  # symmetric pattern
    A[3, 5] += 0.25  # one asymmetric value: averaged, as (X + X.T) / 2 does
    A[5, 3] -= 0.6  # large enough to move (3, 5) in the nearest-pair ranking
    source = SparsePrecomputedDistances(sp.csr_matrix(A), 9.0, torch.float64,
                                        torch.device("cpu"))
    expected = np.where(pattern, (A + A.T) / 2, 9.0)
    np.fill_diagonal(expected, 0.0)
    i, j = (torch.as_tensor(a.ravel()) for a in np.indices((40, 40)))
    np.testing.assert_array_equal(source.pairs(i, j).numpy().reshape(40, 40), expected)
    u, v = source.support_edges()
    assert np.all(u < v)
    np.testing.assert_array_equal(np.stack([u, v]),
                                  np.stack(np.nonzero(np.triu(pattern, 1))))
    # the k nearest stored pairs of each row (ties by column), brute force
    graph = source.nearest_stored(3).toarray() > 0
    for r in range(40):
        cols = [c for c in np.flatnonzero(pattern[r]) if c != r]
        best = sorted(cols, key=lambda c: (expected[r, c], c))[:3]
        np.testing.assert_array_equal(np.flatnonzero(graph[r]), sorted(best))


def test_the_k_nearest_stored_pairs_restrict_the_graph():
    X = _groups(n_groups=6, size=8, seed=8)
    S = jaccard_distance(X, k1=10, k2=3, sparse=True)
    source = SparsePrecomputedDistances(S, 1.0, torch.float64, torch.device("cpu"))
    graph = source.nearest_stored(4)
    adjacency = ((graph + graph.T).toarray() > 0)
    model = EnergyAgglomerative(n_clusters=6, metric="precomputed", missing_distance=1.0,
                                connectivity=4, device="cpu", merge_percent=None,
                                weighted=True, regularizer=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(S)
    ref = naive_agglomerate(_densified(S, 1.0), n_clusters=6, metric="precomputed",
                            vectorized=True, adjacency=adjacency, merge_percent=None,
                            weighted=True, regularizer=None)
    np.testing.assert_array_equal(model.children_, ref["children"])
    np.testing.assert_allclose(model.distances_, ref["distances"], rtol=RTOL64)


def test_sparse_precomputed_errors_name_the_problem():
    S = sp.csr_matrix(np.array([[0, 1.0, 0], [1.0, 0, 2.0], [0, 2.0, 0]]))
    with pytest.raises(ValueError, match="needs missing_distance"):
        EnergyAgglomerative(metric="precomputed", device="cpu").fit(S)
    asym = sp.csr_matrix(np.array([[0, 1.0, 0], [0, 0, 2.0], [0, 2.0, 0]]))
    with pytest.raises(ValueError, match=r"stores \(0, 1\) but not \(1, 0\)"):
        EnergyAgglomerative(metric="precomputed", missing_distance=3.0,
                            device="cpu").fit(asym)
    with pytest.raises(ValueError, match="needs the features"):
        EnergyAgglomerative(n_clusters=2, metric="precomputed", missing_distance=3.0,
                            device="cpu", regularizer="ssd").fit(S)
    with pytest.raises(ValueError, match="missing_distance.*-1.0"):
        EnergyAgglomerative(metric="precomputed", missing_distance=-1.0,
                            device="cpu").fit(S)
    with pytest.raises(TypeError, match="missing_distance.*'one'"):
        EnergyAgglomerative(metric="precomputed", missing_distance="one",
                            device="cpu").fit(S)
    with pytest.raises(ValueError, match="connectivity=0"):
        EnergyAgglomerative(metric="precomputed", missing_distance=3.0, device="cpu",
                            connectivity=0).fit(S)
    with pytest.raises(ValueError, match="needs a sparse X"):
        EnergyAgglomerative(metric="precomputed", device="cpu",
                            connectivity=S).fit(S.toarray())
    with pytest.raises(TypeError):  # sparse features: only a distance may be sparse
        EnergyAgglomerative(device="cpu").fit(sp.csr_matrix(np.eye(3)))
    from sklearn_ecluster.cluster import energy_linkage_tree

    with pytest.raises(TypeError, match="metric='precomputed'.*got metric='auto'"):
        energy_linkage_tree(sp.csr_matrix(np.eye(3)))


def test_the_jaccard_energy_recipe_takes_the_sparse_matrix():
    loop = make_recipe("contrastive_energy", cluster_distance="jaccard")
    assert loop.clusterer.missing_distance == 1.0
    assert _takes_sparse_distances(loop.clusterer)
    assert not _takes_sparse_distances(EnergyAgglomerative(metric="precomputed"))
    assert not _takes_sparse_distances(EnergyAgglomerative(missing_distance=1.0))
    X = _groups(seed=9).astype(np.float32)
    labels, model = loop._cluster(loop.clusterer, X, None, 0)
    assert model.engine_ == "graph_reducible"
    D = jaccard_distance(X, k1=30, k2=6)
    dense = EnergyAgglomerative(**{**loop.clusterer.get_params(), "missing_distance": None,
                                   "connectivity": None}).fit(D)
    assert dense.n_clusters_ == model.n_clusters_ == 8
    np.testing.assert_array_equal(labels, dense.labels_)


def test_sparse_pattern_from_initial_clusters_equals_the_naive_reference():
    # init_labels: the initial clusters' within sums and cross sums come from
    # the stored pairs and missing_distance, as every later one
    X = _groups(n_groups=6, size=8, seed=10)
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    S = _sparse_pattern(D, 0.35, seed=11)
    init = np.arange(len(X)) // 2  # pairs of neighbouring samples
    kw = dict(n_clusters=4, merge_percent=None, regularizer=None, weighted=False)
    model = EnergyAgglomerative(metric="precomputed", missing_distance=2.0, device="cpu",
                                **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.fit(S, init_labels=init)
    ref = naive_agglomerate(_densified(S, 2.0), metric="precomputed", vectorized=True,
                            adjacency=S.toarray() != 0, init_labels=init, **kw)
    np.testing.assert_array_equal(model.labels_, ref["labels"])
    np.testing.assert_array_equal(model.children_, ref["children"])
    np.testing.assert_allclose(model.distances_, ref["distances"], rtol=RTOL64)


@pytest.mark.gpu
def test_cuda_sparse_precomputed_fit_gives_the_cpu_labels():
    # the source's lookups and the graph state on CUDA (float32 there); well
    # separated groups, so float32 cannot reorder a merge
    X = _groups(n_groups=6, size=10, seed=12)
    S = jaccard_distance(X, k1=10, k2=3, sparse=True)
    kw = dict(n_clusters=6, metric="precomputed", missing_distance=1.0,
              merge_percent=None, weighted=True, regularizer=None)
    cpu = EnergyAgglomerative(device="cpu", **kw).fit(S)
    gpu = EnergyAgglomerative(device="cuda", **kw).fit(S)
    assert gpu.device_.type == "cuda" and gpu.engine_ == cpu.engine_
    np.testing.assert_array_equal(gpu.labels_, cpu.labels_)
    auto = EnergyAgglomerative(device="cuda", **{**kw, "n_clusters": None}).fit(S)
    assert auto.n_clusters_ == 6
