"""Where the graph mode gets sample distances from: the features, pair by pair.

The graph mode never forms an N x N object. Every pair value it needs (the
cross sum S(A, B) of two clusters, or their minimum distance) is a reduction
over the sample pairs of A x B, and those distances come from a *source*:

- :class:`TensorSampleDistances`: the features in one torch tensor (CPU or
  CUDA), gathered pair by pair in bounded chunks;
- ``DaskSampleDistances`` (:mod:`._dask`): the features in a Dask array, the
  distances computed on the Dask cluster.

A source has ``n_samples``, ``dtype``, ``device``, ``metric`` and two
methods: :meth:`~TensorSampleDistances.pairs`, the distances of the sample
pairs ``(i[t], j[t])``, and :meth:`~TensorSampleDistances.moments`, the means
and SSD of the initial clusters (for the SSD regularisers);
:func:`cluster_pair_values` turns cluster pairs into sample pairs and reduces
them.
"""

import torch

from ..utils import rows_per_block
from ._criterion import merged_moments

#: metrics a source computes (the graph mode has no precomputed form)
SOURCE_METRICS = ("euclidean", "sqeuclidean")


class TensorSampleDistances:
    """Sample distances from features held in a torch tensor.

    Parameters
    ----------
    X : Tensor (n_samples, n_features)
        Floating-point features, on the device of the computation.
    metric : {"euclidean", "sqeuclidean"}
    working_memory : float, default=None
        MiB for the gathered rows of one chunk of pairs.
    """

    def __init__(self, X, metric, working_memory=None):
        if metric not in SOURCE_METRICS:
            raise ValueError(f"metric must be one of {SOURCE_METRICS}, got {metric!r}.")
        self.X = X
        self.metric = metric
        self.n_samples = int(X.shape[0])
        self.dtype = X.dtype
        self.device = X.device
        # two gathered rows and their difference per pair
        self.chunk = rows_per_block(int(X.shape[1]), X.element_size(), X.device,
                                    working_memory, n_buffers=3)

    def pairs(self, i, j):
        """Distances ``d(x_i[t], x_j[t])`` of the sample pairs, a tensor (len(i),).

        Differences, not the Gram expansion: a pair is computed alone, so the
        cancellation of ``|a|^2 + |b|^2 - 2 a.b`` buys nothing here.
        """
        out = torch.empty(i.numel(), dtype=self.dtype, device=self.device)
        for p0 in range(0, i.numel(), self.chunk):
            p1 = min(i.numel(), p0 + self.chunk)
            diff = self.X.index_select(0, i[p0:p1]).sub_(self.X.index_select(0, j[p0:p1]))
            sq = torch.linalg.vector_norm(diff, dim=1)
            out[p0:p1] = sq if self.metric == "euclidean" else sq.square_()
        return out

    def moments(self, labels, n_clusters):
        """Means (n_clusters, d) and SSD (float64) of the clusters ``labels``."""
        X = self.X
        zero = torch.zeros(X.shape[0], dtype=torch.float64, device=X.device)
        if n_clusters == X.shape[0] and bool((labels == torch.arange(
                n_clusters, device=labels.device)).all()):
            return X.clone(), zero  # singletons (a copy: means change in place)
        ones = torch.ones(X.shape[0], dtype=X.dtype, device=X.device)
        _, means, ssd = merged_moments(ones, X, zero, labels, n_clusters)
        return means, ssd


class Membership:
    """The samples of each cluster: a CSR layout of ``labels`` (sample -> slot).

    Attributes
    ----------
    order : LongTensor (n_samples,)
        Samples sorted by cluster (stable: ascending within a cluster).
    offsets : LongTensor (n_clusters + 1,)
        Cluster c holds ``order[offsets[c]:offsets[c + 1]]``.
    sizes : LongTensor (n_clusters,)
    """

    def __init__(self, labels, n_clusters):
        self.labels = labels
        self.sizes = torch.bincount(labels, minlength=n_clusters)
        self.order = torch.argsort(labels, stable=True)
        self.offsets = torch.zeros(n_clusters + 1, dtype=torch.long, device=labels.device)
        torch.cumsum(self.sizes, 0, out=self.offsets[1:])


def cluster_pair_values(source, members, ca, cb, reduce, max_pairs=1 << 22):
    """Reduce the sample distances of the cluster pairs ``(ca[e], cb[e])``.

    Parameters
    ----------
    source : a sample-distance source
    members : Membership
    ca, cb : LongTensor (n_pairs,)
        Cluster slots; ``ca[e] == cb[e]`` gives the sum over the ordered pairs
        of one cluster (self-pairs included, they are zero).
    reduce : {"sum", "amin"}
        Sums of distances (energy, average) or minima (single linkage).
    max_pairs : int
        Sample pairs enumerated at once (a pair of big clusters is split
        across chunks).

    Returns
    -------
    values : Tensor (n_pairs,), in the source's dtype.
    """
    dev = ca.device
    n_pairs = ca.numel()
    fill = 0.0 if reduce == "sum" else float("inf")
    out = torch.full((n_pairs,), fill, dtype=source.dtype, device=dev)
    if n_pairs == 0:
        return out
    size_b = members.sizes[cb]
    counts = members.sizes[ca] * size_b
    ends = torch.cumsum(counts, 0)
    starts = ends - counts
    total = int(ends[-1])
    for t0 in range(0, total, max_pairs):
        t = torch.arange(t0, min(total, t0 + max_pairs), device=dev)
        e = torch.searchsorted(ends, t, right=True)
        local = t - starts[e]
        sb = size_b[e]
        i = members.order[members.offsets[ca[e]] + torch.div(local, sb, rounding_mode="floor")]
        j = members.order[members.offsets[cb[e]] + local % sb]
        d = source.pairs(i, j)
        if reduce == "sum":
            out.index_add_(0, e, d)
        else:
            out.scatter_reduce_(0, e, d, reduce="amin")
    return out
