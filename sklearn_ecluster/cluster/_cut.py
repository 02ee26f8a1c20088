"""Automatic choice of the number of clusters among the cuts of the merge sequence.

Criterion: the mean silhouette coefficient (Rousseeuw 1987) on the metric of
the linkage, over all samples. Any number of merges is a candidate cut, not
only step boundaries: a coarse geometric grid of cluster counts is scored
first, then every count between the best grid point's neighbours (subsampled
to at most ``n_refine`` values). Each round needs one blocked pass over the
sample distances; the distance matrix of the fit itself is not kept (it was
reused for the cluster sums), so memory stays at one N x N buffer at most.
"""

import numpy as np
import torch

from ..utils import rows_per_block
from ..utils._distances import distance_rows
from ._tree import labels_at_cuts


def silhouette_scores(X, labelings, metric, working_memory=None):
    """Mean silhouette of each labelling, from one blocked pass over distances.

    Samples alone in their cluster score 0 (as in scikit-learn). Labellings
    with fewer than 2 or more than n - 1 clusters score -inf.
    """
    n = X.shape[0]
    labs = [torch.as_tensor(lab, device=X.device) for lab in labelings]
    ks = [int(lab.max()) + 1 for lab in labs]
    counts = [torch.bincount(lab, minlength=k).to(X.dtype) for lab, k in zip(labs, ks, strict=False)]
    totals = [torch.zeros((), dtype=torch.float64, device=X.device) for _ in labs]
    stored = hasattr(X, "row_entries")  # a sparse precomputed source
    itemsize = torch.empty((), dtype=X.dtype).element_size()
    # a block's row of distances (dense) or its stored entries (sparse: about
    # 48 bytes of index and value temporaries each), and its cluster sums
    width = (int(12 * X.entries_per_row) + 1 if stored else n) + max(ks)
    step = rows_per_block(width, itemsize, X.device, working_memory, n_buffers=3)
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        if stored:
            i, j, delta = X.row_entries(r0, r1)
        else:
            d = distance_rows(X, r0, r1, metric, working_memory=working_memory)
        rows = torch.arange(r1 - r0, device=X.device)
        for c, (lab, k, cnt) in enumerate(zip(labs, ks, counts, strict=False)):
            if k < 2 or k > n - 1:
                continue
            if stored:
                # every pair at the missing distance, corrected by the stored
                # ones and by the sample itself (distance 0, not missing)
                sums = (X.missing * cnt).expand(r1 - r0, k).clone()
                sums.index_put_((i, lab[j]), delta, accumulate=True)
                sums[rows, lab[r0:r1]] -= X.missing
            else:
                sums = torch.zeros((r1 - r0, k), dtype=X.dtype, device=X.device)
                sums.index_add_(1, lab, d)
            own = lab[r0:r1]
            own_cnt = cnt[own]
            a = sums[rows, own] / (own_cnt - 1).clamp(min=1)
            mean_other = sums / cnt.unsqueeze(0)
            mean_other[rows, own] = float("inf")
            b = mean_other.min(dim=1).values
            s = (b - a) / torch.maximum(a, b).clamp(min=torch.finfo(X.dtype).tiny)
            s = torch.where(own_cnt > 1, s, torch.zeros_like(s))
            totals[c] += s.double().sum()
    return np.array([
        float(t) / n if 2 <= k <= n - 1 else -np.inf for t, k in zip(totals, ks, strict=False)
    ])


def choose_cut(X, children, leaf_labels, n_leaves, metric, *, n_grid=24, n_refine=16,
               working_memory=None, sample_size=None):
    """Number of merges whose cut maximises the silhouette.

    A search, not a global maximum over all cuts: the silhouette of ``n_grid``
    cluster counts spaced geometrically between the smallest and the largest
    reachable count is computed first, then that of the counts between the
    best grid point's two neighbours (at most ``n_refine`` of them). A narrow
    maximum between two other grid points can be missed.

    Returns ``(n_merges, score)``; ties pick the fewer merges (more clusters
    is the conservative choice for re-identification pseudo labels).
    ``score`` is None when no cut can be scored (no cut with
    2 <= K <= n_samples - 1, e.g. two samples): then all merges are kept.

    ``sample_size``: score the silhouette of a fixed random subsample of
    that many samples (seed 0), among themselves, as
    :func:`sklearn.metrics.silhouette_score` does with ``sample_size``: O(s^2)
    instead of O(N^2) distances (the graph mode at large N).
    """
    sub = None
    if sample_size is not None and (sample_size < X.shape[0] or not torch.is_tensor(X)):
        rng = np.random.default_rng(0)
        sub = np.sort(rng.choice(X.shape[0], size=sample_size, replace=False))
        if torch.is_tensor(X):
            X_sub = X[torch.as_tensor(sub, device=X.device)]
        elif hasattr(X, "take"):  # a sparse precomputed source
            X_sub = X.take(sub)
        else:  # a Dask array: only the subsample comes to the client
            X_sub = torch.as_tensor(np.asarray(X[sub].compute()))
    n = X.shape[0]
    n_merges = len(children)
    k_start = n_leaves
    k_min = max(2, k_start - n_merges)
    k_max = min(n - 1, k_start)
    if k_max < k_min:
        return n_merges, None
    scores = {}

    def score(ks):
        ks = sorted(set(int(k) for k in ks) - set(scores))
        if not ks:
            return
        cuts = {k_start - k: k for k in ks}
        labelings = labels_at_cuts(children, leaf_labels, n_leaves, cuts)
        qs = sorted(labelings)
        if sub is None:
            vals = silhouette_scores(X, [labelings[q] for q in qs], metric,
                                     working_memory)
        else:  # the subsample's clusters, renumbered 0..k-1
            labs = [np.unique(labelings[q][sub], return_inverse=True)[1] for q in qs]
            vals = silhouette_scores(X_sub, labs, metric, working_memory)
        for q, v in zip(qs, vals, strict=False):
            scores[cuts[q]] = v

    grid = np.unique(np.round(np.geomspace(k_min, k_max, num=n_grid)).astype(int))
    score(grid)
    best = max(scores, key=lambda k: (scores[k], k))
    pos = np.searchsorted(grid, best)
    lo = grid[max(0, pos - 1)]
    hi = grid[min(len(grid) - 1, pos + 1)]
    between = np.arange(lo, hi + 1)
    if between.size > n_refine:
        between = np.unique(np.round(np.linspace(lo, hi, n_refine)).astype(int))
    score(between)
    best = max(scores, key=lambda k: (scores[k], k))
    return k_start - best, scores[best]
