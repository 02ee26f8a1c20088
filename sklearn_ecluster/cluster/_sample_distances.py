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

#: MiB of one chunk of Gram blocks: small enough to stay in cache (measured
#: fastest between 16 and 64 on a 2-core CPU)
_CHUNK_MIB = 32.0

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
        self.working_memory = working_memory
        self._aug = None

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

    def cluster_values(self, members, ca, cb, reduce):
        """:func:`cluster_pair_values` by blocks: one small Gram matrix per pair.

        A pair of clusters with n and m samples costs ``(n + m) d`` gathered
        values and an ``n x m`` product, instead of ``2 n m d`` gathered
        values pair by pair. Pairs are grouped by padded sizes (a ladder of
        ratio at most 1.5, so at most 2.25x padding) and batched with
        ``bmm``; distances by the Gram expansion, as the dense pair matrix.
        """
        dev = self.device
        out = torch.full((ca.numel(),), 0.0 if reduce == "sum" else float("inf"),
                         dtype=self.dtype, device=dev)
        if ca.numel() == 0:
            return out
        aug = self._augmented()
        ladder = _size_ladder(int(members.sizes.max()), dev)
        sa, sb = members.sizes[ca], members.sizes[cb]
        n_rungs = ladder.numel()
        key = torch.searchsorted(ladder, sa) * n_rungs + torch.searchsorted(ladder, sb)
        keys, inverse = torch.unique(key, return_inverse=True)
        width = int(aug.shape[1])
        # a few MiB per chunk: the gathered rows and the Gram blocks stay in cache
        budget = rows_per_block(1, self.X.element_size(), dev,
                                min(self.working_memory or _CHUNK_MIB, _CHUNK_MIB),
                                n_buffers=1)
        for t, kv in enumerate(keys.tolist()):
            sel = torch.nonzero(inverse == t).squeeze(1)
            pa, pb = int(ladder[kv // n_rungs]), int(ladder[kv % n_rungs])
            per_pair = (pa + pb) * width + pa * pb
            if per_pair > budget:  # big clusters: one pair at a time, in tiles
                for e in sel.tolist():
                    out[e] = self._tiled_pair(members, int(ca[e]), int(cb[e]), reduce,
                                              budget)
                continue
            step = max(1, budget // per_pair)
            for p0 in range(0, sel.numel(), step):
                e = sel[p0 : p0 + step]
                ia, ma = _padded_members(members, ca[e], pa, pad=self.n_samples)
                ib, mb = _padded_members(members, cb[e], pb, pad=self.n_samples)
                xa = aug.index_select(0, ia.reshape(-1)).view(e.numel(), pa, width)
                xb = _as_right(aug.index_select(0, ib.reshape(-1))).view(e.numel(), pb,
                                                                         width)
                g = torch.bmm(xa, xb.transpose(1, 2)).clamp_(min=0.0)  # squared
                same = torch.nonzero(ca[e] == cb[e]).squeeze(1)
                if same.numel():
                    # self-pairs are 0 exactly (the Gram expansion leaves ~eps
                    # there, and its square root ~sqrt(eps) per pair)
                    diag = torch.arange(pa, device=dev)
                    g[same.unsqueeze(1), diag, diag] = 0.0
                if self.metric == "euclidean":
                    g.sqrt_()
                if reduce == "sum":
                    out[e] = g.sum((1, 2))  # padding is the zero row: adds 0
                else:
                    mask = ma.unsqueeze(2) & mb.unsqueeze(1)
                    out[e] = g.masked_fill_(~mask, float("inf")).amin((1, 2))
        return out

    def _tiled_pair(self, members, a, b, reduce, budget):
        """The reduction over one pair of big clusters, by tiles of the budget."""
        aug = self._augmented()
        width = int(aug.shape[1])
        rows_a = members.order[members.offsets[a]:members.offsets[a + 1]]
        rows_b = members.order[members.offsets[b]:members.offsets[b + 1]]
        # square tiles t x t: 2 t width gathered + t^2 products within the budget
        t = max(1, int((width * width + budget) ** 0.5 - width))
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        if reduce != "sum":
            total = torch.full((), float("inf"), dtype=self.dtype, device=self.device)
        for i0 in range(0, rows_a.numel(), t):
            ia = rows_a[i0:i0 + t]
            xa = aug.index_select(0, ia)
            for j0 in range(0, rows_b.numel(), t):
                ib = rows_b[j0:j0 + t]
                g = (xa @ _as_right(aug.index_select(0, ib)).T).clamp_(min=0.0)
                if a == b:
                    g.masked_fill_(ia.unsqueeze(1) == ib.unsqueeze(0), 0.0)
                if self.metric == "euclidean":
                    g.sqrt_()
                if reduce == "sum":
                    total += g.sum(dtype=torch.float64)
                else:
                    total = torch.minimum(total, g.min())
        return total.to(self.dtype)

    def _augmented(self):
        """Rows ``[x, |x|^2, 1]``, and a last row of zeros.

        With the rows of the other side turned into ``[-2 x, 1, |x|^2]``
        (:func:`_as_right`, on the gathered copy), one product gives the
        squared distances ``|a|^2 + |b|^2 - 2 a.b``; the zero row pads
        clusters to a common size and its products are 0. One array of the
        features' size, not two.
        """
        if self._aug is None:
            X = self.X
            sq = (X * X).sum(1, keepdim=True)
            zero = torch.zeros((1, X.shape[1] + 2), dtype=X.dtype, device=X.device)
            self._aug = torch.cat([torch.cat([X, sq, torch.ones_like(sq)], 1), zero])
        return self._aug

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
    if hasattr(source, "cluster_values"):
        return source.cluster_values(members, ca, cb, reduce)
    max_pairs = getattr(source, "max_pairs", max_pairs)
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


def _size_ladder(max_size, device):
    """Padded cluster sizes 1, 2, 3, 4, 6, 8, 12, 16, ... (ratios <= 1.5) up to ``max_size``."""
    sizes = [1, 2, 3]
    while sizes[-1] < max_size:
        sizes.append(sizes[-2] * 2)
    return torch.tensor(sizes, dtype=torch.long, device=device)


def _padded_members(members, clusters, width, pad):
    """Samples of each cluster padded to ``width`` with index ``pad``, and the mask."""
    pos = torch.arange(width, device=clusters.device)
    mask = pos.unsqueeze(0) < members.sizes[clusters].unsqueeze(1)
    idx = (members.offsets[clusters].unsqueeze(1) + pos).clamp_(max=members.order.numel() - 1)
    return members.order[idx].masked_fill_(~mask, pad), mask


def _as_right(rows):
    """``[x, |x|^2, 1]`` rows (a gathered copy) turned into ``[-2 x, 1, |x|^2]``, in place."""
    d = rows.shape[-1] - 2
    rows[..., :d].mul_(-2.0)
    rows[..., d:] = rows[..., d:].flip(-1)
    return rows
