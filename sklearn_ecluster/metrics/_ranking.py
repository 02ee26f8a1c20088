"""The Market-1501 ranking protocol: CMC, mAP and mINP (SPEC section 8).

The protocol is torchreid's ``eval_market1501`` plus fast-reid's mINP. All
three metrics follow from the ranks of each query's *positives* (same person,
other camera) once the *junk* (same person, same camera) is removed from the
gallery. The kernel computes those ranks for a block of queries at once,
without a loop over queries and without sorting the gallery:

1. the gallery items of the query's person (its *members*: positives and
   junk) come from an inverted index of the gallery person ids;
2. the rank of a member is one plus the number of gallery items before it in
   (distance, gallery index) order, minus the junk before it. That count is
   a histogram count over distance buckets (monotone in the distance), plus
   an exact comparison with the few items that share the member's bucket.

A full sort of every gallery row, the obvious implementation, costs several
times more than the query x gallery distances themselves. The result is the
one of a *stable* sort: items at equal distance are ranked by gallery index.
"""

import math
import threading
import warnings
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from sklearn import get_config
from threadpoolctl import threadpool_limits

from ..utils import rows_per_block
from ._validation import check_positive_int, check_reid_inputs

# Per-query results; entries of invalid queries are meaningless.
_QueryScores = namedtuple("_QueryScores", "valid first_rank ap inp n_gallery")

# Upper bound (MiB) on the work arrays of one block of query rows; more
# rows per block were measured to be slower on the CPU (cache).
_BLOCK_MIB = 16
# Fewer buckets make the histogram cheaper and the exact comparisons dearer.
_ITEMS_PER_BUCKET = 2


def _gallery_index(g_pids):
    """Inverted index: gallery positions grouped by person id."""
    pids, counts = torch.unique(g_pids, sorted=True, return_counts=True)
    order = torch.sort(g_pids, stable=True).indices
    return pids, counts.cumsum(0) - counts, counts, order


def _members(q_pids, index):
    """Gallery positions of each query's person, padded with its first one.

    Returns ``mem`` (n, width) and the mask of the real entries.
    """
    pids, start, counts, order = index
    code = torch.searchsorted(pids, q_pids).clamp_(max=pids.shape[0] - 1)
    n_mem = torch.where(pids[code] == q_pids, counts[code], 0)
    width = max(1, int(n_mem.max()))
    slot = torch.arange(width, device=q_pids.device)
    real = slot < n_mem[:, None]
    # Padding repeats the first member, so it adds no bucket of its own.
    pos = start[code][:, None] + torch.where(real, slot, 0)
    return order[pos.clamp_(max=order.shape[0] - 1)], real


class _Buffers:
    """Work arrays reused from block to block.

    Fresh multi-megabyte arrays for every block cost page faults that were
    measured to dominate the kernel; the last block uses views.
    """

    def __init__(self, n_rows, n_cols, n_buckets, dtype, device):
        self.n_buckets = n_buckets
        self.scaled = torch.empty((n_rows, n_cols), dtype=dtype, device=device)
        self.bucket = torch.empty((n_rows, n_cols), dtype=torch.int64, device=device)
        self.flag = torch.empty((n_rows, n_cols), dtype=torch.bool, device=device)
        self.hist = torch.empty((n_rows, n_buckets), dtype=torch.int64, device=device)
        self.cum = torch.empty_like(self.hist)
        self.occupied = torch.empty((n_rows, n_buckets), dtype=torch.bool,
                                    device=device)
        self.ones = torch.ones((), dtype=torch.int64, device=device)


def _count_before(d, mem, buf, max_pairs):
    """Number of entries of each row before each member, in (distance, index) order."""
    n = d.shape[0]
    n_buckets = buf.n_buckets
    lo, hi = torch.aminmax(d)
    span = float(hi - lo)
    t = torch.sub(d, lo, out=buf.scaled[:n])
    if 0.0 < span < math.inf:
        t.mul_((n_buckets - 1) / span)
    else:  # constant rows (or an overflowing span): one bucket
        t.zero_()
    # Subtraction, scaling, clamping and truncation are each monotone, so a
    # lower bucket always means a strictly smaller distance.
    u = buf.bucket[:n].copy_(t.clamp_(0, n_buckets - 1))
    hist = buf.hist[:n].zero_()
    hist.scatter_add_(1, u, buf.ones.expand(u.shape))
    cum = torch.cumsum(hist, 1, out=buf.cum[:n])
    u_mem = u.gather(1, mem)
    count = cum.gather(1, u_mem) - hist.gather(1, u_mem)  # in lower buckets
    # Entries sharing a member's bucket are compared exactly.
    occupied = buf.occupied[:n].zero_().scatter_(1, u_mem, True)
    flag = torch.gather(occupied, 1, u, out=buf.flag[:n])
    rows, cols = flag.nonzero(as_tuple=True)
    d_mem = d.gather(1, mem)
    step = max(1, max_pairs // mem.shape[1])
    for c0 in range(0, rows.shape[0], step):
        r, i = rows[c0:c0 + step], cols[c0:c0 + step]
        dr, dm = d[r, i][:, None], d_mem[r]
        before = (u[r, i][:, None] == u_mem[r]) & (
            (dr < dm) | ((dr == dm) & (i[:, None] < mem[r])))
        count.index_add_(0, r, before.to(torch.int64))
    return count, d_mem


def _block_scores(d, mem, real, is_junk, buf, max_pairs):
    """AP, INP, first-match rank and validity of a block of query rows."""
    count, d_mem = _count_before(d, mem, buf, max_pairs)
    # Members in (distance, index) order, padding last.
    key_i = torch.where(real, mem, d.shape[1])
    key_d = torch.where(real, d_mem, torch.inf)
    order = torch.sort(key_i, dim=1).indices
    order = order.gather(1, torch.sort(key_d.gather(1, order), dim=1,
                                       stable=True).indices)
    count, real, is_junk = (t.gather(1, order) for t in (count, real, is_junk))
    junk = real & is_junk
    pos = real & ~is_junk
    junk_before = junk.cumsum(1) - junk.to(torch.int64)
    rank = (count - junk_before + 1).to(torch.float64)
    hits = pos.cumsum(1).to(torch.float64)
    n_pos = pos.sum(1)
    valid = n_pos > 0
    n = n_pos.clamp(min=1).to(torch.float64)
    ap = torch.where(pos, hits / rank, 0.0).sum(1) / n
    last = torch.where(pos, rank, 0.0).amax(1)
    inp = n_pos / last.clamp(min=1.0)
    first = torch.where(pos, rank, math.inf).amin(1)
    first = torch.where(valid, first, 0.0).to(torch.int64)
    return valid, first, ap, inp


def _query_scores(distmat, q_pids, g_pids, q_camids, g_camids):
    """Validate, then score every query; see the module docstring."""
    D, qp, gp, qc, gc = check_reid_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    nq, ng = D.shape
    index = _gallery_index(gp)
    if D.device.type == "cuda":  # a quarter of the free memory, one stream
        working_memory, n_workers = None, 1
    else:
        working_memory = min(_BLOCK_MIB, get_config()["working_memory"])
        n_workers = torch.get_num_threads()
    max_pairs = rows_per_block(1, 8, D.device, working_memory, n_buffers=8)
    # About 24 bytes of work arrays per (query, gallery) entry of a block.
    step = min(nq, rows_per_block(ng, 8, D.device, working_memory, n_buffers=3))
    starts = range(0, nq, step)
    results = [None] * len(starts)
    claim = _BlockCounter(len(starts))

    def score_blocks():
        buf = _Buffers(step, ng, max(1, ng // _ITEMS_PER_BUCKET), D.dtype, D.device)
        while (b := claim()) is not None:
            r0, r1 = starts[b], min(nq, starts[b] + step)
            mem, real = _members(qp[r0:r1], index)
            is_junk = gc[mem] == qc[r0:r1, None]
            results[b] = _block_scores(D[r0:r1], mem, real, is_junk, buf, max_pairs)

    n_workers = min(n_workers, len(starts))
    if n_workers == 1:
        score_blocks()
    else:
        _run_workers(score_blocks, n_workers)
    valid, first, ap, inp = (torch.cat(t).cpu().numpy() for t in zip(*results))
    return _QueryScores(valid, first, ap, inp, ng)


class _BlockCounter:
    """Hands out block numbers 0, 1, ... to worker threads, then None."""

    def __init__(self, n_blocks):
        self._next, self._n, self._lock = 0, n_blocks, threading.Lock()

    def __call__(self):
        with self._lock:
            b, self._next = self._next, self._next + 1
        return b if b < self._n else None


def _run_workers(fn, n_workers):
    """Run ``fn`` in ``n_workers`` threads, each with single-threaded torch ops.

    The kernel is a chain of short, memory-bound torch operations. Given
    to torch's intra-op threads, each of them ends in a barrier, and when
    another process holds one of the cores every barrier waits for it:
    measured on 2 cores beside a busy process, 9.6 s instead of 0.43 s for a
    Market-1501-sized evaluation. Threads that take whole blocks, each
    running torch on one thread, share the work without barriers.
    """

    def worker():
        # OpenMP thread limits are per thread: this leaves the caller alone.
        with threadpool_limits(1, user_api="openmp"):
            fn()

    with ThreadPoolExecutor(n_workers) as pool:
        for future in [pool.submit(worker) for _ in range(n_workers)]:
            future.result()


def _valid_scores(scores):
    """Keep the valid queries; raise when there is none."""
    if not scores.valid.any():
        raise ValueError(
            "No valid query: no query has a gallery item with the same person "
            "id (q_pids/g_pids) seen from another camera (q_camids/g_camids), "
            "so CMC, mAP and mINP are undefined. Check that the ids and cameras "
            "of the query and the gallery use the same numbering."
        )
    v = scores.valid
    return _QueryScores(v[v], scores.first_rank[v], scores.ap[v], scores.inp[v],
                        scores.n_gallery)


def _clip_max_rank(max_rank, n_gallery):
    """Cut ``max_rank`` to the gallery size with a warning, as torchreid does."""
    if n_gallery < max_rank:
        warnings.warn(
            f"The gallery has only {n_gallery} items, fewer than max_rank="
            f"{max_rank}; the CMC curve is truncated at rank {n_gallery}.",
            UserWarning,
            stacklevel=3,
        )
        max_rank = n_gallery
    return max_rank


def _cmc_from_first_ranks(first_rank, max_rank):
    """CMC from the rank of each valid query's first correct match."""
    # Ranks beyond max_rank land in one overflow bin that is dropped.
    hist = np.bincount(np.minimum(first_rank, max_rank + 1) - 1,
                       minlength=max_rank + 1)[:max_rank]
    return np.cumsum(hist) / first_rank.shape[0]


def cmc_curve(distmat, q_pids, g_pids, q_camids, g_camids, *, max_rank=50):
    """Cumulative matching characteristic (CMC) of a re-ID ranking.

    ``cmc[k - 1]`` is the fraction of valid queries whose first correct match
    is within the first ``k`` gallery items (the rank-k accuracy), once the
    gallery items of the query's own person *and* camera are removed.

    Parameters
    ----------
    distmat : array-like or torch.Tensor of shape (n_query, n_gallery)
        Query-to-gallery distances; smaller is closer. A tensor is evaluated
        on its device.
    q_pids : array-like of shape (n_query,)
        Person ids of the queries (integers).
    g_pids : array-like of shape (n_gallery,)
        Person ids of the gallery; distractors (for instance id 0 in
        Market-1501) simply never match a query.
    q_camids : array-like of shape (n_query,)
        Camera ids of the queries (integers).
    g_camids : array-like of shape (n_gallery,)
        Camera ids of the gallery.
    max_rank : int, default=50
        Length of the curve. When the gallery is smaller, the curve stops at
        ``n_gallery`` and a ``UserWarning`` is issued (as torchreid does).

    Returns
    -------
    cmc : ndarray of shape (max_rank,)
        Non-decreasing, in [0, 1].

    Raises
    ------
    ValueError
        If no query has a positive (same person, other camera) in the
        gallery, or on bad shapes or values.

    See Also
    --------
    evaluate_reid : CMC, mAP and mINP in one pass.

    Notes
    -----
    The gallery is sorted by distance with a *stable* sort: items at equal
    distance are ranked by their gallery index. Queries without a positive are
    skipped, and the curve is the mean over the remaining (valid) queries.
    The user guide (:ref:`evaluation`) gives the formulas.

    Examples
    --------
    >>> from sklearn_ecluster.metrics import cmc_curve
    >>> distmat = [[0.5, 0.1, 0.2, 0.4],
    ...            [0.3, 0.9, 0.1, 0.6]]
    >>> q_pids, g_pids = [1, 2], [1, 1, 2, 2]
    >>> q_camids, g_camids = [0, 0], [1, 0, 1, 1]
    >>> cmc_curve(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=3)
    array([0.5, 0.5, 1. ])
    """
    max_rank = check_positive_int(max_rank, "max_rank")
    scores = _query_scores(distmat, q_pids, g_pids, q_camids, g_camids)
    max_rank = _clip_max_rank(max_rank, scores.n_gallery)
    scores = _valid_scores(scores)
    return _cmc_from_first_ranks(scores.first_rank, max_rank)


def rank_k_score(distmat, q_pids, g_pids, q_camids, g_camids, *, k=1):
    """Rank-k accuracy: fraction of valid queries matched within the top ``k``.

    Equal to ``cmc_curve(...)[k - 1]`` (for ``k <= n_gallery``).

    Parameters
    ----------
    distmat : array-like or torch.Tensor of shape (n_query, n_gallery)
        Query-to-gallery distances; smaller is closer.
    q_pids : array-like of shape (n_query,)
        Person ids of the queries.
    g_pids : array-like of shape (n_gallery,)
        Person ids of the gallery.
    q_camids : array-like of shape (n_query,)
        Camera ids of the queries.
    g_camids : array-like of shape (n_gallery,)
        Camera ids of the gallery.
    k : int, default=1
        Rank cut-off (1 for rank-1).

    Returns
    -------
    score : float
        In [0, 1].

    See Also
    --------
    cmc_curve : every rank-k at once.

    Examples
    --------
    >>> from sklearn_ecluster.metrics import rank_k_score
    >>> distmat = [[0.5, 0.1, 0.2, 0.4],
    ...            [0.3, 0.9, 0.1, 0.6]]
    >>> rank_k_score(distmat, [1, 2], [1, 1, 2, 2], [0, 0], [1, 0, 1, 1], k=1)
    0.5
    """
    k = check_positive_int(k, "k")
    scores = _valid_scores(_query_scores(distmat, q_pids, g_pids, q_camids, g_camids))
    return float(np.mean(scores.first_rank <= k))


def mean_average_precision_score(distmat, q_pids, g_pids, q_camids, g_camids):
    """Mean average precision (mAP) of a re-ID ranking.

    For one query, AP is the mean, over its positives, of the precision at
    the rank of that positive (hits up to and including it / its rank), after
    the items of the query's own person and camera are removed.

    Parameters
    ----------
    distmat : array-like or torch.Tensor of shape (n_query, n_gallery)
        Query-to-gallery distances; smaller is closer.
    q_pids : array-like of shape (n_query,)
        Person ids of the queries.
    g_pids : array-like of shape (n_gallery,)
        Person ids of the gallery.
    q_camids : array-like of shape (n_query,)
        Camera ids of the queries.
    g_camids : array-like of shape (n_gallery,)
        Camera ids of the gallery.

    Returns
    -------
    score : float
        Mean AP over the valid queries, in [0, 1].

    See Also
    --------
    evaluate_reid : CMC, mAP and mINP in one pass.

    Notes
    -----
    On the same ranking, the AP of one query equals
    :func:`sklearn.metrics.average_precision_score` with the junk removed.
    Ties in distance are broken by gallery index (stable sort).

    Examples
    --------
    >>> from sklearn_ecluster.metrics import mean_average_precision_score
    >>> distmat = [[0.5, 0.1, 0.2, 0.4],
    ...            [0.3, 0.9, 0.1, 0.6]]
    >>> score = mean_average_precision_score(
    ...     distmat, [1, 2], [1, 1, 2, 2], [0, 0], [1, 0, 1, 1])
    >>> round(score, 4)  # (1/3 + (1/1 + 2/3) / 2) / 2
    0.5833
    """
    scores = _valid_scores(_query_scores(distmat, q_pids, g_pids, q_camids, g_camids))
    return float(np.mean(scores.ap))


def mean_inp_score(distmat, q_pids, g_pids, q_camids, g_camids):
    """Mean inverse negative penalty (mINP) of a re-ID ranking (fast-reid).

    For one query, INP is its number of positives divided by the rank of its
    last (hardest) positive, after the items of the query's own person and
    camera are removed: 1 when all positives come first.

    Parameters
    ----------
    distmat : array-like or torch.Tensor of shape (n_query, n_gallery)
        Query-to-gallery distances; smaller is closer.
    q_pids : array-like of shape (n_query,)
        Person ids of the queries.
    g_pids : array-like of shape (n_gallery,)
        Person ids of the gallery.
    q_camids : array-like of shape (n_query,)
        Camera ids of the queries.
    g_camids : array-like of shape (n_gallery,)
        Camera ids of the gallery.

    Returns
    -------
    score : float
        Mean INP over the valid queries, in [0, 1].

    References
    ----------
    M. Ye et al., "Deep Learning for Person Re-identification: A Survey and
    Outlook", TPAMI 2021 (section 4.1, mINP).

    Examples
    --------
    >>> from sklearn_ecluster.metrics import mean_inp_score
    >>> distmat = [[0.5, 0.1, 0.2, 0.4],
    ...            [0.3, 0.9, 0.1, 0.6]]
    >>> score = mean_inp_score(distmat, [1, 2], [1, 1, 2, 2], [0, 0], [1, 0, 1, 1])
    >>> round(score, 4)  # (1/3 + 2/3) / 2
    0.5
    """
    scores = _valid_scores(_query_scores(distmat, q_pids, g_pids, q_camids, g_camids))
    return float(np.mean(scores.inp))


def evaluate_reid(distmat, q_pids, g_pids, q_camids, g_camids, *, max_rank=50):
    """Market-1501 evaluation of a distance matrix: CMC, rank-k, mAP, mINP.

    One pass over the queries gives every metric of the protocol (SPEC
    section 8: torchreid's ``eval_market1501`` plus fast-reid's mINP).

    Parameters
    ----------
    distmat : array-like or torch.Tensor of shape (n_query, n_gallery)
        Query-to-gallery distances; smaller is closer. A tensor is evaluated
        on its device.
    q_pids : array-like of shape (n_query,)
        Person ids of the queries.
    g_pids : array-like of shape (n_gallery,)
        Person ids of the gallery.
    q_camids : array-like of shape (n_query,)
        Camera ids of the queries.
    g_camids : array-like of shape (n_gallery,)
        Camera ids of the gallery.
    max_rank : int, default=50
        Length of the CMC curve (cut to ``n_gallery`` with a warning).

    Returns
    -------
    results : dict
        ``"rank1"``, ``"rank5"``, ``"rank10"``, ``"mAP"``, ``"mINP"``: floats
        in [0, 1]; ``"cmc"``: ndarray of shape (max_rank,);
        ``"n_valid_queries"``: int, the queries with at least one positive.

    Raises
    ------
    ValueError
        If no query is valid, or on bad shapes or values.

    See Also
    --------
    evaluate_features : the same report, from features.

    Notes
    -----
    The rank-k entries are computed from the first-match ranks directly, so
    they are defined even when ``max_rank < 10``. Items at equal distance are
    ranked by gallery index (stable sort).

    Examples
    --------
    >>> from sklearn_ecluster.metrics import evaluate_reid
    >>> distmat = [[0.5, 0.1, 0.2, 0.4],
    ...            [0.3, 0.9, 0.1, 0.6]]
    >>> res = evaluate_reid(distmat, [1, 2], [1, 1, 2, 2], [0, 0], [1, 0, 1, 1],
    ...                     max_rank=4)
    >>> res["rank1"], round(res["mAP"], 4), round(res["mINP"], 4)
    (0.5, 0.5833, 0.5)
    >>> res["cmc"], res["n_valid_queries"]
    (array([0.5, 0.5, 1. , 1. ]), 2)
    """
    max_rank = check_positive_int(max_rank, "max_rank")
    scores = _query_scores(distmat, q_pids, g_pids, q_camids, g_camids)
    max_rank = _clip_max_rank(max_rank, scores.n_gallery)
    scores = _valid_scores(scores)
    first = scores.first_rank
    return {
        "rank1": float(np.mean(first <= 1)),
        "rank5": float(np.mean(first <= 5)),
        "rank10": float(np.mean(first <= 10)),
        "mAP": float(np.mean(scores.ap)),
        "mINP": float(np.mean(scores.inp)),
        "cmc": _cmc_from_first_ranks(first, max_rank),
        "n_valid_queries": int(first.shape[0]),
    }
