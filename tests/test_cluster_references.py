"""Exact mode against independent implementations: R's ``energy``, scipy.

- weighted energy, no regulariser = ``energy::energy.hclust`` (R) = Ward's
  method on sqrt(d) (scipy; heights squared);
- single / average linkage, no regulariser = scipy's ``linkage`` on squared
  (or plain) Euclidean distances.

Merge orders are compared robustly: the sorted heights, every node of the tree
as a set of leaves with its height, and the partition after every number of
merges. The data are float64 draws without ties.
"""

import shutil
import subprocess
import time

import numpy as np
import pytest
from _naive_reference import (
    merge_sets,
    node_members,
    partitions_from_children,
    r_merge_to_children,
    relabel_first_occurrence,
    scipy_z_to_children,
)
from scipy.cluster.hierarchy import (
    cut_tree,
    dendrogram,
    fcluster,
    is_valid_linkage,
    linkage,
)
from scipy.spatial.distance import pdist
from sklearn.datasets import make_blobs
from sklearn.preprocessing import normalize

from sklearn_ecluster.cluster import (
    EnergyAgglomerative,
    energy_linkage_tree,
    make_clusterer,
)

R_CASES = [(seed, n, d) for seed, (n, d) in enumerate([(12, 1), (25, 2), (40, 5), (33, 3)])]


def _fit_full(X, **params):
    params.setdefault("lam", 0.0)
    params.setdefault("regularizer", None)
    return EnergyAgglomerative(n_clusters=1, merge_percent=None, device="cpu", **params).fit(X)


def _data(seed, n, d):
    return np.random.default_rng(seed).normal(size=(n, d))


def assert_same_tree(children_a, heights_a, children_b, heights_b, n_leaves, rtol=1e-9):
    """Same nodes with the same heights, and the same partition after every merge."""
    heights_a = np.asarray(heights_a, dtype=float)
    heights_b = np.asarray(heights_b, dtype=float)
    np.testing.assert_allclose(np.sort(heights_a), np.sort(heights_b), rtol=rtol, atol=1e-12)
    nodes_a = dict(zip(node_members(children_a, n_leaves), heights_a))
    nodes_b = dict(zip(node_members(children_b, n_leaves), heights_b))
    assert nodes_a.keys() == nodes_b.keys()
    for s, h in nodes_a.items():
        assert h == pytest.approx(nodes_b[s], rel=rtol, abs=1e-12)
    assert merge_sets(children_a, n_leaves) == merge_sets(children_b, n_leaves)


def assert_cuts_match_scipy(model, Z, X, ks=(2, 3, 5)):
    """Partitions after every merge (scipy's cut_tree), and n_clusters=k fits."""
    n = len(X)
    ours = partitions_from_children(model.children_, model.n_leaves_)
    theirs = cut_tree(Z)  # column t: after t merges
    for t in range(n):
        np.testing.assert_array_equal(ours[t], relabel_first_occurrence(theirs[:, t]))
    params = model.get_params()
    for k in ks:
        labels = EnergyAgglomerative(**{**params, "n_clusters": k}).fit(X).labels_
        expected = relabel_first_occurrence(fcluster(Z, k, criterion="maxclust"))
        np.testing.assert_array_equal(labels, expected)


# ----------------------------------------------------------------------------
# R's energy package


def _r_available():
    if shutil.which("Rscript") is None:
        return False
    try:
        res = subprocess.run(
            ["Rscript", "-e", "library(energy)"], capture_output=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return res.returncode == 0


R_SCRIPT = r"""
library(energy)
args <- commandArgs(trailingOnly = TRUE)
for (stem in args) {
  X <- as.matrix(read.csv(paste0(stem, "_X.csv"), header = FALSE))
  h <- energy.hclust(dist(X), alpha = 1)
  write.table(h$merge, paste0(stem, "_merge.csv"), sep = ",",
              row.names = FALSE, col.names = FALSE)
  write.table(format(h$height, digits = 17), paste0(stem, "_height.csv"),
              row.names = FALSE, col.names = FALSE, quote = FALSE)
}
"""


@pytest.fixture(scope="module")
def r_energy_hclust(tmp_path_factory):
    """energy.hclust of every R_CASES data set, from one Rscript run."""
    if not _r_available():
        pytest.skip("Rscript with the 'energy' package is not available")
    root = tmp_path_factory.mktemp("r_energy")
    script = root / "hclust.R"
    script.write_text(R_SCRIPT)
    stems = []
    for seed, n, d in R_CASES:
        stem = root / f"case{seed}"
        np.savetxt(f"{stem}_X.csv", _data(seed, n, d), delimiter=",", fmt="%.17g")
        stems.append(str(stem))
    subprocess.run(["Rscript", str(script), *stems], check=True, capture_output=True,
                   timeout=300)
    out = {}
    for (seed, _, _), stem in zip(R_CASES, stems):
        merge = np.loadtxt(f"{stem}_merge.csv", delimiter=",", dtype=np.int64, ndmin=2)
        height = np.loadtxt(f"{stem}_height.csv", dtype=np.float64, ndmin=1)
        out[seed] = (merge, height)
    return out


@pytest.mark.parametrize("seed, n, d", R_CASES)
def test_weighted_energy_equals_r_energy_hclust(r_energy_hclust, seed, n, d):
    X = _data(seed, n, d)
    merge, height = r_energy_hclust[seed]
    model = _fit_full(X, weighted=True)
    # R's hclust: merges in order of height, singletons -i, earlier steps +s
    assert_same_tree(model.children_, model.distances_, r_merge_to_children(merge),
                     height, n)
    # the same merge sequence, step by step
    ours = partitions_from_children(model.children_, n)
    theirs = partitions_from_children(r_merge_to_children(merge), n)
    for t in range(n):
        np.testing.assert_array_equal(ours[t], theirs[t])
    np.testing.assert_allclose(model.distances_, height, rtol=1e-9)


# ----------------------------------------------------------------------------
# scipy


@pytest.mark.parametrize("seed, n, d", [(0, 10, 1), (1, 30, 2), (2, 45, 4), (3, 60, 8)])
def test_weighted_energy_equals_scipy_ward_on_sqrt_distances(seed, n, d):
    X = _data(seed, n, d)
    model = _fit_full(X, weighted=True)
    Z = linkage(np.sqrt(pdist(X)), method="ward")
    assert_same_tree(model.children_, model.distances_, scipy_z_to_children(Z),
                     Z[:, 2] ** 2, n)
    assert_cuts_match_scipy(model, Z, X)


@pytest.mark.parametrize("linkage_method", ["single", "average"])
@pytest.mark.parametrize("metric", ["auto", "sqeuclidean", "euclidean"])
@pytest.mark.parametrize("seed, n, d", [(0, 10, 1), (1, 30, 3), (2, 50, 6)])
def test_single_and_average_equal_scipy(linkage_method, metric, seed, n, d):
    X = _data(seed, n, d)
    model = _fit_full(X, linkage=linkage_method, metric=metric)
    scipy_metric = "euclidean" if metric == "euclidean" else "sqeuclidean"
    Z = linkage(pdist(X, scipy_metric), method=linkage_method)
    # reducible linkages: the greedy order is scipy's, heights are monotone
    np.testing.assert_allclose(model.distances_, Z[:, 2], rtol=1e-9, atol=1e-12)
    assert_same_tree(model.children_, model.distances_, scipy_z_to_children(Z), Z[:, 2], n)
    assert_cuts_match_scipy(model, Z, X)
    ours = model.get_linkage_matrix()
    assert is_valid_linkage(ours)
    np.testing.assert_array_equal(np.sort(ours[:, :2], axis=1), np.sort(Z[:, :2], axis=1))
    np.testing.assert_allclose(ours[:, 2:], Z[:, 2:], rtol=1e-9, atol=1e-12)


def test_functional_core_equals_scipy_average():
    X = _data(4, 25, 3)
    tree = energy_linkage_tree(X, n_clusters=1, merge_percent=None, linkage="average",
                               lam=0.0, regularizer=None, device="cpu")
    Z = linkage(pdist(X, "sqeuclidean"), method="average")
    np.testing.assert_allclose(tree.distances, Z[:, 2], rtol=1e-9)
    assert merge_sets(tree.children, 25) == merge_sets(scipy_z_to_children(Z), 25)


def test_presets_without_regulariser_equal_scipy():
    X = _data(5, 35, 3)
    buc = make_clusterer("buc_noreg", n_clusters=1, merge_percent=None, device="cpu").fit(X)
    Z = linkage(pdist(X, "sqeuclidean"), method="single")
    np.testing.assert_allclose(buc.distances_, Z[:, 2], rtol=1e-9)
    assert merge_sets(buc.children_, 35) == merge_sets(scipy_z_to_children(Z), 35)
    ecl = make_clusterer("ecluster_noreg", weighted=True, n_clusters=1, merge_percent=None,
                         device="cpu").fit(X)
    Z = linkage(np.sqrt(pdist(X)), method="ward")
    assert_same_tree(ecl.children_, ecl.distances_, scipy_z_to_children(Z), Z[:, 2] ** 2, 35)


@pytest.mark.parametrize(
    "params",
    [
        {},  # the paper's criterion: heights need not be monotone
        {"weighted": True, "lam": 0.0, "regularizer": None},
        {"linkage": "single", "regularizer": "size", "lam": 0.005},
        {"merge_percent": 0.1},  # a batched full tree
        {"merge_percent": 0.2, "merge_schedule": "geometric", "weighted": True},
    ],
)
def test_linkage_matrix_is_valid_for_scipy(params):
    X = _data(6, 30, 3)
    params = {"merge_percent": None, **params}
    model = EnergyAgglomerative(device="cpu", **params).fit(X)  # full tree, auto cut
    Z = model.get_linkage_matrix()
    assert Z.shape == (29, 4)
    assert is_valid_linkage(Z)
    # column 3: leaf counts, from the node sets
    sizes = [len(s) for s in node_members(model.children_, 30)]
    np.testing.assert_array_equal(Z[:, 3], sizes)
    np.testing.assert_array_equal(Z[:, 2], model.distances_)
    dn = dendrogram(Z, no_plot=True)
    assert sorted(dn["leaves"]) == list(range(30))


def test_linkage_matrix_with_initial_clusters_counts_leaves():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(20, 2))
    init = rng.integers(0, 8, size=20)
    model = EnergyAgglomerative(merge_percent=None, n_clusters=1, device="cpu")
    model.fit(X, init_labels=init)
    k0 = len(np.unique(init))
    Z = model.get_linkage_matrix()
    assert Z.shape == (k0 - 1, 4)
    assert is_valid_linkage(Z)
    assert Z[-1, 3] == k0


@pytest.mark.slow
def test_exact_mode_at_n_2000_equals_scipy_ward():
    """The scale check: N = 2,000, d = 32, L2-normalised blobs (seconds, not minutes)."""
    X, _ = make_blobs(n_samples=2000, n_features=32, centers=25, cluster_std=2.0,
                      random_state=0)
    X = normalize(X)
    t0 = time.perf_counter()
    model = _fit_full(X, weighted=True)
    seconds = time.perf_counter() - t0
    print(f"exact mode, N=2000, d=32: {seconds:.2f} s")
    Z = linkage(np.sqrt(pdist(X)), method="ward")
    assert_same_tree(model.children_, model.distances_, scipy_z_to_children(Z),
                     Z[:, 2] ** 2, 2000, rtol=1e-7)
    for k in (25, 100):
        labels = EnergyAgglomerative(n_clusters=k, merge_percent=None, weighted=True,
                                     lam=0.0, regularizer=None, device="cpu").fit(X).labels_
        expected = relabel_first_occurrence(fcluster(Z, k, criterion="maxclust"))
        np.testing.assert_array_equal(labels, expected)
