"""k-reciprocal re-ranking (Zhong, Zheng, Cao, Li; CVPR 2017), vectorised in torch.

The steps are those of the authors' published code, without its loops over
samples:

1. the joint (query + gallery) distance matrix, squared and divided by its
   column maxima (then transposed, so row ``i`` holds the distances of
   sample ``i``);
2. the ``k1 + 1`` nearest neighbours of every sample (stable: ties by index);
3. the k-reciprocal set R(i, k1): neighbours j of i that have i among their
   own ``k1 + 1`` nearest neighbours;
4. its expansion: each j in R(i, k1) adds R(j, round(k1 / 2)) when at least
   2/3 of that smaller set lies in R(i, k1);
5. a sparse vector V_i with weights ``exp(-d(i, j))`` on the expanded set,
   normalised to sum 1, then averaged over the ``k2`` nearest neighbours of i
   (local query expansion);
6. the Jaccard distance ``1 - sum(min(V_i, V_j)) / sum(max(V_i, V_j))``,
   computed on the sparse vectors by joining them on their common columns;
7. the result ``(1 - lambda) * jaccard + lambda * original``.
"""

from numbers import Integral, Real

import torch
from sklearn import get_config

from ..utils import check_memory, rows_per_block, to_numpy
from ..utils._sklearn import Interval, validate_params
from ..utils._validation import check_matrix


def _magnitude(X, dim):
    lo, hi = torch.aminmax(X, dim=dim)
    return torch.maximum(lo.neg_(), hi)


class _JointDistances:
    """Step 1, never materialised: rows and entries of the joint matrix.

    The authors' code builds the (N, N) matrix ``[[q_q, q_g], [q_g.T, g_g]]``,
    squares it, divides each column by its maximum and transposes it. For
    symmetric ``q_q`` and ``g_g`` (distances) that is the matrix squared with
    each *row* divided by its maximum, which is what the rows and entries
    served here are. Building it would allocate N^2 more entries beside the
    inputs.
    """

    def __init__(self, q_g, q_q, g_g):
        self.q_g, self.q_q, self.g_g = q_g, q_q, g_g
        self.nq, self.ng = q_g.shape
        # max of the squares = square of the max magnitude (both rounded
        # once); min and max, unlike abs, need no full-size temporary.
        mag_q = torch.maximum(_magnitude(q_q, 1), _magnitude(q_g, 1))
        mag_g = torch.maximum(_magnitude(q_g, 0), _magnitude(g_g, 1))
        # Clamped so that an all-zero row stays zero instead of 0 / 0.
        self.row_max = torch.cat([mag_q, mag_g]).square_().clamp_(
            min=torch.finfo(q_g.dtype).tiny)

    def rows(self, r0, r1):
        """Rows ``r0:r1``, squared and normalised."""
        nq = self.nq
        parts = []
        if r0 < nq:
            b = min(r1, nq)
            parts.append(torch.cat([self.q_q[r0:b], self.q_g[r0:b]], dim=1))
        if r1 > nq:
            a, b = max(r0, nq) - nq, r1 - nq
            parts.append(torch.cat([self.q_g[:, a:b].T, self.g_g[a:b]], dim=1))
        block = torch.cat(parts) if len(parts) > 1 else parts[0]
        return block.square_().div_(self.row_max[r0:r1, None])

    def entries(self, i, j):
        """Entries ``(i[k], j[k])``, squared and normalised, from the inputs."""
        nq = self.nq
        out = torch.empty(i.shape, dtype=self.q_g.dtype, device=i.device)
        qi, qj = i < nq, j < nq
        for mask, src, a, b in (
            (qi & qj, self.q_q, i, j),
            (qi & ~qj, self.q_g, i, j - nq),
            (~qi & qj, self.q_g, j, i - nq),  # the (q_g.T) block
            (~qi & ~qj, self.g_g, i - nq, j - nq),
        ):
            out[mask] = src[a[mask], b[mask]]
        return out.square_().div_(self.row_max[i])


def _stable_knn(joint, k, step):
    """Step 2: indices of the ``k`` smallest entries of each row, ties by index."""
    n = joint.row_max.shape[0]
    out = torch.empty((n, k), dtype=torch.int64, device=joint.row_max.device)
    for r0 in range(0, n, step):
        blk = joint.rows(r0, min(n, r0 + step))
        kth = torch.topk(blk, k, dim=1, largest=False, sorted=True).values[:, -1:]
        take = blk <= kth
        if bool((take.sum(1) != k).any()):
            # Ties at the k-th value (topk picks any of them): keep the
            # lowest-index ones.
            less = blk < kth
            tied = blk == kth
            take = less | (tied & (tied.cumsum(1) <= k - less.sum(1, keepdim=True)))
        idx = take.nonzero()[:, 1].view(-1, k)  # row-major: ascending index
        # Order by (value, index).
        order = torch.sort(blk.gather(1, idx), dim=1, stable=True).indices
        out[r0:r0 + step] = idx.gather(1, order)
    return out


def _reciprocal(F):
    """Step 3: mask of the entries j of ``F[i]`` that have i in ``F[j]``."""
    me = torch.arange(F.shape[0], device=F.device)[:, None, None]
    return (F[F] == me).any(2)


def _expanded_weights(joint, F, rec, Fh, rec_h):
    """Steps 4-5 before query expansion, as padded (index, weight) rows.

    Returns ``cols`` (N, L) with ``N`` as padding and ``w`` (N, L).
    """
    n = F.shape[0]
    cols = []
    # Bounds the (rows, k1+1, kh+1, k1+1) membership test.
    per_row = F.shape[1] ** 2 * Fh.shape[1] * 2
    step = max(1, rows_per_block(per_row, 1, F.device, n_buffers=2))
    for r0 in range(0, n, step):
        f, r = F[r0:r0 + step], rec[r0:r0 + step]
        cand = Fh[f]                      # R(j, kh) slots of each candidate j
        cand_ok = rec_h[f]
        member = ((cand[..., None] == f[:, None, None, :])
                  & r[:, None, None, :]).any(-1)
        inter = (member & cand_ok).sum(-1)
        accept = r & (3 * inter > 2 * cand_ok.sum(-1))
        e = torch.cat([
            f.masked_fill(~r, n),
            cand.masked_fill(~(cand_ok & accept[..., None]), n).flatten(1),
        ], dim=1)
        e = torch.sort(e, dim=1).values
        dup = torch.zeros_like(e, dtype=torch.bool)
        dup[:, 1:] = e[:, 1:] == e[:, :-1]
        cols.append(torch.sort(e.masked_fill_(dup, n), dim=1).values)
    width = max(int((c < n).sum(1).max()) for c in cols)
    cols = torch.cat([c[:, :width] for c in cols])
    used = cols < n
    rows = torch.arange(n, device=F.device)[:, None].expand_as(cols)
    w = torch.zeros(cols.shape, dtype=joint.row_max.dtype, device=F.device)
    w[used] = torch.exp(-joint.entries(rows[used], cols[used]))
    return cols, w / w.sum(1, keepdim=True)


def _query_expansion(cols, w, knn, k2):
    """Step 5, end: V_i = mean of V_j over the ``k2`` neighbours j of i (COO)."""
    n, width = cols.shape
    k2 = min(k2, knn.shape[1])
    nb = knn[:, :k2]
    rows = torch.arange(n, device=cols.device)[:, None].expand(n, k2 * width)
    c, v = cols[nb].flatten(1), w[nb].flatten(1)
    keep = c < n
    key = rows[keep] * (n + 1) + c[keep]
    key, inverse = torch.unique(key, sorted=True, return_inverse=True)
    vals = torch.zeros(key.shape[0], dtype=w.dtype, device=w.device)
    vals.index_add_(0, inverse, v[keep])
    return key // (n + 1), key % (n + 1), vals / k2


def _jaccard_similarity(rows, cols, vals, nq, n, max_pairs):
    """Step 6: S[i, j] = sum_l min(V_il, V_jl) for queries i and gallery j."""
    ng = n - nq
    S = torch.zeros(nq * ng, dtype=vals.dtype, device=vals.device)
    is_q = rows < nq
    q_rows, q_cols, q_vals = rows[is_q], cols[is_q], vals[is_q]
    # Gallery entries grouped by column: the inverted index of the paper.
    g_cols, order = torch.sort(cols[~is_q], stable=True)
    g_rows, g_vals = rows[~is_q][order] - nq, vals[~is_q][order]
    count = torch.bincount(g_cols, minlength=n)
    start = count.cumsum(0) - count
    pairs = count[q_cols]
    ends = pairs.cumsum(0)
    e0 = 0
    while e0 < q_rows.shape[0]:
        # Query entries whose joined pairs fit in max_pairs (at least one).
        base = int(ends[e0 - 1]) if e0 else 0
        e1 = int(torch.searchsorted(ends, base + max_pairs, right=True))
        e1 = max(e1, e0 + 1)
        p = pairs[e0:e1]
        owner = torch.repeat_interleave(torch.arange(e0, e1, device=p.device), p)
        first = ends[owner] - pairs[owner]
        pos = torch.arange(base, base + owner.shape[0], device=p.device) - first
        g = start[q_cols[owner]] + pos
        S.index_add_(0, q_rows[owner] * ng + g_rows[g],
                     torch.minimum(q_vals[owner], g_vals[g]))
        e0 = e1
    return S.view(nq, ng)


def rerank_nbytes(n_query, n_gallery, itemsize):
    """Bytes the re-ranking allocates besides its inputs (an upper estimate).

    Two (n_query, n_gallery) arrays (the Jaccard term and the result), one
    block of joint rows and the sparse neighbourhood vectors.
    """
    n = n_query + n_gallery
    return 2 * n_query * n_gallery * itemsize + get_config()["working_memory"] * 2**20 \
        + n * 1024 * 8


def _rerank_tensor(q_g, q_q, g_g, k1, k2, lambda_value):
    """Validated tensors in (possibly on other devices or dtypes), tensor out."""
    nq, ng = q_g.shape
    n = nq + ng
    dtype = torch.promote_types(torch.promote_types(q_g.dtype, q_q.dtype), g_g.dtype)
    itemsize = torch.empty((), dtype=dtype).element_size()
    # Inputs moved to the device of q_g or converted to the common dtype are
    # copies: count them too.
    copied = sum(X.numel() for X in (q_g, q_q, g_g)
                 if X.device != q_g.device or X.dtype != dtype)
    check_memory(rerank_nbytes(nq, ng, itemsize) + copied * itemsize, q_g.device,
                 f"k_reciprocal_rerank on {nq} queries + {ng} gallery items")
    q_g, q_q, g_g = (X.to(q_g.device, dtype) for X in (q_g, q_q, g_g))
    joint = _JointDistances(q_g, q_q, g_g)
    kh = round(k1 / 2)  # half-to-even, as numpy.around in the authors' code
    step = rows_per_block(n, 8, q_g.device, n_buffers=4)
    knn = _stable_knn(joint, min(n, max(k1 + 1, k2)), step)
    F, Fh = knn[:, :k1 + 1], knn[:, :kh + 1]
    cols, w = _expanded_weights(joint, F, _reciprocal(F), Fh, _reciprocal(Fh))
    if k2 != 1:
        rows, cols, vals = _query_expansion(cols, w, knn, k2)
    else:
        used = cols < n
        rows = torch.arange(n, device=q_g.device)[:, None].expand_as(cols)[used]
        cols, vals = cols[used], w[used]
    max_pairs = rows_per_block(1, 24, q_g.device)  # index, row and value per pair
    S = _jaccard_similarity(rows, cols, vals, nq, n, max_pairs)
    # (1 - lambda) * (1 - S / (2 - S)) + lambda * original, with one temporary.
    out = S.div_(2.0 - S).neg_().add_(1.0).mul_(1.0 - lambda_value)
    original = q_g.square().div_(joint.row_max[:nq, None])
    return out.add_(original, alpha=lambda_value)


def _check_rerank_inputs(q_g_dist, q_q_dist, g_g_dist):
    q_g = check_matrix(q_g_dist, "q_g_dist")
    nq, ng = q_g.shape
    q_q = check_matrix(q_q_dist, "q_q_dist")
    g_g = check_matrix(g_g_dist, "g_g_dist")
    for name, X, want in (("q_q_dist", q_q, (nq, nq)), ("g_g_dist", g_g, (ng, ng))):
        if tuple(X.shape) != want:
            raise ValueError(
                f"{name} must have shape {want} to match q_g_dist of shape "
                f"{(nq, ng)}, got {tuple(X.shape)}."
            )
    return q_g, q_q, g_g


@validate_params(
    {
        "q_g_dist": ["array-like"],
        "q_q_dist": ["array-like"],
        "g_g_dist": ["array-like"],
        "k1": [Interval(Integral, 1, None, closed="left")],
        "k2": [Interval(Integral, 1, None, closed="left")],
        "lambda_value": [Interval(Real, 0, 1, closed="both")],
    },
    prefer_skip_nested_validation=True,
)
def k_reciprocal_rerank(q_g_dist, q_q_dist, g_g_dist, *, k1=20, k2=6,
                        lambda_value=0.3):
    """Re-rank a query x gallery distance matrix with k-reciprocal encoding.

    The re-ranking of Zhong et al. (CVPR 2017): two samples are close when
    their k-reciprocal nearest-neighbour sets, weighted by distance and
    expanded, overlap (Jaccard distance); the result mixes that Jaccard
    distance with the original one.

    Parameters
    ----------
    q_g_dist : array-like or torch.Tensor of shape (n_query, n_gallery)
        Query-to-gallery distances.
    q_q_dist : array-like or torch.Tensor of shape (n_query, n_query)
        Query-to-query distances.
    g_g_dist : array-like or torch.Tensor of shape (n_gallery, n_gallery)
        Gallery-to-gallery distances.
    k1 : int, default=20
        Size of the k-reciprocal neighbourhoods (the paper's :math:`k_1`).
    k2 : int, default=6
        Neighbours averaged in the local query expansion (:math:`k_2`);
        1 turns it off.
    lambda_value : float, default=0.3
        Weight :math:`\\lambda` of the original distance in the result.

    Returns
    -------
    distmat : ndarray of shape (n_query, n_gallery)
        Re-ranked distances, in the floating dtype of the inputs (float64 if
        any input is float64). A smaller value is a better match.

    Raises
    ------
    MemoryError
        Before any work, when the joint matrix does not fit (see Notes).

    See Also
    --------
    evaluate_features : with ``rerank=True``, re-ranks before evaluating.

    Notes
    -----
    As in the authors' code, the distances are **squared** and each row of
    the joint (query + gallery) matrix is divided by its maximum before use,
    so the input scale does not matter but a monotone transform of the input
    (squared or not) does. ``q_q_dist`` and ``g_g_dist`` are taken to be
    symmetric (the authors' code normalises columns, then transposes: the
    same for symmetric matrices).

    Memory: the three inputs hold :math:`(n_q + n_g)^2 - n_q n_g` entries
    (the joint matrix is read from them block by block, never built). The
    function adds two :math:`n_q \\times n_g` arrays, a block of rows and
    the sparse neighbourhood vectors (:math:`O((n_q + n_g) k_1^2)`), plus a
    copy of any input that is on another device or of another dtype than
    ``q_g_dist``: the work happens on the device of ``q_g_dist``.
    Market-1501 in float32 (3,368 + 15,913 samples): 1.2 GB of inputs and
    0.45 GB more. A ``MemoryError`` naming the figures is raised before any
    allocation when that does not fit.

    Ties between equal distances are broken by sample index (queries first),
    so the result is deterministic.

    References
    ----------
    Z. Zhong, L. Zheng, D. Cao, S. Li, "Re-ranking Person Re-identification
    with k-reciprocal Encoding", CVPR 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ecluster.metrics import k_reciprocal_rerank, reid_distances
    >>> rng = np.random.default_rng(0)
    >>> q, g = rng.normal(size=(3, 4)), rng.normal(size=(6, 4))
    >>> d = k_reciprocal_rerank(reid_distances(q, g), reid_distances(q, q),
    ...                         reid_distances(g, g), k1=3, k2=2)
    >>> d.shape
    (3, 6)
    >>> bool(((d >= 0) & (d <= 1)).all())
    True
    """
    q_g, q_q, g_g = _check_rerank_inputs(q_g_dist, q_q_dist, g_g_dist)
    return to_numpy(_rerank_tensor(q_g, q_q, g_g, int(k1), int(k2), float(lambda_value)))
