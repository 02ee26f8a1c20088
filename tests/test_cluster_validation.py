"""Bad input gives clear errors; duplicates and exact ties give defined results."""

import numpy as np
import pytest
import torch
from _naive_reference import naive_agglomerate
from sklearn.exceptions import NotFittedError

from sklearn_ecluster.cluster import (
    EnergyAgglomerative,
    energy_linkage_tree,
    make_clusterer,
)


def _X(n=10, d=2, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def _with(value):
    X = _X()
    X[3, 1] = value
    return X


# ----------------------------------------------------------------------------
# X


@pytest.mark.parametrize(
    "X, error, match",
    [
        (_with(np.nan), ValueError, "NaN"),
        (_with(np.inf), ValueError, "infinity"),
        (_with(-np.inf), ValueError, "infinity"),
        (np.empty((0, 2)), ValueError, "0 sample"),
        (np.empty((5, 0)), ValueError, "0 feature"),
        (_X(n=1), ValueError, "1 sample"),
        (_X()[:, 0], ValueError, "Expected 2D array"),
        (_X()[:, :, None], ValueError, "dim 3"),
        (_X() + 1j, ValueError, "[Cc]omplex"),
        (np.array([["a", "b"], ["c", "d"], ["e", "f"]], dtype=object), ValueError,
         "could not convert"),
    ],
    ids=["nan", "inf", "-inf", "empty", "no-features", "one-sample", "1d", "3d",
         "complex", "object-strings"],
)
@pytest.mark.parametrize("merge_percent", [0.05, None])
def test_bad_arrays_are_rejected(X, error, match, merge_percent):
    with pytest.raises(error, match=match):
        EnergyAgglomerative(merge_percent=merge_percent, device="cpu").fit(X)


@pytest.mark.parametrize(
    "X, error, match",
    [
        (torch.tensor(_with(np.nan)), ValueError, "NaN"),
        (torch.tensor(_with(np.inf)), ValueError, "infinity"),
        (torch.tensor(_X()[:, 0]), ValueError, "Expected 2D"),
        (torch.tensor(_X()[:, :, None]), ValueError, "Expected 2D"),
        (torch.tensor(_X() + 1j), ValueError, "[Cc]omplex"),
        (torch.tensor(_X() > 0), TypeError, "dtype"),
        (torch.tensor(_X(n=1)), ValueError, "1 sample"),
        (torch.empty((5, 0)), ValueError, "0 feature"),
        (torch.empty((0, 3)), ValueError, "0 sample"),
    ],
    ids=["nan", "inf", "1d", "3d", "complex", "bool", "one-sample", "no-features",
         "empty"],
)
def test_bad_tensors_are_rejected(X, error, match):
    with pytest.raises(error, match=match):
        EnergyAgglomerative(device="cpu").fit(X)


def test_accepted_inputs_give_the_same_labels():
    """Lists, integer arrays, Fortran order, read-only arrays, object numbers."""
    X = _X(n=30, d=3, seed=1)
    ref = EnergyAgglomerative(n_clusters=4, device="cpu").fit(X).labels_
    readonly = X.copy()
    readonly.setflags(write=False)
    wide = np.zeros((30, 6))
    wide[:, ::2] = X
    for Xv in (X.tolist(), np.asfortranarray(X), readonly, X.astype(object), wide[:, ::2],
               torch.from_numpy(wide)[:, ::2]):
        labels = EnergyAgglomerative(n_clusters=4, device="cpu").fit(Xv).labels_
        np.testing.assert_array_equal(labels, ref)
    assert not readonly.flags.writeable
    Xi = np.random.default_rng(2).integers(-5, 6, size=(30, 3))
    np.testing.assert_array_equal(
        EnergyAgglomerative(n_clusters=4, device="cpu").fit(Xi).labels_,
        EnergyAgglomerative(n_clusters=4, device="cpu").fit(Xi.astype(float)).labels_,
    )


@pytest.mark.parametrize("merge_percent", [0.1, None])
def test_tensor_requiring_grad_is_clustered_like_its_detached_values(merge_percent):
    # features straight from a network: detached, not an autograd error
    X = torch.tensor(_X(n=20, seed=3), requires_grad=True)
    params = dict(n_clusters=3, merge_percent=merge_percent, device="cpu")
    expected = EnergyAgglomerative(**params).fit(X.detach()).labels_
    labels = EnergyAgglomerative(**params).fit(X).labels_
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(
        labels, naive_agglomerate(X.detach().numpy(), n_clusters=3,
                                  merge_percent=merge_percent)["labels"])
    np.testing.assert_array_equal(
        energy_linkage_tree(X, n_clusters=3, merge_percent=merge_percent,
                            device="cpu").labels, expected)
    assert X.requires_grad and X.grad is None


# ----------------------------------------------------------------------------
# parameters


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_clusters": 0}, "n_clusters"),
        ({"n_clusters": -2}, "n_clusters"),
        ({"n_clusters": 2.5}, "n_clusters"),
        ({"n_clusters": 11}, "n_clusters=11"),
        ({"n_clusters": 11, "merge_percent": None}, "n_clusters=11"),
        ({"merge_percent": 0}, "merge_percent"),
        ({"merge_percent": 1}, "merge_percent"),
        ({"merge_percent": -0.1}, "merge_percent"),
        ({"merge_percent": 1.5}, "merge_percent"),
        ({"lam": -0.1}, "lam"),
        ({"linkage": "ward"}, "linkage.*ward"),
        ({"linkage": "Energy"}, "linkage"),
        ({"regularizer": "l2"}, "regularizer.*l2"),
        ({"regularizer": "none"}, "regularizer"),
        ({"metric": "cosine"}, "metric.*cosine"),
        ({"metric": "manhattan", "linkage": "single"}, "metric"),
        ({"merge_schedule": "linear"}, "merge_schedule.*linear"),
        ({"max_steps": 0}, "max_steps"),
        ({"working_memory": 0}, "working_memory"),
        ({"weighted": "yes"}, "weighted"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_parameters_are_rejected(params, match):
    with pytest.raises(ValueError, match=match):
        EnergyAgglomerative(**{"device": "cpu", **params}).fit(_X())


@pytest.mark.parametrize("merge_percent", [0.05, None])
def test_energy_linkage_refuses_squared_distances(merge_percent):
    with pytest.raises(ValueError, match="sqeuclidean"):
        EnergyAgglomerative(metric="sqeuclidean", merge_percent=merge_percent,
                            device="cpu").fit(_X())
    with pytest.raises(ValueError, match="sqeuclidean"):
        make_clusterer("ecluster", metric="sqeuclidean", device="cpu").fit(_X())
    with pytest.raises(ValueError, match="sqeuclidean"):
        energy_linkage_tree(_X(), metric="sqeuclidean", device="cpu")


def test_functional_core_validates_its_parameters():
    with pytest.raises(ValueError, match="merge_percent"):
        energy_linkage_tree(_X(), merge_percent=1.5, device="cpu")
    with pytest.raises(ValueError, match="regularizer"):
        energy_linkage_tree(_X(), regularizer="bogus", device="cpu")


def test_unknown_preset_is_rejected():
    with pytest.raises(ValueError, match="ward"):
        make_clusterer("ward")


@pytest.mark.parametrize(
    "init_labels, error, match",
    [
        (np.arange(9), ValueError, "init_labels.*length"),
        (np.arange(11), ValueError, "init_labels"),
        (np.zeros((10, 1), dtype=int), ValueError, "init_labels"),
        (np.zeros((2, 5), dtype=int), ValueError, "init_labels"),
        (np.arange(10) + 0.5, TypeError, "init_labels.*integer"),
        (np.r_[np.nan, np.arange(9.0)], TypeError, "init_labels"),
        (np.array(list("abcdefghij")), TypeError, "init_labels"),
        (3, ValueError, "init_labels"),
    ],
    ids=["short", "long", "column", "2d", "fractions", "nan", "strings", "scalar"],
)
@pytest.mark.parametrize("merge_percent", [0.05, None])
def test_bad_init_labels_are_rejected(init_labels, error, match, merge_percent):
    with pytest.raises(error, match=match):
        EnergyAgglomerative(merge_percent=merge_percent, device="cpu").fit(
            _X(), init_labels=init_labels
        )


def test_integral_init_labels_of_any_type_are_accepted():
    X = _X(n=12, seed=4)
    init = np.array([3, 3, 1, 7, 1, 0, 0, 7, 9, 9, 3, 2])
    ref = EnergyAgglomerative(n_clusters=2, device="cpu").fit(X, init_labels=init)
    for variant in (init.astype(float), init.tolist(), torch.from_numpy(init),
                    init.astype(np.uint8), init * 10**12 - 5):
        model = EnergyAgglomerative(n_clusters=2, device="cpu").fit(X, init_labels=variant)
        np.testing.assert_array_equal(model.labels_, ref.labels_)
        np.testing.assert_array_equal(model.children_, ref.children_)


def test_linkage_matrix_needs_a_fitted_full_tree():
    with pytest.raises(NotFittedError):
        EnergyAgglomerative(device="cpu").get_linkage_matrix()
    for params in ({"n_clusters": 3}, {"max_steps": 2}, {"distance_threshold": 0.5}):
        model = EnergyAgglomerative(device="cpu", **params).fit(_X(n=20))
        with pytest.raises(ValueError, match="full tree"):
            model.get_linkage_matrix()


# ----------------------------------------------------------------------------
# duplicates and exact ties

CONFIGS = [
    {},
    {"weighted": True, "regularizer": None, "lam": 0.0},
    {"regularizer": "ssd_merged"},
    {"linkage": "single", "regularizer": "size", "lam": 0.005},
    {"linkage": "average", "regularizer": "dispersion", "lam": 0.1},
]


def _grid(seed, n, d=2, high=3):
    rng = np.random.default_rng(seed)
    return rng.integers(0, high, size=(n, d)).astype(float)


@pytest.mark.parametrize("merge_percent", [0.1, None])
@pytest.mark.parametrize("params", CONFIGS)
def test_duplicates_and_ties_are_deterministic(params, merge_percent):
    X = _grid(5, 60)  # 9 distinct points, dozens of duplicates and tied distances
    runs = [
        EnergyAgglomerative(merge_percent=merge_percent, device="cpu", **params).fit(X)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0].labels_, runs[1].labels_)
    np.testing.assert_array_equal(runs[0].children_, runs[1].children_)
    np.testing.assert_array_equal(runs[0].distances_, runs[1].distances_)
    # duplicates are merged first, at criterion 0 where nothing else is added
    if params.get("regularizer", "ssd") in ("ssd", "ssd_merged", "dispersion", None):
        n_distinct = len(np.unique(X, axis=0))
        assert np.all(runs[0].distances_[: 60 - n_distinct] == pytest.approx(0.0, abs=1e-12))


EXACT_TIE_CONFIGS = [
    # criteria the package evaluates exactly on small integer data, so that
    # tied values are bit-identical and the (D, i, j) rule decides
    {"linkage": "single", "regularizer": None, "lam": 0.0},
    {"linkage": "single", "regularizer": "size", "lam": 0.5},
    {"linkage": "single", "regularizer": None, "lam": 0.0, "metric": "euclidean"},
    {"linkage": "single", "regularizer": "size", "lam": 0.25, "metric": "euclidean"},
    # integer sums of squared distances over n m: one division each side
    {"linkage": "average", "regularizer": None, "lam": 0.0},
]


@pytest.mark.parametrize("merge_percent", [0.15, None])
@pytest.mark.parametrize("params", EXACT_TIE_CONFIGS)
def test_ties_follow_the_lowest_index_pair_rule(params, merge_percent):
    for seed in range(15):
        rng = np.random.default_rng(seed)
        X = _grid(seed, int(rng.integers(6, 30)), d=int(rng.integers(1, 3)), high=4)
        full = dict(params, n_clusters=1, merge_percent=merge_percent)
        ref = naive_agglomerate(X, **full)
        model = EnergyAgglomerative(device="cpu", **full).fit(X)
        np.testing.assert_array_equal(model.children_, ref["children"])
        # tied values are computed by the same kernel, so they stay bit-identical
        # and the order is exact; the values themselves may differ from NumPy's
        # by an ulp: torch's float64 sqrt is not correctly rounded on every CPU
        # (sqrt(2) one ulp low on some Xeons), NumPy's is
        np.testing.assert_allclose(model.distances_, ref["distances"],
                                   rtol=2 * np.finfo(np.float64).eps, atol=0)
        for k in (2, 3):
            part = dict(full, n_clusters=k)
            np.testing.assert_array_equal(
                EnergyAgglomerative(device="cpu", **part).fit(X).labels_,
                naive_agglomerate(X, **part)["labels"],
            )


@pytest.mark.parametrize("merge_percent", [0.3, None])
def test_energy_ties_follow_the_lowest_index_pair_rule(merge_percent):
    # after the duplicates {2, 2, 2} are merged (E = 0), E({0}, {1}) = 2 * 1 and
    # E({1}, {2, 2, 2}) = 2 * 3 / 3 - 0 - 0 = 2 tie exactly; the pair of lower
    # cluster indices, ({0}, {1}), goes first (SPEC 6)
    X = np.array([[0.0], [1.0], [2.0], [2.0], [2.0]])
    model = EnergyAgglomerative(n_clusters=2, merge_percent=merge_percent, lam=0.0,
                                regularizer=None, device="cpu").fit(X)
    np.testing.assert_array_equal(model.labels_, [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(model.children_[2], [0, 1])


@pytest.mark.parametrize("merge_percent", [0.2, None])
def test_energy_ties_of_larger_clusters_follow_the_lowest_index_pair_rule(merge_percent):
    # E({0, 0}, {1, 1}) = 2 * 4 / 4 = 2 and E({1, 1}, {2, 2, 2}) = 2 * 6 / 6 = 2
    # tie exactly (within sums 0); E({2,2,2}, {3,3,3}) = 2 ties as well. Brute
    # force (the naive reference) and the package must take them in (i, j) order.
    X = np.array([[0.0], [0.0], [1.0], [1.0], [2.0], [2.0], [2.0], [3.0], [3.0], [3.0]])
    params = dict(n_clusters=2, merge_percent=merge_percent, lam=0.0, regularizer=None)
    ref = naive_agglomerate(X, **params)
    model = EnergyAgglomerative(device="cpu", **params).fit(X)
    np.testing.assert_array_equal(model.children_, ref["children"])
    np.testing.assert_array_equal(model.distances_, ref["distances"])
    np.testing.assert_array_equal(model.labels_, ref["labels"])
    if merge_percent is None:  # {0,0,1,1} first, then {2,2,2} with {3,3,3}
        np.testing.assert_array_equal(model.labels_, [0, 0, 0, 0, 1, 1, 1, 1, 1, 1])


@pytest.mark.parametrize("merge_percent", [0.1, None])
def test_n_clusters_above_the_number_of_initial_clusters_is_rejected(merge_percent):
    X = _X(n=12, seed=6)
    init = np.repeat([4, 1, 9], 4)  # 3 initial clusters
    with pytest.raises(ValueError, match=r"n_clusters=4.*initial clusters \(3\)"):
        EnergyAgglomerative(n_clusters=4, merge_percent=merge_percent,
                            device="cpu").fit(X, init_labels=init)
    with pytest.raises(ValueError, match=r"n_clusters=5.*initial clusters \(3\)"):
        energy_linkage_tree(X, n_clusters=5, init_labels=init, device="cpu")
    # the limit itself is accepted and merges nothing
    model = EnergyAgglomerative(n_clusters=3, merge_percent=merge_percent,
                                device="cpu").fit(X, init_labels=init)
    np.testing.assert_array_equal(model.labels_, np.repeat([0, 1, 2], 4))
    assert model.n_steps_ == 0 and len(model.children_) == 0


@pytest.mark.parametrize("linkage", ["single", "average"])
@pytest.mark.parametrize("merge_percent", [0.1, None])
def test_weighted_is_rejected_outside_the_energy_linkage(linkage, merge_percent):
    with pytest.raises(ValueError, match=f"weighted=True.*linkage='{linkage}'"):
        EnergyAgglomerative(linkage=linkage, weighted=True, merge_percent=merge_percent,
                            device="cpu").fit(_X())
    preset = "buc" if linkage == "single" else "dbc"
    with pytest.raises(ValueError, match="weighted=True"):
        make_clusterer(preset, weighted=True, device="cpu").fit(_X())


@pytest.mark.parametrize("merge_percent", [0.1, None])
def test_a_step_that_merges_nothing_is_not_counted(merge_percent):
    X = _X(n=20, seed=7)
    # below the smallest criterion value (2 x the smallest distance, scipy)
    from scipy.spatial.distance import pdist

    thr = 2.0 * pdist(X).min() * 0.999
    model = EnergyAgglomerative(distance_threshold=thr, merge_percent=merge_percent,
                                device="cpu").fit(X)
    assert model.n_steps_ == 0
    assert all(len(v) == 0 for v in model.history_.values())
    assert len(model.children_) == 0 and model.n_clusters_ == 20
    np.testing.assert_array_equal(model.labels_, np.arange(20))
    assert model.cut_score_ is None
    # just above it: one step with one merge, in both modes
    model = EnergyAgglomerative(distance_threshold=2.0 * pdist(X).min() * 1.001,
                                merge_percent=merge_percent, device="cpu").fit(X)
    assert model.n_steps_ == 1 and model.history_["n_merges"] == [1]


@pytest.mark.parametrize("params", [{}, {"merge_percent": None}, {"n_clusters": 1},
                                    {"max_steps": 1}, {"distance_threshold": 10.0}])
def test_cut_score_is_none_when_no_silhouette_is_computed(params):
    X = np.array([[0.0, 0.0], [1.0, 0.0]])
    model = EnergyAgglomerative(device="cpu", **params).fit(X)
    assert model.cut_score_ is None
    # the whole hierarchy of two points: one merge, one cluster
    assert model.n_clusters_ == 1 and model.children_.tolist() == [[0, 1]]
    # a single initial cluster: nothing to merge, nothing to score
    model = EnergyAgglomerative(device="cpu").fit(_X(n=6), init_labels=np.zeros(6, int))
    assert model.cut_score_ is None and model.n_clusters_ == 1
    # with three points a cut is scored: a float equal to scikit-learn's silhouette
    from sklearn.metrics import silhouette_score

    X3 = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0]])
    model = EnergyAgglomerative(device="cpu").fit(X3)
    assert isinstance(model.cut_score_, float)
    assert model.cut_score_ == pytest.approx(silhouette_score(X3, model.labels_))


def test_automatic_cut_is_the_best_of_the_documented_grid_and_refinement():
    """The search the docstring describes, redone with scikit-learn's silhouette."""
    from sklearn.metrics import silhouette_score

    from sklearn_ecluster.cluster._tree import labels_at_cuts

    rng = np.random.default_rng(8)
    X = np.concatenate([rng.normal(c, 0.3, size=(15, 3)) for c in range(6)])
    model = EnergyAgglomerative(device="cpu").fit(X)
    n = len(X)

    def sil(k):
        labels = labels_at_cuts(model.children_, np.arange(n), n, [n - k])[n - k]
        return silhouette_score(X, labels)

    grid = np.unique(np.round(np.geomspace(2, n - 1, num=24)).astype(int))
    scores = {int(k): sil(k) for k in grid}
    best = max(scores, key=lambda k: (scores[k], k))
    pos = int(np.searchsorted(grid, best))
    lo, hi = grid[max(0, pos - 1)], grid[min(len(grid) - 1, pos + 1)]
    between = np.arange(lo, hi + 1)
    if between.size > 16:
        between = np.unique(np.round(np.linspace(lo, hi, 16)).astype(int))
    scores.update({int(k): sil(k) for k in between})
    best = max(scores, key=lambda k: (scores[k], k))
    assert model.n_clusters_ == best
    assert model.cut_score_ == pytest.approx(scores[best], rel=1e-6)


def test_float32_distance_precision_is_as_documented():
    """float32: Gram-expansion distances (as torch.cdist), error within the
    documented bound; float64 resolves near-duplicates (checked against scipy)."""
    from scipy.spatial.distance import pdist, squareform

    from sklearn_ecluster.utils import self_distances

    rng = np.random.default_rng(9)
    base = rng.normal(size=(50, 256))
    X = np.concatenate([base, base + rng.normal(scale=1e-5, size=base.shape)])
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ref = squareform(pdist(X))  # differences of coordinates, float64
    d64 = self_distances(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(d64, ref, rtol=1e-12, atol=1e-7)
    d32 = self_distances(torch.from_numpy(X.astype(np.float32))).double().numpy()
    err = np.abs(d32 - ref)
    far = ref > 0.1
    assert err[~far].max() < 2e-3  # near-duplicates: absolute error ~ sqrt(eps)
    assert (err[far] / ref[far]).max() < 1e-5  # elsewhere: relative ~ eps / d^2
    # float64: each point's near-duplicate twin is its nearest neighbour
    model = EnergyAgglomerative(n_clusters=50, lam=0.0, regularizer=None,
                                merge_percent=None, device="cpu").fit(X)
    np.testing.assert_array_equal(model.labels_[:50], model.labels_[50:])
    assert model.n_clusters_ == 50


def test_a_fit_that_cannot_fit_in_memory_stops_at_once_with_the_bytes_needed(monkeypatch):
    # pretend only 1 MiB is free: the 600 x 600 float64 pair matrix (2.7 MiB) cannot fit
    from sklearn_ecluster.utils import _memory

    monkeypatch.setattr(_memory, "available_memory", lambda device: 2**20)
    X = np.random.default_rng(0).normal(size=(600, 3))
    with pytest.raises(MemoryError, match=r"600 x 600 cluster pair matrix needs 2\.7 MiB"):
        EnergyAgglomerative(n_clusters=2, device="cpu").fit(X)
