"""The k-reciprocal Jaccard distance among one set of features (the clustered distance).

The Jaccard term of :func:`~sklearn_ecluster.metrics.k_reciprocal_rerank`
(the same steps and code: k-reciprocal sets, their expansion, weights
``exp(-d)``, local query expansion over ``k2`` neighbours, the Jaccard
distance of the weight vectors), computed among the ``N`` samples of one set
instead of between a query and a gallery set, without the mix with the
original distance (``lambda = 0``): what SpCL and Cluster-Contrast cluster
(``k1 = 30``, ``k2 = 6``).

Memory: the distances are computed from the features block by block (never
an ``N x N`` distance matrix); the dense result is the one ``N x N`` buffer,
filled in place, beside ``O(N k1^2)`` for the sparse neighbourhood vectors and
temporaries bounded by an eighth of the result (on the CPU; on CUDA the
expansion step of the re-ranking code sizes its blocks from the free memory).
The sparse result (``sparse=True``) stores only the pairs that share a
neighbour (every other pair is at distance exactly 1): it is built by blocks
of whole rows, joined on the common columns, so nothing of size N x N exists.
"""

from numbers import Integral

import numpy as np
import scipy.sparse as sp
import torch
from sklearn import config_context, get_config

from ..utils import check_memory, rows_per_block, to_numpy
from ..utils._sklearn import Interval, validate_params
from ._rerank import (
    _expanded_weights,
    _jaccard_similarity,
    _reciprocal,
    _stable_knn,
)


class _FeatureDistances:
    """Rows and entries of the squared Euclidean distances, each row over its maximum.

    The interface of ``_rerank._JointDistances`` (``rows``, ``entries``,
    ``row_max``) with the distances computed from the features on demand.
    """

    def __init__(self, X, step):
        self.X = X
        self.sq = (X * X).sum(1)
        n = X.shape[0]
        row_max = torch.empty(n, dtype=X.dtype, device=X.device)
        for r0 in range(0, n, step):
            row_max[r0:r0 + step] = self._squared(r0, min(n, r0 + step)).amax(1)
        self.row_max = row_max.clamp_(min=torch.finfo(X.dtype).tiny)

    def _squared(self, r0, r1):
        d = torch.addmm(self.sq[None, :], self.X[r0:r1], self.X.T, alpha=-2.0)
        d.add_(self.sq[r0:r1, None]).clamp_(min=0.0)
        idx = torch.arange(r0, r1, device=d.device)
        d[idx - r0, idx] = 0.0  # exact zero on the diagonal, as in a distance matrix
        return d

    def rows(self, r0, r1):
        return self._squared(r0, r1).div_(self.row_max[r0:r1, None])

    def entries(self, i, j):
        # by blocks of pairs: the gathered rows X[i], X[j] are (pairs, d) each,
        # many N x N buffers' worth for all pairs at once
        X = self.X
        d = torch.empty(i.shape, dtype=X.dtype, device=X.device)
        step = rows_per_block(X.shape[1], X.element_size(), X.device, n_buffers=2)
        for p0 in range(0, i.shape[0], step):
            p1 = p0 + step
            d[p0:p1] = (X[i[p0:p1]] - X[j[p0:p1]]).square_().sum(1)
        return d.div_(self.row_max[i])


def _query_expansion_blocks(cols, w, knn, k2, wm):
    """``_rerank._query_expansion`` by blocks of rows: the same COO entries, in order.

    V_i = mean of V_j over the ``k2`` neighbours j of i; the sort that merges
    duplicate columns runs on one block at a time.
    """
    n, width = cols.shape
    k2 = min(k2, knn.shape[1])
    # about six int64 temporaries per candidate entry (columns, keys, sort)
    step = rows_per_block(k2 * width, 48, cols.device, working_memory=wm, n_buffers=1)
    out_rows, out_cols, out_vals = [], [], []
    for r0 in range(0, n, step):
        nb = knn[r0:r0 + step, :k2]
        m = nb.shape[0]
        rows = torch.arange(r0, r0 + m, device=cols.device)[:, None].expand(m, k2 * width)
        c, v = cols[nb].flatten(1), w[nb].flatten(1)
        keep = c < n
        key, inverse = torch.unique(rows[keep] * (n + 1) + c[keep], sorted=True,
                                    return_inverse=True)
        vals = torch.zeros(key.shape[0], dtype=w.dtype, device=w.device)
        vals.index_add_(0, inverse, v[keep])
        out_rows.append(key // (n + 1))
        out_cols.append(key % (n + 1))
        out_vals.append(vals / k2)
    return torch.cat(out_rows), torch.cat(out_cols), torch.cat(out_vals)


@validate_params(
    {
        "X": ["array-like", torch.Tensor],
        "k1": [Interval(Integral, 1, None, closed="left")],
        "k2": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "sparse": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def jaccard_distance(X, *, k1=30, k2=6, device="cpu", sparse=False):
    """The k-reciprocal Jaccard distance matrix among the rows of ``X``.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        Features (usually L2-normalised).
    k1 : int, default=30
        Size of the k-reciprocal neighbourhoods.
    k2 : int, default=6
        Neighbours averaged in the local query expansion; 1 turns it off.
    device : str or torch.device, default="cpu"
        Where to compute.
    sparse : bool, default=False
        Return a ``scipy.sparse.csr_matrix`` of the pairs that share at
        least one neighbour (distance below 1), the diagonal stored as
        explicit zeros; every pair not stored is at distance exactly 1. Its
        memory is the number of such pairs, not ``n_samples ** 2``: what
        :class:`~sklearn_ecluster.self_training.AutoEpsDBSCAN` and
        :class:`~sklearn_ecluster.cluster.EnergyAgglomerative`
        (``missing_distance=1.0``) take at sizes where a dense matrix does
        not fit.

    Returns
    -------
    distances : ndarray or csr_matrix of shape (n_samples, n_samples)
        Symmetric, in [0, 1], zero on the diagonal; the floating dtype of
        ``X`` (float32 unless ``X`` is float64). Pass it to a clusterer with
        ``metric="precomputed"``. Sparse: the stored entries are the same
        values as the dense matrix's entries below 1 (up to the order of
        the floating-point sums), each row's columns ascending.

    See Also
    --------
    k_reciprocal_rerank : the same Jaccard term between queries and a gallery.

    Notes
    -----
    As in the re-ranking, the squared Euclidean distances of each sample are
    divided by their maximum before the weights ``exp(-d)`` are formed.
    Memory: one ``n_samples x n_samples`` buffer (the result), temporaries
    of at most an eighth of it (and of ``sklearn.get_config()["working_memory"]``)
    and ``O(n_samples * k1^2)`` for the neighbourhoods. With ``sparse=True``,
    8 bytes per stored pair (an int32 column and a float32 value) and
    temporaries of at most an eighth of the dense buffer, instead of the
    dense buffer; the join of the neighbourhood vectors runs twice (a count,
    then the values).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ecluster.metrics import jaccard_distance
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    >>> D = jaccard_distance(X, k1=1, k2=1)
    >>> D.shape, float(D[0, 1]) < float(D[0, 2])
    ((4, 4), True)
    >>> S = jaccard_distance(X, k1=1, k2=1, sparse=True)  # pairs sharing a neighbour
    >>> S.nnz, bool(np.allclose(S.toarray()[S.toarray() > 0], D[(D > 0) & (D < 1)]))
    (8, True)
    """
    X = torch.as_tensor(X, device=device)
    if not X.is_floating_point():
        X = X.float()
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"X must be 2-D with at least 2 rows, got shape {tuple(X.shape)}.")
    n = X.shape[0]
    itemsize = X.element_size()
    # temporaries (row blocks, joined pairs) within an eighth of the result
    # (and within sklearn's working_memory), so the peak stays near one N x N
    wm = max(16.0, min(float(get_config()["working_memory"]), n * n * itemsize / 8 / 2**20))
    if not sparse:
        check_memory(n * n * itemsize + wm * 2**20 + n * 1024 * 8, X.device,
                     f"jaccard_distance on {n} samples")
    with config_context(working_memory=wm):
        rows, cols, vals = _neighbourhood_vectors(X, k1, k2, wm)
        if sparse:
            return _sparse_distances(rows, cols, vals, n, wm)
        return to_numpy(_dense_distances(rows, cols, vals, n, wm))


def _neighbourhood_vectors(X, k1, k2, wm):
    """The sparse vectors V_i (COO, sorted by row): steps 1-5 of the re-ranking."""
    n = X.shape[0]
    step = rows_per_block(n, 8, X.device, working_memory=wm, n_buffers=4)
    dist = _FeatureDistances(X, step)
    kh = round(k1 / 2)  # half-to-even, as numpy.around in the authors' code
    knn = _stable_knn(dist, min(n, max(k1 + 1, k2)), step)
    F, Fh = knn[:, :k1 + 1], knn[:, :kh + 1]
    cols, w = _expanded_weights(dist, F, _reciprocal(F), Fh, _reciprocal(Fh))
    if k2 != 1:
        rows, cols, vals = _query_expansion_blocks(cols, w, knn, k2, wm)
    else:
        used = cols < n
        rows = torch.arange(n, device=X.device)[:, None].expand_as(cols)[used]
        cols, vals = cols[used], w[used]
    return rows, cols, vals


def _dense_distances(rows, cols, vals, n, wm):
    """The N x N distance tensor, filled in place."""
    dev = vals.device
    # the set is both the "queries" and the "gallery": each entry is given
    # twice, the second time as a gallery row (index + n)
    # about 12 int64 / float temporaries per joined pair in _jaccard_similarity
    max_pairs = rows_per_block(1, 96, dev, working_memory=wm)
    S = _jaccard_similarity(torch.cat([rows, rows + n]), torch.cat([cols, cols]),
                            torch.cat([vals, vals]), n, 2 * n, max_pairs)
    step = rows_per_block(n, 8, dev, working_memory=wm, n_buffers=4)
    # 1 - min / max = 1 - S / (2 - S), by row blocks: no second N x N temporary
    for r0 in range(0, n, step):
        block = S[r0:r0 + step]
        block.copy_((2.0 - block).reciprocal_().mul_(block).neg_().add_(1.0).clamp_(min=0.0))
    S.fill_diagonal_(0.0)
    return S


def _sparse_distances(rows, cols, vals, n, wm):
    """The pairs with a common neighbour, as a CSR matrix: joined by blocks of rows.

    S[i, j] = sum_l min(V_il, V_jl) over the columns l the two vectors share
    (the inverted index of the paper, as in the dense join); a block holds
    whole rows, so the sums of its pairs are complete when its keys are
    reduced. Two passes over the blocks: the first counts each row's pairs,
    so the second writes into the final arrays (no growing list of blocks
    to concatenate: that would hold the result twice).
    """
    indptr = np.zeros(n + 1, dtype=np.int64)
    for r0, r1, i, _, _ in _joined_blocks(rows, cols, vals, n, wm):
        indptr[r0 + 1:r1 + 1] = torch.bincount(i - r0, minlength=r1 - r0).cpu().numpy()
    np.cumsum(indptr, out=indptr)
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    data = np.empty(int(indptr[-1]), dtype=torch.empty((), dtype=vals.dtype).numpy().dtype)
    for r0, r1, i, j, S in _joined_blocks(rows, cols, vals, n, wm):
        # 1 - min / max = 1 - S / (2 - S); zero on the diagonal
        d = (2.0 - S).reciprocal_().mul_(S).neg_().add_(1.0).clamp_(min=0.0)
        d[i == j] = 0.0
        e0, e1 = indptr[r0], indptr[r1]
        indices[e0:e1] = j.to(torch.int32).cpu().numpy()
        data[e0:e1] = d.cpu().numpy()
    return sp.csr_matrix((data, indices, indptr), shape=(n, n))


def _joined_blocks(rows, cols, vals, n, wm):
    """Blocks of whole rows ``r0:r1`` of S: ``(r0, r1, i, j, S_ij)``, sorted by (i, j)."""
    dev = vals.device
    g_cols, order = torch.sort(cols, stable=True)  # entries grouped by column
    g_rows, g_vals = rows[order], vals[order]
    count = torch.bincount(g_cols, minlength=n)
    start = count.cumsum(0) - count
    pairs = count[cols]  # joined pairs of each entry (rows are sorted)
    ends = pairs.cumsum(0)
    row_end = torch.searchsorted(rows, torch.arange(1, n + 1, device=dev))  # CSR of V
    # about 12 int64 / float temporaries per joined pair, as the dense join
    max_pairs = rows_per_block(1, 96, dev, working_memory=wm)
    e0, r0 = 0, 0
    while r0 < n:
        # whole rows r0..r1-1 whose joined pairs fit in max_pairs (at least one row)
        base = int(ends[e0 - 1]) if e0 else 0
        e_fit = int(torch.searchsorted(ends, base + max_pairs, right=True))
        r1 = max(int(torch.searchsorted(row_end, e_fit, right=True)), r0 + 1)
        e1 = int(row_end[r1 - 1])
        owner = torch.repeat_interleave(torch.arange(e0, e1, device=dev), pairs[e0:e1])
        first = ends[owner] - pairs[owner]
        g = start[cols[owner]] + torch.arange(base, base + owner.shape[0], device=dev) - first
        key, inverse = torch.unique((rows[owner] - r0) * n + g_rows[g], sorted=True,
                                    return_inverse=True)
        S = torch.zeros(key.shape[0], dtype=vals.dtype, device=dev)
        S.index_add_(0, inverse, torch.minimum(vals[owner], g_vals[g]))
        del owner, first, g, inverse
        yield r0, r1, torch.div(key, n, rounding_mode="floor") + r0, key % n, S
        e0, r0 = e1, r1
