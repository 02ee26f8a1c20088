"""The criterion value the package computes, against brute force and ``dcor``.

A fit with two initial clusters A and B (``init_labels``) and ``n_clusters=1``
performs exactly one merge, whose recorded height ``distances_[0]`` is the
criterion D(A, B) of SPEC 2-4. It is checked against explicit double loops over
the points (``tests/_naive_reference.py``) and against ``dcor.energy_distance``.
"""

import numpy as np
import pytest
from _naive_reference import energy_distance_brute, euclidean_brute, ssd_brute
from scipy.spatial.distance import pdist

from sklearn_ecluster.cluster import EnergyAgglomerative, energy_linkage_tree

MODES = [None, 0.5]  # exact mode and one batched step
SHAPES = [(1, 1, 1), (1, 4, 2), (3, 3, 1), (5, 8, 3), (7, 2, 6), (12, 9, 4)]


def _two_groups(rng, n, m, d, shift=1.0):
    A = rng.normal(size=(n, d))
    B = rng.normal(size=(m, d)) + shift
    return A, B


def _merge_height(A, B, rng=None, **params):
    """distances_[0] of a fit starting from the two clusters A and B."""
    X = np.vstack([A, B])
    init = np.r_[np.full(len(A), 5), np.full(len(B), -2)]
    if rng is not None:  # interleave the rows: init_labels need not be sorted
        perm = rng.permutation(len(X))
        X, init = X[perm], init[perm]
    params.setdefault("merge_percent", None)
    model = EnergyAgglomerative(n_clusters=1, device="cpu", **params)
    model.fit(X, init_labels=init)
    assert model.n_leaves_ == 2
    assert model.children_.tolist() == [[0, 1]]
    assert model.distances_.shape == (1,)
    return float(model.distances_[0])


def _intra_brute(C):
    """DBC's intra(C): mean squared distance over all ordered pairs (self incl.)."""
    return float(np.mean([[euclidean_brute(a, b) ** 2 for b in C] for a in C]))


@pytest.mark.parametrize("merge_percent", MODES)
@pytest.mark.parametrize("n, m, d", SHAPES)
def test_energy_distance_matches_double_loop_and_dcor(n, m, d, merge_percent):
    dcor = pytest.importorskip("dcor")
    rng = np.random.default_rng(100 * n + 10 * m + d)
    A, B = _two_groups(rng, n, m, d)
    got = _merge_height(A, B, rng, merge_percent=merge_percent, lam=0.0, regularizer=None)
    brute = energy_distance_brute(A, B)
    ref = float(dcor.energy_distance(A, B))  # V-statistics, exponent 1
    assert brute == pytest.approx(ref, rel=1e-12)
    assert got == pytest.approx(brute, rel=1e-10, abs=1e-12)


def test_energy_distance_lam_zero_equals_no_regulariser():
    rng = np.random.default_rng(0)
    A, B = _two_groups(rng, 6, 4, 3)
    got = _merge_height(A, B, lam=0.0, regularizer="ssd")
    assert got == pytest.approx(energy_distance_brute(A, B), rel=1e-10)


def test_energy_distance_of_singletons_is_twice_the_distance():
    rng = np.random.default_rng(1)
    for d in (1, 2, 7):
        a, b = rng.normal(size=(2, d))
        model = EnergyAgglomerative(
            n_clusters=1, merge_percent=None, lam=0.0, regularizer=None, device="cpu"
        ).fit(np.vstack([a, b]))
        assert model.distances_[0] == pytest.approx(2 * euclidean_brute(a, b), rel=1e-12)
    # with the paper's regulariser too: two singletons have SSD 0
    X = rng.normal(size=(15, 3))
    for mp in (None, 0.01):
        model = EnergyAgglomerative(n_clusters=14, merge_percent=mp, device="cpu").fit(X)
        assert model.distances_[0] == pytest.approx(2 * pdist(X).min(), rel=1e-10)


def test_energy_distance_is_zero_for_identical_samples_and_positive_otherwise():
    rng = np.random.default_rng(2)
    # small integer coordinates: every sample distance is computed exactly
    A = rng.integers(-3, 4, size=(6, 3)).astype(float)
    B = A[rng.permutation(6)]  # the same set of points
    assert _merge_height(A, B, lam=0.0, regularizer=None) == pytest.approx(0.0, abs=1e-12)
    # arbitrary floats: distances from the Gram expansion put duplicates about
    # sqrt(eps) apart, so E is zero only to that precision
    A = rng.normal(size=(6, 3))
    B = A[rng.permutation(6)]
    assert _merge_height(A, B, lam=0.0, regularizer=None) == pytest.approx(0.0, abs=1e-7)
    for seed in range(5):
        A, B = _two_groups(np.random.default_rng(seed), 4, 5, 2, shift=0.0)
        assert _merge_height(A, B, lam=0.0, regularizer=None) > 0.0


def _regulariser_brute(A, B, regularizer):
    if regularizer == "ssd":
        return ssd_brute(A) + ssd_brute(B)
    if regularizer == "ssd_merged":
        return ssd_brute(np.vstack([A, B]))
    if regularizer == "size":
        return float(len(A) + len(B))
    if regularizer == "dispersion":
        return _intra_brute(A) + _intra_brute(B)
    raise ValueError(regularizer)


@pytest.mark.parametrize("merge_percent", MODES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("regularizer", ["ssd", "ssd_merged", "size", "dispersion"])
def test_regularised_energy_criterion(regularizer, weighted, merge_percent):
    rng = np.random.default_rng(7)
    lam = 0.7
    for n, m, d in [(1, 3, 2), (4, 6, 3), (9, 5, 1)]:
        A, B = _two_groups(rng, n, m, d)
        got = _merge_height(
            A, B, rng, merge_percent=merge_percent, lam=lam,
            regularizer=regularizer, weighted=weighted,
        )
        e = energy_distance_brute(A, B)
        if weighted:
            e *= n * m / (n + m)
        expected = e + lam * _regulariser_brute(A, B, regularizer)
        assert got == pytest.approx(expected, rel=1e-10)


def test_weighted_energy_without_regulariser():
    rng = np.random.default_rng(8)
    A, B = _two_groups(rng, 7, 3, 4)
    got = _merge_height(A, B, lam=0.0, regularizer=None, weighted=True)
    assert got == pytest.approx(7 * 3 / 10 * energy_distance_brute(A, B), rel=1e-10)


def test_ssd_regulariser_on_unit_vectors():
    """SPEC 3: for unit vectors SSD(C) = |C| (1 - ||mu_C||^2)."""
    rng = np.random.default_rng(9)
    A, B = _two_groups(rng, 8, 5, 6, shift=0.5)
    A /= np.linalg.norm(A, axis=1, keepdims=True)
    B /= np.linalg.norm(B, axis=1, keepdims=True)
    lam = 0.9
    got = _merge_height(A, B, lam=lam, regularizer="ssd")
    reg = sum(len(C) * (1 - np.sum(C.mean(axis=0) ** 2)) for C in (A, B))
    assert got - energy_distance_brute(A, B) == pytest.approx(lam * reg, rel=1e-9)


@pytest.mark.parametrize("merge_percent", MODES)
@pytest.mark.parametrize("metric", ["auto", "sqeuclidean", "euclidean"])
@pytest.mark.parametrize("linkage", ["average", "single"])
def test_average_and_single_linkage_heights(linkage, metric, merge_percent):
    rng = np.random.default_rng(11)
    power = 1 if metric == "euclidean" else 2  # "auto": squared for these linkages
    for n, m, d in [(1, 1, 3), (3, 5, 2), (6, 4, 5)]:
        A, B = _two_groups(rng, n, m, d)
        cross = [euclidean_brute(a, b) ** power for a in A for b in B]
        base = np.mean(cross) if linkage == "average" else np.min(cross)
        got = _merge_height(A, B, rng, merge_percent=merge_percent, linkage=linkage,
                            metric=metric, lam=0.0, regularizer=None)
        assert got == pytest.approx(base, rel=1e-10)
        # the baselines' regularisers on top
        lam = 0.3
        for reg in ("size", "dispersion", "ssd"):
            got = _merge_height(A, B, merge_percent=merge_percent, linkage=linkage,
                                metric=metric, lam=lam, regularizer=reg)
            expected = base + lam * _regulariser_brute(A, B, reg)
            assert got == pytest.approx(expected, rel=1e-10)


def test_functional_core_gives_the_energy_distance():
    rng = np.random.default_rng(12)
    A, B = _two_groups(rng, 5, 6, 3)
    X = np.vstack([A, B])
    tree = energy_linkage_tree(
        X, n_clusters=1, merge_percent=None, lam=0.0, regularizer=None,
        init_labels=np.r_[np.zeros(5, int), np.ones(6, int)], device="cpu",
    )
    assert tree.n_leaves == 2
    assert tree.distances[0] == pytest.approx(energy_distance_brute(A, B), rel=1e-10)


def test_float32_input_gives_the_energy_distance_to_float32_precision():
    rng = np.random.default_rng(13)
    A, B = _two_groups(rng, 9, 7, 5)
    A32, B32 = A.astype(np.float32), B.astype(np.float32)
    got = _merge_height(A32, B32, lam=0.0, regularizer=None)
    ref = energy_distance_brute(A32.astype(np.float64), B32.astype(np.float64))
    assert got == pytest.approx(ref, rel=1e-4)
