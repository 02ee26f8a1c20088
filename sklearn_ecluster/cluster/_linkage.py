"""Functional core: :func:`energy_linkage_tree`.

Orchestrates the pieces: the pair matrix (:mod:`._pair_matrix`), the
criterion (:mod:`._criterion`), the batched step (:mod:`._merge_step`) or the
exact mode (:mod:`._exact`), and the automatic cut (:mod:`._cut`).
"""

import logging
import time
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
import torch
from sklearn import get_config

from ..utils import get_device, to_tensor
from ..utils._sklearn import Interval, StrOptions, validate_params
from ._criterion import (
    LINKAGES,
    REGULARIZERS,
    ClusterStats,
    merged_moments,
    needs_moments,
)
from ._cut import choose_cut
from ._exact import ExactMerger
from ._merge_step import CandidateCache, batched_step
from ._pair_matrix import PairMatrix
from ._tree import labels_at_cuts, relabel_by_first_occurrence

logger = logging.getLogger("sklearn_ecluster")

PARAMETER_CONSTRAINTS = {
    "n_clusters": [Interval(Integral, 1, None, closed="left"), None],
    "merge_percent": [Interval(Real, 0, 1, closed="neither"), None],
    "lam": [Interval(Real, 0, None, closed="left")],
    "linkage": [StrOptions(set(LINKAGES))],
    "regularizer": [StrOptions(set(REGULARIZERS)), None],
    "metric": [StrOptions({"auto", "euclidean", "sqeuclidean"})],
    "weighted": ["boolean"],
    "merge_schedule": [StrOptions({"constant", "geometric"})],
    "distance_threshold": [Interval(Real, None, None, closed="neither"), None],
    "max_steps": [Interval(Integral, 1, None, closed="left"), None],
    "device": [str, torch.device],
    "working_memory": [Interval(Real, 0, None, closed="neither"), None],
    "verbose": ["verbose"],
}


@dataclass
class LinkageTree:
    """Result of :func:`energy_linkage_tree`.

    Attributes
    ----------
    labels : ndarray (n_samples,)
        Cluster of each sample, 0..K-1 in order of first occurrence.
    children : ndarray (n_merges, 2)
        Merges in scikit-learn's ``children_`` format (leaf ids < ``n_leaves``,
        node ``n_leaves + t`` created by merge t).
    distances : ndarray (n_merges,)
        Criterion value of each merge (batched mode: as computed at the start
        of its step).
    n_leaves : int
        Number of leaves: samples, or initial clusters with ``init_labels``.
    leaf_labels : ndarray (n_samples,)
        Leaf of each sample.
    n_steps : int
        Steps that merged at least one pair.
    history : dict of lists
        Per step: ``n_clusters`` after it, ``n_merges``, ``max_distance``,
        ``seconds``.
    metric : str
        The sample metric used.
    cut_score : float or None
        Silhouette of the automatically chosen cut; None when no cut was
        scored (not automatic, or no cut with 2 <= K <= n_samples - 1, e.g.
        two samples).
    """

    labels: np.ndarray
    children: np.ndarray
    distances: np.ndarray
    n_leaves: int
    leaf_labels: np.ndarray
    n_steps: int
    history: dict = field(default_factory=dict)
    metric: str = "euclidean"
    cut_score: float | None = None


def resolve_metric(metric, linkage):
    """``"auto"`` -> Euclidean for energy, squared Euclidean for single/average."""
    if metric == "auto":
        return "euclidean" if linkage == "energy" else "sqeuclidean"
    if linkage == "energy" and metric == "sqeuclidean":
        raise ValueError(
            "metric='sqeuclidean' cannot be used with linkage='energy': with squared "
            "distances the energy distance collapses to 2 ||mu_A - mu_B||^2, a plain "
            "centroid distance (SPEC 2). Use metric='euclidean' (or 'auto')."
        )
    return metric


def _validate_init_labels(init_labels, n_samples):
    if isinstance(init_labels, torch.Tensor):
        init_labels = init_labels.detach().cpu().numpy()
    arr = np.asarray(init_labels)
    if arr.ndim != 1 or arr.shape[0] != n_samples:
        raise ValueError(
            f"init_labels must be a 1-D array of length n_samples={n_samples}, "
            f"got shape {arr.shape}."
        )
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(
                f"init_labels must hold integers, got dtype {arr.dtype}."
            )
    return relabel_by_first_occurrence(arr)


def _initial_stats(X, leaf_labels_t, k, linkage, regularizer, pm):
    sizes = torch.bincount(leaf_labels_t, minlength=k).to(X.dtype)
    stats = ClusterStats(sizes=sizes)
    if linkage == "energy":
        stats.within = pm.diagonal().clone()
    if needs_moments(regularizer):
        n = X.shape[0]
        zero = torch.zeros(n, dtype=torch.float64, device=X.device)
        if k == n:  # singletons (a copy: means are updated in place)
            stats.means, stats.ssd = X.clone(), zero
        else:  # singletons merged into the initial groups
            ones = torch.ones(n, dtype=X.dtype, device=X.device)
            _, stats.means, stats.ssd = merged_moments(ones, X, zero, leaf_labels_t, k)
    return stats


def _apply_step(pm, stats, root_np, linkage, moments):
    """Merge the groups of one step into their representatives.

    Returns the updated statistics; the slots kept when the pair matrix was
    compacted (else None); the changed representatives and the dead slots.
    """
    dev = stats.sizes.device
    w = pm.width
    root = torch.as_tensor(root_np, device=dev)
    moved = torch.nonzero(root != torch.arange(w, device=dev)).squeeze(1)
    targets = root[moved]
    keep = pm.merge(root)
    # dead slots keep their old (finite, non-zero) statistics: they are masked
    sizes = stats.sizes.clone().index_add_(0, targets, stats.sizes[moved])
    means, ssd = stats.means, stats.ssd
    if moments and moved.numel():
        # only the groups that changed: O(m d), not O(K d)
        touched = torch.unique(targets)
        members = torch.cat([touched, moved])
        local = torch.searchsorted(touched, root[members])
        _, g_means, g_ssd = merged_moments(
            stats.sizes[members], means[members], ssd[members], local, touched.numel()
        )
        means[touched] = g_means  # in place: the stats own these tensors
        ssd[touched] = g_ssd
    new = ClusterStats(sizes=sizes, ssd=ssd, means=means)
    if keep is not None:
        new = new.select(keep)
    if linkage == "energy":
        new.within = pm.diagonal().clone()
    return new, keep, torch.unique(targets), moved


def _block_budget(working_memory, n, itemsize):
    """MiB for temporaries: the user's choice, else bounded by the pair matrix.

    scikit-learn's default working memory (1 GiB) would let one block of
    criterion values be as large as the N x N matrix itself; an eighth of it
    (at least 32 MiB) keeps the peak near one N x N buffer.
    """
    if working_memory is not None:
        return working_memory
    cap = get_config()["working_memory"]
    return float(min(cap, max(32.0, n * n * itemsize / 8 / 2**20)))


@validate_params(
    {"X": ["array-like", torch.Tensor], "init_labels": ["array-like", torch.Tensor, None],
     **PARAMETER_CONSTRAINTS},
    prefer_skip_nested_validation=True,
)
def energy_linkage_tree(
    X,
    *,
    n_clusters=None,
    merge_percent=0.05,
    lam=0.9,
    linkage="energy",
    regularizer="ssd",
    metric="auto",
    weighted=False,
    merge_schedule="constant",
    distance_threshold=None,
    max_steps=None,
    init_labels=None,
    device="auto",
    working_memory=None,
    verbose=0,
):
    """Bottom-up clustering with the energy (or BUC / DBC) criterion.

    See :class:`~sklearn_ecluster.cluster.EnergyAgglomerative` for the
    parameters; this is its functional core and takes already validated,
    finite 2-D data (NumPy or a torch tensor).

    Returns
    -------
    tree : LinkageTree

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ecluster.cluster import energy_linkage_tree
    >>> X = np.array([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0], [5.0, 5.5]])
    >>> tree = energy_linkage_tree(X, n_clusters=2, merge_percent=None, device="cpu")
    >>> tree.labels
    array([0, 0, 1, 1])
    >>> tree.children
    array([[0, 1],
           [2, 3]])
    """
    dev = get_device(device, X)
    Xt = to_tensor(X, dev).detach()  # values only: nothing here is differentiable
    if not Xt.is_floating_point():
        Xt = Xt.to(torch.float64)
    if dev.type == "cuda" and Xt.dtype != torch.float32:
        Xt = Xt.to(torch.float32)  # float32 on GPU (documented)
    n = Xt.shape[0]
    metric = resolve_metric(metric, linkage)
    if weighted and linkage != "energy":
        raise ValueError(
            f"weighted=True is defined for linkage='energy' only (the Szekely-Rizzo "
            f"weight n m / (n + m) of the energy distance, SPEC 2), got "
            f"linkage={linkage!r}. Use weighted=False with single or average linkage."
        )
    if n_clusters is not None and n_clusters > n:
        raise ValueError(f"n_clusters={n_clusters} must be <= n_samples={n}.")
    if init_labels is None:
        leaf_labels = np.arange(n, dtype=np.int64)
        k0 = n
    else:
        leaf_labels = _validate_init_labels(init_labels, n)
        k0 = int(leaf_labels.max()) + 1
        if n_clusters is not None and n_clusters > k0:
            raise ValueError(
                f"n_clusters={n_clusters} is larger than the number of initial clusters "
                f"({k0}) given by init_labels: merging can only reduce it. Use "
                f"n_clusters <= {k0}."
            )
    auto_cut = n_clusters is None and distance_threshold is None and max_steps is None
    target = 1 if n_clusters is None else n_clusters
    reduce = "amin" if linkage == "single" else "sum"
    moments = needs_moments(regularizer)
    crit = dict(linkage=linkage, regularizer=regularizer, lam=float(lam), weighted=bool(weighted))

    working_memory = _block_budget(working_memory, k0, Xt.element_size())
    t_start = time.perf_counter()
    leaf_t = torch.as_tensor(leaf_labels, device=dev)
    pm = PairMatrix.from_samples(
        Xt, None if init_labels is None else leaf_t, k0,
        metric=metric, reduce=reduce, working_memory=working_memory,
    )
    stats = _initial_stats(Xt, leaf_t, k0, linkage, regularizer, pm)
    node = np.arange(k0, dtype=np.int64)  # tree node id of each slot
    children, distances = [], []
    history = {"n_clusters": [], "n_merges": [], "max_distance": [], "seconds": []}
    bar = _progress(verbose, k0 - target)

    def record(slot_a, slot_b, value):
        children.append((node[slot_a], node[slot_b]))
        distances.append(value)
        node[slot_a] = k0 + len(children) - 1

    n_steps = 0
    if merge_percent is None:
        merger = ExactMerger(pm, stats, crit, moments)
        while merger.n_active > target and (max_steps is None or n_steps < max_steps):
            t0 = time.perf_counter()
            i, j, v = merger.next_pair()
            if distance_threshold is not None and v >= distance_threshold:
                break
            record(i, j, v)
            merger.merge(i, j)
            n_steps += 1
            _log_step(history, merger.n_active, 1, v, time.perf_counter() - t0, verbose > 2)
            if bar is not None:
                bar.update(1)
    else:
        k = k0
        cache = None
        while k > target and (max_steps is None or n_steps < max_steps):
            t0 = time.perf_counter()
            if cache is None:
                cache = CandidateCache(pm, stats, crit)
            base = n if merge_schedule == "constant" else k
            quota = min(max(1, int(merge_percent * base)), k - target)
            merges, root, stopped = batched_step(cache, quota, distance_threshold)
            if not merges:
                break  # a step counts only when it merges (as in the exact mode)
            for a, b, v in merges:
                record(a, b, v)
            stats, keep, changed, dead = _apply_step(pm, stats, root, linkage, moments)
            if keep is not None:
                node = node[keep.cpu().numpy()]
            k = pm.k
            if k > target and not stopped:
                cache.update(stats, changed, dead, keep)
            n_steps += 1
            max_d = max(v for _, _, v in merges)
            _log_step(history, k, len(merges), max_d, time.perf_counter() - t0,
                      verbose == 1)
            if bar is not None:
                bar.update(len(merges))
            if stopped:
                break
    if bar is not None:
        bar.close()

    children = np.asarray(children, dtype=np.int64).reshape(-1, 2)
    distances = np.asarray(distances, dtype=np.float64)
    del pm, stats  # free the N x N buffer before the cut needs memory
    cut_score = None
    if auto_cut and len(children) > 0:
        q, cut_score = choose_cut(Xt, children, leaf_labels, k0, metric,
                                  working_memory=working_memory)
    else:
        q = len(children)
    labels = labels_at_cuts(children, leaf_labels, k0, [q])[q]
    if verbose:
        print(
            f"[EnergyAgglomerative] {n_steps} steps, {len(children)} merges, "
            f"{int(labels.max()) + 1} clusters in {time.perf_counter() - t_start:.2f} s"
            + ("" if cut_score is None else f" (auto cut, silhouette {cut_score:.3f})")
        )
    return LinkageTree(
        labels=labels, children=children, distances=distances, n_leaves=k0,
        leaf_labels=leaf_labels, n_steps=n_steps, history=history, metric=metric,
        cut_score=cut_score,
    )


def _log_step(history, k, n_merges, max_d, seconds, echo):
    history["n_clusters"].append(int(k))
    history["n_merges"].append(int(n_merges))
    history["max_distance"].append(float(max_d))
    history["seconds"].append(float(seconds))
    step = len(history["n_clusters"])
    logger.debug("step %d: %d merges, %d clusters, max D %.4g", step, n_merges, k, max_d)
    if echo:
        print(f"[EnergyAgglomerative] step {step}: {n_merges} merges -> {k} clusters, "
              f"max D {max_d:.4g}, {seconds:.2f} s")


def _progress(verbose, total):
    if verbose < 2:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is an optional extra
        return None
    return tqdm(total=total, desc="merges", unit="merge")
