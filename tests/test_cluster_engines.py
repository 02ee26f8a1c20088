"""The cluster package's engines, checked against independent references.

- the reducible engine (the compiled nearest-neighbour chain, and rounds of
  reciprocal nearest neighbours) against the cached exact engine, scipy's
  linkage and the naive reference, ties included, with and without the
  compiled kernels;
- the Lance-Williams updates against the criterion recomputed from the points;
- reducibility (SPEC 6c): counterexamples for the criteria the package treats
  as non-reducible, none for the ones it builds by rounds;
- the automatic cut on clear groups and on scikit-learn's data sets;
- ``metric="precomputed"``;
- ``verbose=1``: every line, in every engine.
"""

import re

import numpy as np
import pytest
import torch
from _naive_reference import naive_agglomerate, pair_criterion, sample_distances
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform
from sklearn.cluster import AgglomerativeClustering
from sklearn.datasets import load_digits, load_iris, load_wine, make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler, normalize

from sklearn_ecluster.cluster import (
    EnergyAgglomerative,
    energy_linkage_tree,
    make_clusterer,
)
from sklearn_ecluster.cluster._criterion import Criterion
from sklearn_ecluster.cluster._engine_reducible import greedy_order
from sklearn_ecluster.cluster._linkage import StopRule, _build
from sklearn_ecluster.cluster._tree import labels_at_cuts

REDUCIBLE = [
    {"linkage": "energy", "weighted": True, "regularizer": None, "lam": 0.0},
    {"linkage": "average", "regularizer": None, "lam": 0.0, "weighted": False},
    {"linkage": "single", "regularizer": None, "lam": 0.0, "weighted": False},
]
IDS = ["weighted-energy", "average", "single"]


def _metric(params):
    return "euclidean" if params["linkage"] == "energy" else "sqeuclidean"


def _engine_tree(X, params, engine, init_labels=None):
    """children, distances of one engine on X (float64, CPU)."""
    Xt = torch.as_tensor(X, dtype=torch.float64)
    crit = Criterion(**{k: params[k] for k in ("linkage", "regularizer", "lam")},
                     weighted=params.get("weighted", False))
    if init_labels is None:
        leaf = torch.arange(len(X))
    else:
        leaf = torch.as_tensor(init_labels)
    k0 = int(leaf.max()) + 1
    children, distances, _ = _build(Xt, leaf, k0, crit, engine, StopRule(),
                                    metric=_metric(params), working_memory=None,
                                    singletons=init_labels is None, verbose=0)
    return children, distances


# ----------------------------------------------------------------------------
# the reducible engine


@pytest.mark.parametrize("params", REDUCIBLE, ids=IDS)
@pytest.mark.parametrize("seed", range(6))
def test_reducible_engine_equals_the_cached_engine(params, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(int(rng.integers(20, 200)), int(rng.integers(1, 8))))
    c1, d1 = _engine_tree(X, params, "exact_reducible")
    c2, d2 = _engine_tree(X, params, "exact_cached")
    np.testing.assert_array_equal(c1, c2)
    # sums of float64 distances added in another order (Lance-Williams vs sums)
    np.testing.assert_allclose(d1, d2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_mst_engine_equals_the_cached_engine_and_follows_the_stopping_rules(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(int(rng.integers(20, 200)), 3))
    params = REDUCIBLE[2]
    c1, d1 = _engine_tree(X, params, "exact_mst")
    c2, d2 = _engine_tree(X, params, "exact_cached")
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(d1, d2)  # minima: exact
    for stop in ({"n_clusters": 5}, {"max_steps": 7}, {"distance_threshold": 0.5}):
        ref = naive_agglomerate(X, merge_percent=None, vectorized=True,
                                **{"n_clusters": 1, **stop}, **params)
        model = EnergyAgglomerative(merge_percent=None, device="cpu", **stop,
                                    **params).fit(X)
        assert model.engine_ == "exact_mst"
        np.testing.assert_array_equal(model.children_, ref["children"])
        np.testing.assert_array_equal(model.labels_, ref["labels"])


def _without_compiled_kernels(monkeypatch):
    """The package as built without a C compiler: NumPy rounds and Prim alone."""
    from sklearn_ecluster.cluster import _compiled

    monkeypatch.setattr(_compiled, "kernels", None)


def _spy_chain(monkeypatch):
    """A list that receives ``(merges, finished)`` of every chain run."""
    from sklearn_ecluster.cluster import _engine_reducible

    runs, run = [], _engine_reducible.run_chain

    def spy(rs, recorder):
        heights, finished = run(rs, recorder)
        runs.append((len(heights), finished))
        return heights, finished

    monkeypatch.setattr(_engine_reducible, "run_chain", spy)
    return runs


needs_kernels = pytest.mark.skipif(
    __import__("importlib").util.find_spec("sklearn_ecluster.cluster._exact_kernels")
    is None, reason="built without the compiled kernels")


def test_compiled_kernels_are_built_where_a_c_compiler_is_present():
    # the skips of needs_kernels must not hide a broken build: with the C
    # compiler Python was built with on PATH, setup.py builds the extension
    # (and ``pip install -e`` puts it next to the sources python -m imports)
    import os
    import shutil
    import sysconfig
    from importlib.util import find_spec

    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}) on PATH: the NumPy engines run alone")
    assert find_spec("sklearn_ecluster.cluster._exact_kernels") is not None, (
        "a C compiler is present but the extension is missing: install with "
        "`pip install -e .` from the checkout (see README.md)")


@needs_kernels
@pytest.mark.parametrize("params", REDUCIBLE, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", range(4))
def test_compiled_kernels_equal_the_numpy_engines(params, dtype, seed, monkeypatch):
    # the nearest-neighbour chain (and Prim) in C against the NumPy rounds (and
    # Prim): the same merges; the same heights up to the rounding of
    # Lance-Williams updates made in another order (single: minima, exact)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(int(rng.integers(50, 300)), int(rng.integers(2, 9)))).astype(dtype)
    init = None
    if seed == 3:  # from initial clusters (within sums, sizes > 1)
        init = rng.integers(0, 40, size=len(X))
        init = np.unique(init, return_inverse=True)[1]
        order = np.unique(init, return_index=True)[1]
        init = np.argsort(np.argsort(order))[init]
    kw = dict(n_clusters=1, merge_percent=None, device="cpu", init_labels=init,
              metric=_metric(params), **params)
    runs = _spy_chain(monkeypatch)
    a = energy_linkage_tree(X, **kw)
    assert runs == ([] if params["linkage"] == "single" else [(a.n_leaves - 1, True)])
    _without_compiled_kernels(monkeypatch)
    b = energy_linkage_tree(X, **kw)
    np.testing.assert_array_equal(a.children, b.children)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(a.distances, b.distances, rtol=64 * eps, atol=0)


@needs_kernels
@pytest.mark.parametrize("params", REDUCIBLE[1:], ids=IDS[1:])
def test_chain_hands_ties_to_the_rounds_and_keeps_the_tie_rule(params, monkeypatch):
    # integer grids: bit-identical ties from the start or after a few merges;
    # the chain stops at the first merge a tie could change, and the rounds
    # finish with the greedy rule, equal to the naive reference everywhere
    runs = _spy_chain(monkeypatch)
    handed_over_midway = 0
    for seed in range(12):
        rng = np.random.default_rng(100 + seed)
        X = rng.integers(0, 4, size=(int(rng.integers(10, 60)), 2)).astype(float)
        ref = naive_agglomerate(X, n_clusters=1, merge_percent=None, **params)
        model = EnergyAgglomerative(n_clusters=1, merge_percent=None, device="cpu",
                                    **params).fit(X)
        np.testing.assert_array_equal(model.children_, ref["children"])
        np.testing.assert_array_equal(model.distances_, ref["distances"])
        if params["linkage"] == "average":
            merges, finished = runs[-1]
            handed_over_midway += (not finished) and merges > 0
    if params["linkage"] == "average":
        assert handed_over_midway > 0


@needs_kernels
def test_chain_kernel_validates_its_buffers_and_stops_without_a_finite_pair():
    from sklearn_ecluster.cluster._exact_kernels import kruskal, nn_chain, prim

    inf = np.inf
    # two groups {0, 1} and {2, 3} with no finite pair between them
    D = np.array([[inf, 1, inf, inf], [1, inf, inf, inf],
                  [inf, inf, inf, 2], [inf, inf, 2, inf]])
    sizes, node, alive = np.ones(4), np.arange(4), np.ones(4, dtype=bool)
    children, heights = np.empty((3, 2), dtype=np.int64), np.empty(3)
    # the chain from 0 merges {0, 1}, then finds no finite pair from 0 and stops
    n, status = nn_chain(D, sizes, 2, node, 4, alive, children, heights)
    assert (n, status) == (1, 2)
    np.testing.assert_array_equal(children[0], [0, 1])
    assert heights[0] == 1.0
    np.testing.assert_array_equal(alive, [True, False, True, True])
    np.testing.assert_array_equal(node, [4, 1, 2, 3])
    np.testing.assert_array_equal(sizes, [2.0, 1.0, 1.0, 1.0])
    assert D[0, 2] == D[2, 0] == inf and D[2, 3] == 2  # the update of row and column 0
    with pytest.raises(ValueError, match="square float32 or float64"):
        nn_chain(np.zeros((3, 3), dtype=np.int64), np.ones(3, dtype=np.int64), 2,
                 np.arange(3), 3, np.ones(3, dtype=bool), children, heights)
    with pytest.raises(ValueError, match="sizes"):
        nn_chain(D.astype(np.float32), sizes, 2, node, 4, alive, children, heights)
    with pytest.raises(ValueError, match="method"):
        nn_chain(D, sizes, 7, node, 4, alive, children, heights)
    with pytest.raises(TypeError, match="C-contiguous"):
        prim(np.zeros((4, 4))[:, ::2], np.empty(4, np.int64), np.empty(4))
    with pytest.raises(ValueError, match="order"):
        prim(np.zeros((4, 4)), np.empty(3, np.int64), np.empty(4))
    # Kruskal: a path 0-1-2 with tied edges at cluster 1 is ambiguous (-1);
    # disjoint tied edges merge in (lo, hi) order
    edges = [np.array(v, dtype=np.int64) for v in ([0, 1], [1, 2])]
    out = np.empty((2, 2), dtype=np.int64), np.empty(2)
    assert kruskal(*edges, np.ones(2), np.arange(2), 2, inf, np.arange(3), 3, *out) == -1
    edges = [np.array(v, dtype=np.int64) for v in ([2, 0, 1], [3, 1, 2])]
    node = np.arange(4)
    m = kruskal(*edges, np.array([1.0, 1.0, 5.0]), np.arange(3), 3, inf, node, 4,
                np.empty((3, 2), dtype=np.int64), np.empty(3))
    assert m == 3 and node[0] == 6  # (0, 1), (2, 3), then the two pairs
    with pytest.raises(ValueError, match="out of range"):
        kruskal(np.array([0, 9]), np.array([1, 2]), np.ones(2), np.arange(2), 2, inf,
                np.arange(3), 3, *out)


@pytest.mark.parametrize("params", REDUCIBLE[:2], ids=IDS[:2])
@pytest.mark.parametrize("seed", range(3))
def test_torch_rounds_equal_the_numpy_rounds(params, seed, monkeypatch):
    # the CPU runs the NumPy kernels; the torch ones (GPU) must give the same tree
    from sklearn_ecluster.cluster import _engine_reducible

    _without_compiled_kernels(monkeypatch)

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(int(rng.integers(30, 200)), 4))
    init = rng.integers(0, 25, size=len(X)) if seed == 2 else None
    if init is not None:
        init = np.unique(init, return_inverse=True)[1]
        order = np.unique(init, return_index=True)[1]
        init = np.argsort(np.argsort(order))[init]
    c1, d1 = _engine_tree(X, params, "exact_reducible", init)
    monkeypatch.setattr(_engine_reducible, "_rounds_numpy", _engine_reducible._rounds_torch)
    c2, d2 = _engine_tree(X, params, "exact_reducible", init)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_allclose(d1, d2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_torch_prim_equals_the_numpy_prim(seed, monkeypatch):
    from sklearn_ecluster.cluster import _engine_mst

    _without_compiled_kernels(monkeypatch)

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(int(rng.integers(30, 200)), 3))
    c1, d1 = _engine_tree(X, REDUCIBLE[2], "exact_mst")
    monkeypatch.setattr(_engine_mst, "_prim_numpy",
                        lambda S: _engine_mst._prim(torch.from_numpy(S), len(S)))
    c2, d2 = _engine_tree(X, REDUCIBLE[2], "exact_mst")
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(d1, d2)  # minima: exact


@pytest.mark.parametrize("params", REDUCIBLE, ids=IDS)
def test_reducible_engine_from_initial_clusters_equals_the_cached_engine(params):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(150, 4))
    init = rng.integers(0, 60, size=150)
    init = np.unique(init, return_inverse=True)[1]
    order = np.unique(init, return_index=True)[1]
    init = np.argsort(np.argsort(order))[init]  # numbered by first occurrence
    c1, d1 = _engine_tree(X, params, "exact_reducible", init)
    c2, d2 = _engine_tree(X, params, "exact_cached", init)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_allclose(d1, d2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("params", "method"), [
    (REDUCIBLE[0], "ward"), (REDUCIBLE[1], "average"), (REDUCIBLE[2], "single"),
], ids=IDS)
def test_reducible_engine_equals_scipy_at_every_cut(params, method):
    rng = np.random.default_rng(11)
    centers = rng.normal(size=(12, 16))
    X = centers[rng.integers(0, 12, 1500)] + 0.6 * rng.normal(size=(1500, 16))
    model = EnergyAgglomerative(merge_percent=None, n_clusters=1, device="cpu",
                                **params).fit(X)
    assert model.engine_ == ("exact_mst" if method == "single" else "exact_reducible")
    if method == "ward":  # weighted energy = Ward on sqrt(d), heights^2 = E_w
        Z = linkage(np.sqrt(pdist(X)), "ward")
        heights = Z[:, 2] ** 2
    else:
        Z = linkage(pdist(X, "sqeuclidean"), method)
        heights = Z[:, 2]
    np.testing.assert_allclose(np.sort(model.distances_), np.sort(heights), rtol=1e-8)
    n = len(X)
    for k in (2, 5, 12, 40, 300):
        ours = labels_at_cuts(model.children_, np.arange(n), n, [n - k])[n - k]
        theirs = fcluster(Z, k, "maxclust")
        assert adjusted_rand_score(ours, theirs) == 1.0


@pytest.mark.parametrize("params", REDUCIBLE[1:], ids=IDS[1:])
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kernels", [True, False], ids=["compiled", "numpy"])
def test_reducible_engine_follows_the_tie_rule_on_integer_grids(params, seed, kernels,
                                                                monkeypatch):
    # integer data: sums are exact, ties are bit-identical; the naive reference
    # takes pairs in (D, i, j) order one at a time
    if not kernels:
        _without_compiled_kernels(monkeypatch)
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 3, size=(int(rng.integers(8, 40)), 2)).astype(float)
    ref = naive_agglomerate(X, n_clusters=1, merge_percent=None, **params)
    model = EnergyAgglomerative(n_clusters=1, merge_percent=None, device="cpu",
                                **params).fit(X)
    assert model.engine_ in ("exact_reducible", "exact_mst")
    np.testing.assert_array_equal(model.children_, ref["children"])
    np.testing.assert_array_equal(model.distances_, ref["distances"])


def test_reducible_engine_stops_where_the_greedy_prefix_stops():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 3))
    params = REDUCIBLE[0]
    full = naive_agglomerate(X, n_clusters=1, merge_percent=None, vectorized=True, **params)
    for stop in ({"n_clusters": 7}, {"max_steps": 50}, {"distance_threshold": 1.5}):
        ref = naive_agglomerate(X, merge_percent=None, vectorized=True,
                                **{"n_clusters": 1, **stop}, **params)
        model = EnergyAgglomerative(merge_percent=None, device="cpu", **stop,
                                    **params).fit(X)
        q = len(ref["children"])
        np.testing.assert_array_equal(model.children_, full["children"][:q])
        np.testing.assert_array_equal(model.labels_, ref["labels"])
        assert model.n_steps_ == q == len(model.history_["n_clusters"])


def test_greedy_order_puts_children_before_parents_and_follows_the_key():
    n_leaves = 4
    # merges found out of order: the sort by height alone is the greedy order
    children = np.array([[0, 1], [2, 3], [4, 5]])
    np.testing.assert_array_equal(
        greedy_order(children, np.array([2.0, 1.0, 3.0]), n_leaves), [1, 0, 2])
    # a tie across levels: merge 1 = (leaf 0, node 4 = merge 0) has the smaller
    # key (1, 0, 1) < (1, 1, 2), but needs merge 0 first: the heap decides
    children = np.array([[1, 2], [0, 4], [3, 5]])
    np.testing.assert_array_equal(
        greedy_order(children, np.array([1.0, 1.0, 2.0]), n_leaves), [0, 1, 2])


# ----------------------------------------------------------------------------
# Lance-Williams and reducibility


def _random_triple(seed, sizes=None):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, size=3) if sizes is None else np.asarray(sizes)
    X = rng.normal(size=(int(sizes.sum()), int(rng.integers(1, 4))))
    return X, np.split(np.arange(len(X)), np.cumsum(sizes)[:-1])


@pytest.mark.parametrize("params", REDUCIBLE, ids=IDS)
def test_lance_williams_update_equals_the_criterion_of_the_union(params):
    crit = Criterion(linkage=params["linkage"], regularizer=None, lam=0.0,
                     weighted=params.get("weighted", False))
    for seed in range(40):
        X, (A, B, K) = _random_triple(seed)
        Dm = sample_distances(X, _metric(params))
        Dsq = sample_distances(X, "sqeuclidean")

        def f(P, Q, X=X, Dm=Dm, Dsq=Dsq):
            return pair_criterion(X, Dm, Dsq, P, Q, **params)

        def t(v):
            return torch.tensor(v, dtype=torch.float64)

        got = crit.lance_williams(t([[f(A, K)]]), t([[f(B, K)]]), t([[f(A, B)]]),
                                  t([[float(len(A))]]), t([[float(len(B))]]),
                                  t([[float(len(K))]]))
        assert float(got) == pytest.approx(f(np.concatenate([A, B]), K), rel=1e-12)


def _violation(params, n_trials):
    """A triple with D(A, B) <= D(A, C), D(B, C) and D(A u B, C) < both, or None."""
    for seed in range(n_trials):
        rng = np.random.default_rng(seed)
        d = int(rng.integers(1, 3))
        sizes = rng.integers(1, 4, size=3)
        X = rng.normal(size=(int(sizes.sum()), d)) * rng.choice([0.3, 1.0, 3.0])
        A, B, C = np.split(np.arange(len(X)), np.cumsum(sizes)[:-1])
        Dm = sample_distances(X, _metric(params))
        Dsq = sample_distances(X, "sqeuclidean")

        def f(P, Q, X=X, Dm=Dm, Dsq=Dsq):
            return pair_criterion(X, Dm, Dsq, P, Q, **params)

        ab, ac, bc = f(A, B), f(A, C), f(B, C)
        if ab <= min(ac, bc):
            abc = f(np.concatenate([A, B]), C)
            if abc < min(ac, bc) - 1e-9 * max(1.0, abs(abc)):
                return seed, ab, ac, bc, abc
    return None


@pytest.mark.parametrize("params", REDUCIBLE, ids=IDS)
def test_reducible_criteria_show_no_violation(params):
    assert _violation(params, 1500) is None


@pytest.mark.parametrize("params", [
    {"linkage": "energy", "regularizer": None, "lam": 0.0, "weighted": False},
    {"linkage": "energy", "regularizer": "ssd", "lam": 0.9, "weighted": False},
    {"linkage": "energy", "regularizer": "ssd", "lam": 0.9, "weighted": True},
    {"linkage": "energy", "regularizer": "ssd_merged", "lam": 0.9, "weighted": False},
    {"linkage": "energy", "regularizer": "ssd_merged", "lam": 0.9, "weighted": True},
    {"linkage": "energy", "regularizer": "dispersion", "lam": 0.1, "weighted": True},
    {"linkage": "single", "regularizer": "dispersion", "lam": 0.1, "weighted": False},
], ids=["energy", "energy-ssd", "weighted-ssd", "energy-ssd_merged",
        "weighted-ssd_merged", "weighted-dispersion", "single-dispersion"])
def test_non_reducible_criteria_have_a_counterexample(params):
    # the docs' table of counterexamples (SPEC 6c); these criteria use the cache
    found = _violation(params, 4000)
    assert found is not None
    crit = Criterion(linkage=params["linkage"], regularizer=params["regularizer"],
                     lam=params["lam"], weighted=params["weighted"])
    assert not crit.reducible


# ----------------------------------------------------------------------------
# the automatic cut


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_automatic_cut_with_the_defaults_finds_clear_groups(seed):
    X, y = make_blobs(600, centers=8, n_features=16, cluster_std=1.0, random_state=seed)
    X = normalize(X)
    model = EnergyAgglomerative(device="cpu").fit(X)
    assert adjusted_rand_score(y, model.labels_) >= 0.95
    # the documented hierarchy: the standalone one, whose cut it is
    assert model.engine_ == "exact_reducible"
    assert model.criterion_ == {"linkage": "energy", "regularizer": None, "lam": 0.0,
                                "weighted": True}
    n = len(X)
    q = n - model.n_clusters_
    np.testing.assert_array_equal(
        labels_at_cuts(model.children_, np.arange(n), n, [q])[q], model.labels_)


def test_automatic_cut_on_digits_returns_a_handful_of_clusters():
    X = normalize(StandardScaler().fit_transform(load_digits().data))
    model = EnergyAgglomerative(device="cpu").fit(X)
    assert 5 <= model.n_clusters_ <= 40
    assert adjusted_rand_score(load_digits().target, model.labels_) > 0.5


@pytest.mark.parametrize("loader", [load_iris, load_wine, load_digits])
def test_standalone_preset_is_ward_on_sqrt_distances_and_near_sklearn(loader):
    X, y = loader(return_X_y=True)
    X = normalize(StandardScaler().fit_transform(X))
    k = len(np.unique(y))
    labels = make_clusterer("standalone", n_clusters=k, device="cpu").fit_predict(X)
    ref = fcluster(linkage(np.sqrt(pdist(X)), "ward"), k, "maxclust")
    assert adjusted_rand_score(ref, labels) == 1.0
    # same order of quality as scikit-learn's linkages at the true k
    ward = adjusted_rand_score(y, AgglomerativeClustering(k).fit_predict(X))
    assert adjusted_rand_score(y, labels) >= ward - 0.1


# ----------------------------------------------------------------------------
# precomputed distances


@pytest.mark.parametrize("params", [
    {"merge_percent": None, "weighted": True, "regularizer": None, "lam": 0.0},
    {"merge_percent": 0.1, "regularizer": None, "lam": 0.0},
    {"merge_percent": None, "regularizer": None, "lam": 0.0},
    {"merge_percent": 0.1, "linkage": "average", "regularizer": None, "lam": 0.0},
    {"merge_percent": None, "linkage": "single", "regularizer": "size", "lam": 0.005},
])
def test_precomputed_distances_give_the_feature_results(params):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(90, 5))
    metric = "euclidean" if params.get("linkage", "energy") == "energy" else "sqeuclidean"
    D = squareform(pdist(X, metric))
    a = EnergyAgglomerative(n_clusters=4, device="cpu", metric=metric, **params).fit(X)
    b = EnergyAgglomerative(n_clusters=4, device="cpu", metric="precomputed",
                            **params).fit(D)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_array_equal(a.children_, b.children_)
    np.testing.assert_allclose(a.distances_, b.distances_, rtol=1e-9, atol=1e-12)


def test_precomputed_distances_with_initial_clusters_and_auto_cut():
    X, y = make_blobs(200, centers=4, n_features=6, random_state=0)
    D = squareform(pdist(X))
    init = np.arange(200) // 2
    a = EnergyAgglomerative(device="cpu").fit(X, init_labels=init)
    b = EnergyAgglomerative(device="cpu", metric="precomputed").fit(D, init_labels=init)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert b.cut_score_ == pytest.approx(a.cut_score_, rel=1e-9)


def test_precomputed_refuses_what_needs_features():
    D = squareform(pdist(np.random.default_rng(0).normal(size=(10, 3))))
    with pytest.raises(ValueError, match="regularizer='ssd' needs the features"):
        EnergyAgglomerative(metric="precomputed", n_clusters=2, device="cpu").fit(D)
    with pytest.raises(ValueError, match="square distance matrix"):
        energy_linkage_tree(D[:, :5], metric="precomputed", regularizer=None,
                            n_clusters=2, device="cpu")


# ----------------------------------------------------------------------------
# verbose output


STEP = re.compile(r"^\[EnergyAgglomerative\] step (\d+): (\d+) merges -> (\d+) clusters, "
                  r"max D (\S+), \S+ s$")
ROUND = re.compile(r"^\[EnergyAgglomerative\] round (\d+): (\d+) merges -> (\d+) clusters, "
                   r"max D (\S+)$")
SUMMARY = re.compile(r"^\[EnergyAgglomerative\] (\d+) steps, (\d+) merges, (\d+) clusters "
                     r"in \S+ s")


def _fit_lines(capsys, X, **params):
    model = EnergyAgglomerative(device="cpu", **params).fit(X)
    return model, capsys.readouterr().out.splitlines()


def test_verbose_zero_prints_nothing(capsys):
    X = np.random.default_rng(0).normal(size=(60, 3))
    for mp in (0.1, None):
        _fit_lines(capsys, X, n_clusters=3, merge_percent=mp)
        assert capsys.readouterr().out == ""


def test_verbose_batched_prints_every_step(capsys):
    X = np.random.default_rng(0).normal(size=(80, 3))
    model, lines = _fit_lines(capsys, X, n_clusters=3, verbose=1)
    steps, summary = lines[:-1], lines[-1]
    assert len(steps) == model.n_steps_ >= 2
    for t, line in enumerate(steps):
        m = STEP.match(line)
        assert m, line
        assert int(m[1]) == t + 1
        assert int(m[2]) == model.history_["n_merges"][t]
        assert int(m[3]) == model.history_["n_clusters"][t]
    m = SUMMARY.match(summary)
    assert m and int(m[1]) == model.n_steps_ and int(m[3]) == 3


@needs_kernels
def test_verbose_exact_reducible_prints_the_chain(capsys):
    X = np.random.default_rng(0).normal(size=(80, 3))
    model, lines = _fit_lines(capsys, X, n_clusters=1, merge_percent=None, weighted=True,
                              regularizer=None, lam=0.0, verbose=1)
    assert lines[0] == "[EnergyAgglomerative] nearest-neighbour chain: 79 merges"
    assert len(lines) == 2 and SUMMARY.match(lines[1])[2] == "79"


def test_verbose_exact_reducible_prints_every_round(capsys, monkeypatch):
    _without_compiled_kernels(monkeypatch)
    X = np.random.default_rng(0).normal(size=(80, 3))
    model, lines = _fit_lines(capsys, X, n_clusters=1, merge_percent=None, weighted=True,
                              regularizer=None, lam=0.0, verbose=1)
    rounds, summary = lines[:-1], lines[-1]
    assert rounds and all(ROUND.match(line) for line in rounds)
    assert sum(int(ROUND.match(line)[2]) for line in rounds) == 79
    assert [int(ROUND.match(line)[1]) for line in rounds] == list(range(1, len(rounds) + 1))
    assert int(ROUND.match(rounds[-1])[3]) == 1
    assert SUMMARY.match(summary)[2] == "79"


def test_verbose_exact_cached_prints_a_twentieth_of_the_merges(capsys):
    X = np.random.default_rng(0).normal(size=(81, 3))
    model, lines = _fit_lines(capsys, X, n_clusters=1, merge_percent=None, verbose=1)
    assert model.engine_ == "exact_cached"
    steps, summary = lines[:-1], lines[-1]
    every = 80 // 20
    assert len(steps) == 20
    for line in steps:
        m = STEP.match(line)
        assert m, line
        t = int(m[1])
        assert t % every == 0 or t == 80
        assert int(m[3]) == model.history_["n_clusters"][t - 1] == 81 - t
    assert SUMMARY.match(summary)[2] == "80"


def test_reducible_merges_by_blocks_of_pairs_give_the_same_tree(monkeypatch):
    # merge_pairs updates the rows of many pairs by blocks (bench_recluster_scale):
    # one pair a block and all at once build the same tree, to the bit
    _without_compiled_kernels(monkeypatch)
    X = np.random.default_rng(3).normal(size=(120, 5))
    kw = dict(n_clusters=1, merge_percent=None, linkage="energy", weighted=True,
              regularizer=None, lam=0.0, device="cpu")
    a = energy_linkage_tree(X, working_memory=1e-5, **kw)
    b = energy_linkage_tree(X, working_memory=1024, **kw)
    np.testing.assert_array_equal(a.children, b.children)
    np.testing.assert_array_equal(a.distances, b.distances)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("k", "step"), [(1, 256), (7, 3), (300, 64), (513, 256)])
@pytest.mark.parametrize("kernels", [True, False], ids=["compiled", "numpy"])
def test_tiled_symmetrisation_equals_the_plain_formula_bit_for_bit(dtype, k, step, kernels,
                                                                  monkeypatch):
    if not kernels:
        _without_compiled_kernels(monkeypatch)
    from sklearn_ecluster.cluster._pair_matrix import _symmetrize_

    X = torch.as_tensor(np.random.default_rng(k).normal(size=(k, k)), dtype=dtype)
    expected = (X + X.T) * 0.5  # one rounding per element either way: equal bits
    S = torch.empty_like(X)
    _symmetrize_(S, X, step=step)
    assert torch.equal(S, expected)
    S = X.clone()
    _symmetrize_(S, step=step)  # in place
    assert torch.equal(S, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("k", "step"), [(1, 256), (7, 3), (300, 64)])
@pytest.mark.parametrize("kernels", [True, False], ids=["compiled", "numpy"])
def test_tiled_symmetrisation_of_a_symmetric_matrix_is_a_copy(dtype, k, step, kernels, monkeypatch):
    if not kernels:
        _without_compiled_kernels(monkeypatch)
    from sklearn_ecluster.cluster._pair_matrix import _symmetrize_

    A = torch.as_tensor(np.random.default_rng(k).normal(size=(k, k)), dtype=dtype)
    X = A + A.T  # exactly symmetric
    S = torch.full_like(X, float("nan"))
    _symmetrize_(S, X, step=step)
    assert torch.equal(S, X)


@pytest.mark.parametrize("step", [3, 64, 256])
@pytest.mark.parametrize("kernels", [True, False], ids=["compiled", "numpy"])
def test_exact_symmetry_check_equals_the_plain_comparison(step, kernels, monkeypatch):
    if not kernels:
        _without_compiled_kernels(monkeypatch)
    from sklearn_ecluster.cluster._pair_matrix import exactly_symmetric

    rng = np.random.default_rng(step)
    A = rng.normal(size=(200, 200))
    A = A + A.T
    assert exactly_symmetric(A, step)
    for i, j in [(0, 1), (199, 0), (70, 130), (5, 6)]:  # in every kind of tile pair
        B = A.copy()
        B[i, j] = np.nextafter(B[i, j], np.inf)  # one ulp off
        assert not exactly_symmetric(B, step)
        assert exactly_symmetric(B, step) == np.array_equal(B, B.T)
    B = A.copy()
    B[7, 7] += 1.0  # the diagonal is its own mirror
    assert exactly_symmetric(B, step)


@pytest.mark.parametrize("tied", [False, True])
def test_single_linkage_borrows_a_symmetric_matrix_and_leaves_it_unchanged(tied,
                                                                             monkeypatch):
    # Prim's tree reads the caller's matrix in place (no copy); the tie
    # fallback to the reducible engine copies it first. Either way the input
    # is unchanged (its diagonal too) and the tree is the one built on a copy.
    from sklearn_ecluster.cluster import _pair_matrix

    rng = np.random.default_rng(0)
    X = rng.integers(0, 3, size=(60, 2)).astype(float) if tied else rng.normal(size=(60, 4))
    D = squareform(pdist(X))
    np.fill_diagonal(D, 5.0)  # ignored: self-pairs are never read
    before = D.copy()
    kw = dict(metric="precomputed", linkage="single", n_clusters=1, merge_percent=None,
              regularizer=None, lam=0.0, device="cpu", verbose=0)
    tree = energy_linkage_tree(D, **kw)
    np.testing.assert_array_equal(D, before)
    assert tree.engine == "exact_mst"
    np.testing.assert_array_equal(np.sort(tree.distances),
                                  np.sort(linkage(pdist(X), "single")[:, 2]))
    monkeypatch.setattr(_pair_matrix, "exactly_symmetric", lambda A, step=256: False)
    copied = energy_linkage_tree(D, **kw)  # the tiled average: the same bits
    np.testing.assert_array_equal(tree.children, copied.children)
    np.testing.assert_array_equal(tree.distances, copied.distances)
