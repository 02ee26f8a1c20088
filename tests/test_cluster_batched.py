"""The batched schedule (SPEC 6) against a naive NumPy reference, and behaviour.

``tests/_naive_reference.py`` recomputes every cluster distance from the member
points at the start of every step and walks all pairs sorted by (D, i, j) with a
union-find. The package must give identical labels and merge sequences, for
every linkage / regulariser / weighting, both schedules, ``init_labels``,
``distance_threshold`` and ``max_steps``. Data are float64 random draws, so
the criterion has no ties.
"""

import numpy as np
import pytest
import torch
from _naive_reference import (
    naive_agglomerate,
    pair_criterion,
    partitions_from_children,
    sample_distances,
)
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.preprocessing import normalize

from sklearn_ecluster.cluster import EnergyAgglomerative, make_clusterer

REGULARIZERS = ["ssd", "ssd_merged", "size", "dispersion", None]
CONFIGS = [("energy", reg, w) for reg in REGULARIZERS for w in (False, True)] + [
    (lk, reg, False) for lk in ("single", "average") for reg in REGULARIZERS
]
CONFIG_IDS = [f"{lk}-{reg}-{'weighted' if w else 'plain'}" for lk, reg, w in CONFIGS]


def _criterion(config, lam):
    linkage, regularizer, weighted = config
    return {"linkage": linkage, "regularizer": regularizer, "weighted": weighted, "lam": lam}


def _random_case(seed, n_range=(5, 41), d_range=(1, 6)):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(*n_range))
    d = int(rng.integers(*d_range))
    return rng, rng.normal(size=(n, d))


def assert_matches_reference(X, params, init_labels=None, *, vectorized=False,
                             working_memory=None, check_history=True, rtol=1e-9):
    ref = naive_agglomerate(X, init_labels=init_labels, vectorized=vectorized, **params)
    model = EnergyAgglomerative(device="cpu", working_memory=working_memory, **params)
    model.fit(X, init_labels=init_labels)
    np.testing.assert_array_equal(model.children_, ref["children"])
    np.testing.assert_allclose(model.distances_, ref["distances"], rtol=rtol, atol=1e-12)
    np.testing.assert_array_equal(model.labels_, ref["labels"])
    assert model.n_leaves_ == ref["n_leaves"]
    assert model.n_clusters_ == int(ref["labels"].max()) + 1
    if check_history:
        assert model.n_steps_ == ref["n_steps"]
        assert model.history_["n_clusters"] == ref["history_n_clusters"]
        assert model.history_["n_merges"] == ref["history_n_merges"]
    return model, ref


@pytest.mark.parametrize("schedule", ["constant", "geometric"])
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_batched_matches_naive_reference(config, schedule):
    for seed in range(25):
        rng, X = _random_case(seed)
        n = len(X)
        params = dict(
            n_clusters=int(rng.integers(1, max(2, n // 2))),
            merge_percent=float(rng.uniform(0.02, 0.5)),
            merge_schedule=schedule,
            **_criterion(config, float(rng.uniform(0.05, 1.5))),
        )
        assert_matches_reference(X, params)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_exact_mode_matches_naive_reference(config):
    for seed in range(6):
        rng, X = _random_case(100 + seed, n_range=(4, 18))
        params = dict(n_clusters=int(rng.integers(1, len(X))), merge_percent=None,
                      **_criterion(config, float(rng.uniform(0.05, 1.5))))
        assert_matches_reference(X, params)


@pytest.mark.parametrize("linkage", ["single", "average"])
def test_plain_euclidean_metric_matches_naive_reference(linkage):
    for seed in range(10):
        rng, X = _random_case(200 + seed)
        reg = REGULARIZERS[seed % len(REGULARIZERS)]
        params = dict(n_clusters=1, merge_percent=float(rng.uniform(0.05, 0.4)),
                      linkage=linkage, metric="euclidean", regularizer=reg, lam=0.4)
        assert_matches_reference(X, params)


@pytest.mark.parametrize("merge_percent", [0.15, None])
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_init_labels_match_naive_reference(config, merge_percent):
    for seed in range(4):
        rng, X = _random_case(300 + seed, n_range=(8, 30))
        n = len(X)
        init = rng.integers(0, n // 2, size=n) * 3 - 7  # any integers, unsorted
        params = dict(n_clusters=int(rng.integers(1, 4)), merge_percent=merge_percent,
                      **_criterion(config, 0.8))
        assert_matches_reference(X, params, init_labels=init)


def _threshold_between(distances):
    """A threshold halfway between two consecutive distinct merge heights."""
    d = np.unique(distances)
    mid = len(d) // 2
    return float((d[mid - 1] + d[mid]) / 2)


@pytest.mark.parametrize("merge_percent", [0.2, None])
@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_distance_threshold_matches_naive_reference(config, merge_percent):
    for seed in range(4):
        rng, X = _random_case(400 + seed, n_range=(8, 25))
        crit = _criterion(config, float(rng.uniform(0.05, 1.5)))
        full = naive_agglomerate(X, n_clusters=1, merge_percent=merge_percent, **crit)
        thr = _threshold_between(full["distances"])
        params = dict(merge_percent=merge_percent, distance_threshold=thr, **crit)
        # a final step that merges nothing is not a step (in both modes)
        model, ref = assert_matches_reference(X, params)
        assert np.all(model.distances_ < thr)
        assert 0 not in model.history_["n_merges"]


@pytest.mark.parametrize("merge_percent", [0.1, None])
@pytest.mark.parametrize("config", CONFIGS[::3], ids=CONFIG_IDS[::3])
def test_max_steps_matches_naive_reference(config, merge_percent):
    for seed in range(4):
        rng, X = _random_case(500 + seed, n_range=(10, 30))
        params = dict(merge_percent=merge_percent, max_steps=int(rng.integers(1, 5)),
                      **_criterion(config, 0.6))
        model, _ = assert_matches_reference(X, params)
        assert model.n_steps_ == params["max_steps"]
        assert model.cut_score_ is None


def test_naive_reference_loop_and_matrix_forms_agree():
    """The two formulations of the reference (pairwise loop, matrix algebra)."""
    for i, config in enumerate(CONFIGS):
        rng, X = _random_case(600 + i, n_range=(10, 25))
        params = dict(n_clusters=1, merge_percent=0.15, **_criterion(config, 0.7))
        a = naive_agglomerate(X, **params)
        b = naive_agglomerate(X, vectorized=True, **params)
        np.testing.assert_array_equal(a["children"], b["children"])
        np.testing.assert_allclose(a["distances"], b["distances"], rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(
    "config, schedule, merge_percent, working_memory",
    [
        (("energy", "ssd", False), "constant", 0.01, 0.01),
        (("energy", None, True), "geometric", 0.03, None),
        (("energy", "ssd_merged", False), "constant", 0.1, 0.01),
        (("single", "size", False), "constant", 0.02, 0.01),
        (("average", "dispersion", False), "geometric", 0.05, 0.01),
        (("energy", None, False), "constant", 0.3, None),
    ],
)
def test_batched_matches_reference_at_a_few_hundred_samples(
    config, schedule, merge_percent, working_memory
):
    """Larger N: the candidate lists, compaction and tiny memory blocks."""
    rng = np.random.default_rng(700)
    X = normalize(rng.normal(size=(260, 4)))
    params = dict(n_clusters=6, merge_percent=merge_percent, merge_schedule=schedule,
                  **_criterion(config, 0.9))
    init = rng.integers(0, 200, size=260) if config[0] == "single" else None
    assert_matches_reference(X, params, init_labels=init, vectorized=True,
                             working_memory=working_memory)


# ----------------------------------------------------------------------------
# dtypes, tensors, memory blocks, devices


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=300, n_features=16, centers=5, cluster_std=1.0,
                      random_state=3)
    return normalize(X), y


CLEAR_CONFIGS = [
    {"n_clusters": 5},
    {"n_clusters": 5, "weighted": True, "merge_schedule": "geometric"},
    {"n_clusters": 5, "merge_percent": None, "weighted": True, "regularizer": None},
    {"n_clusters": 5, "merge_percent": None},
    {"n_clusters": 5, "linkage": "single", "regularizer": "size", "lam": 0.005},
    {"n_clusters": 5, "linkage": "average", "regularizer": "dispersion", "lam": 0.1},
    {},  # automatic cut
]


@pytest.mark.parametrize("params", CLEAR_CONFIGS)
def test_dtype_tensor_and_memory_blocks_give_the_same_labels(blobs, params):
    X, y = blobs
    ref = EnergyAgglomerative(device="cpu", **params).fit(X)
    assert adjusted_rand_score(y, ref.labels_) > 0.9  # the structure is clear
    variants = {
        "float32": (X.astype(np.float32), {}),
        "tensor64": (torch.from_numpy(X.copy()), {}),
        "tensor32": (torch.from_numpy(X.astype(np.float32)), {}),
        "tiny blocks": (X, {"working_memory": 0.01}),
        "device auto": (torch.from_numpy(X.copy()), {"device": "auto"}),
    }
    for name, (Xv, extra) in variants.items():
        model = EnergyAgglomerative(**{"device": "cpu", **params, **extra}).fit(Xv)
        assert isinstance(model.labels_, np.ndarray), name
        assert model.labels_.dtype == np.int64, name
        np.testing.assert_array_equal(model.labels_, ref.labels_, err_msg=name)
    # tiny blocks change nothing at all in float64
    tiny = EnergyAgglomerative(device="cpu", working_memory=0.01, **params).fit(X)
    np.testing.assert_array_equal(tiny.children_, ref.children_)
    np.testing.assert_allclose(tiny.distances_, ref.distances_, rtol=1e-10)


@pytest.mark.gpu
@pytest.mark.parametrize("params", CLEAR_CONFIGS)
def test_cuda_tensor_gives_the_cpu_labels(blobs, params):
    X, _ = blobs
    cpu = EnergyAgglomerative(device="cpu", **params).fit(X)
    Xc = torch.from_numpy(X.copy()).cuda()
    model = EnergyAgglomerative(device="auto", **params).fit(Xc)
    assert model.device_.type == "cuda"
    assert isinstance(model.labels_, np.ndarray)
    np.testing.assert_array_equal(model.labels_, cpu.labels_)
    numpy_on_cuda = EnergyAgglomerative(device="cuda", **params).fit(X)
    np.testing.assert_array_equal(numpy_on_cuda.labels_, cpu.labels_)


# ----------------------------------------------------------------------------
# behaviour


@pytest.mark.parametrize("params", [
    {"merge_percent": 0.05},
    {"merge_percent": 0.1, "merge_schedule": "geometric", "weighted": True},
    {"merge_percent": None},
    {"merge_percent": 0.02, "linkage": "single", "regularizer": "size"},
])
def test_history_is_consistent(params):
    X = normalize(np.random.default_rng(8).normal(size=(120, 5)))
    model = EnergyAgglomerative(n_clusters=4, device="cpu", **params).fit(X)
    h = model.history_
    assert set(h) >= {"n_clusters", "n_merges", "max_distance", "seconds"}
    assert all(len(v) == model.n_steps_ for v in h.values())
    assert sum(h["n_merges"]) == len(model.children_) == len(model.distances_)
    assert np.all(np.diff([120, *h["n_clusters"]]) == -np.asarray(h["n_merges"]))
    assert h["n_clusters"][-1] == model.n_clusters_ == 4
    assert all(m >= 1 for m in h["n_merges"])
    bounds = np.cumsum([0, *h["n_merges"]])
    for s in range(model.n_steps_):
        step = model.distances_[bounds[s]:bounds[s + 1]]
        assert h["max_distance"][s] == pytest.approx(step.max())
        assert np.all(np.diff(step) >= 0)  # within a step: ascending D
    if params["merge_percent"] and "merge_schedule" not in params:
        m = max(1, int(params["merge_percent"] * 120))
        assert all(k == m for k in h["n_merges"][:-1])  # constant schedule


def test_max_steps_stops_after_that_many_steps():
    X = np.random.default_rng(9).normal(size=(60, 3))
    for steps in (1, 3, 7):
        model = EnergyAgglomerative(max_steps=steps, merge_percent=0.05, device="cpu").fit(X)
        assert model.n_steps_ == steps
        assert len(model.children_) == 3 * steps  # int(0.05 * 60) merges per step
        assert model.n_clusters_ == 60 - 3 * steps
        exact = EnergyAgglomerative(max_steps=steps, merge_percent=None, device="cpu").fit(X)
        assert len(exact.children_) == steps


@pytest.mark.parametrize("merge_percent", [0.1, None])
def test_distance_threshold_stops_below_it(merge_percent):
    """No merge at or above the threshold; in the exact mode every pair left is above."""
    X = np.random.default_rng(10).normal(size=(40, 2))
    thr = 1.5
    model = EnergyAgglomerative(distance_threshold=thr, merge_percent=merge_percent,
                                device="cpu").fit(X)
    assert len(model.children_) > 0
    assert np.all(model.distances_ < thr)
    assert model.cut_score_ is None
    if merge_percent is None:
        Dm = sample_distances(X, "euclidean")
        Dsq = sample_distances(X, "sqeuclidean")
        clusters = [np.flatnonzero(model.labels_ == c) for c in range(model.n_clusters_)]
        left = [
            pair_criterion(X, Dm, Dsq, clusters[i], clusters[j], linkage="energy",
                           regularizer="ssd", lam=0.9, weighted=False)
            for i in range(len(clusters)) for j in range(i + 1, len(clusters))
        ]
        assert min(left) >= thr


@pytest.mark.parametrize("params", [
    {},
    {"weighted": True, "merge_schedule": "geometric"},
    {"merge_percent": None, "weighted": True, "regularizer": None},
    {"linkage": "average", "regularizer": "dispersion", "lam": 0.1},
    {"linkage": "average", "regularizer": None, "lam": 0.0, "merge_percent": None},
])
def test_automatic_cut_recovers_blobs_and_reports_the_silhouette(params):
    X, y = make_blobs(n_samples=150, n_features=8, centers=5, cluster_std=0.6,
                      random_state=4)
    X = normalize(X)
    model = EnergyAgglomerative(device="cpu", **params).fit(X)
    assert adjusted_rand_score(y, model.labels_) > 0.9
    # an exact reducible hierarchy is cut itself; any other is replaced by the
    # standalone energy hierarchy (documented under n_clusters)
    own = params.get("merge_percent", 0.05) is None
    assert model.criterion_["linkage"] == (params.get("linkage", "energy") if own
                                           else "energy")
    metric = "euclidean" if model.criterion_["linkage"] == "energy" else "sqeuclidean"
    assert model.metric_ == metric
    assert model.cut_score_ == pytest.approx(
        silhouette_score(X, model.labels_, metric=metric), rel=1e-6
    )
    # the best cut of the whole merge sequence, scored independently
    best = max(
        silhouette_score(X, p, metric=metric)
        for p in partitions_from_children(model.children_, model.n_leaves_)
        if 2 <= p.max() + 1 <= len(X) - 1
    )
    assert model.cut_score_ == pytest.approx(best, rel=1e-6)


@pytest.mark.parametrize("merge_percent", [0.1, None])
def test_init_labels_are_the_leaves_and_are_never_split(merge_percent):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(80, 3))
    init = rng.integers(0, 30, size=80) * 10
    k0 = len(np.unique(init))
    for n_clusters in (None, 1, 5, k0):
        model = EnergyAgglomerative(n_clusters=n_clusters, merge_percent=merge_percent,
                                    device="cpu").fit(X, init_labels=init)
        assert model.n_leaves_ == k0
        assert model.children_.size == 0 or model.children_.max() < 2 * k0 - 1
        for g in np.unique(init):
            assert len(np.unique(model.labels_[init == g])) == 1
        # labels numbered by each cluster's smallest sample index
        firsts = [np.flatnonzero(model.labels_ == c)[0] for c in range(model.n_clusters_)]
        assert firsts == sorted(firsts)
    assert model.n_clusters_ == k0 and model.children_.shape == (0, 2)


def test_labels_are_numbered_by_smallest_sample_index():
    X = np.random.default_rng(12).normal(size=(50, 2))
    for params in ({"merge_percent": 0.1}, {"merge_percent": None}):
        labels = EnergyAgglomerative(n_clusters=7, device="cpu", **params).fit(X).labels_
        firsts = [np.flatnonzero(labels == c)[0] for c in range(7)]
        assert firsts == sorted(firsts) and firsts[0] == 0


@pytest.mark.parametrize("method", ["ecluster", "ecluster_noreg", "buc", "buc_noreg", "dbc"])
def test_presets_match_naive_reference(method):
    """make_clusterer presets run the paper's configurations (SPEC 4)."""
    expected = {
        "ecluster": ("energy", "ssd", 0.9),
        "ecluster_noreg": ("energy", None, 0.0),
        "buc": ("single", "size", 0.005),
        "buc_noreg": ("single", None, 0.0),
        "dbc": ("average", "dispersion", 0.1),
    }[method]
    model = make_clusterer(method, n_clusters=3, merge_percent=0.1, device="cpu")
    linkage, reg, lam = expected
    assert (model.linkage, model.regularizer, model.lam) == (linkage, reg, lam)
    assert model.metric in (("auto", "euclidean") if linkage == "energy"
                            else ("auto", "sqeuclidean"))
    X = normalize(np.random.default_rng(13).normal(size=(35, 4)))
    ref = naive_agglomerate(X, n_clusters=3, merge_percent=0.1, linkage=linkage,
                            regularizer=reg, lam=lam)
    model.fit(X)
    np.testing.assert_array_equal(model.labels_, ref["labels"])
    np.testing.assert_array_equal(model.children_, ref["children"])


@pytest.mark.parametrize("config", [("single", None, False), ("energy", "ssd", False),
                                    ("average", "size", False)])
def test_step_that_walks_past_many_pairs_inside_joined_groups(config):
    """Tight clumps: one step meets thousands of pairs already joined (cycles)."""
    rng = np.random.default_rng(14)
    centers = rng.normal(scale=10.0, size=(3, 3))
    X = np.vstack([c + rng.normal(scale=0.01, size=(40, 3)) for c in centers])
    X = X[rng.permutation(len(X))]
    params = dict(n_clusters=1, merge_percent=0.99, **_criterion(config, 0.2))
    # distances within a clump are 1e-3 of the norms: the Gram expansion
    # ||a||^2 + ||b||^2 - 2 a.b loses about 8 digits there
    model, _ = assert_matches_reference(X, params, vectorized=True, rtol=1e-6)
    assert model.history_["n_merges"][0] == 118  # past the 3 x 780 pairs inside clumps
