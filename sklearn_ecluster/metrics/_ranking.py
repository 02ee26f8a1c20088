"""The Market-1501 ranking protocol: CMC, mAP and mINP (SPEC section 8).

The protocol is torchreid's ``eval_market1501`` plus fast-reid's mINP. All
three metrics follow from the ranks of each query's *positives* (same person,
other camera) once the *junk* (same person, same camera) is removed from the
gallery. The kernel computes those ranks for a block of queries at once,
without a loop over queries and without sorting the gallery:

1. the gallery items of the query's person (its *members*: positives and
   junk) come from an inverted index of the gallery person ids;
2. only the entries of a row up to its last positive can precede a
   positive: they are selected (for a usable model, a small part of the
   gallery);
3. the rank of a member is one plus the number of selected entries before
   it in (distance, gallery index) order, minus the junk before it. That
   count is a histogram count over distance buckets (monotone in the
   distance), plus an exact comparison with the few entries that share the
   member's bucket.

A full sort of every gallery row, the obvious implementation, costs several
times more than the query x gallery distances themselves. The result is the
one of a *stable* sort: items at equal distance are ranked by gallery index.
"""

import math
import threading
import warnings
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral

import numpy as np
import torch
from sklearn import get_config
from threadpoolctl import threadpool_limits

from ..utils import rows_per_block
from ..utils._sklearn import Interval, validate_params
from ._validation import REID_CONSTRAINTS, check_reid_inputs

# Per-query results; entries of invalid queries are meaningless.
_QueryScores = namedtuple("_QueryScores", "valid first_rank ap inp n_gallery")

# Upper bound (MiB) on the work arrays of one block of query rows (CPU);
# 8 to 64 measured within 10% of each other.
_BLOCK_MIB = 48
# Selected entries per histogram bucket: fewer buckets make the histogram
# cheaper and the exact comparisons dearer (1 to 16 measured within 20%).
_ITEMS_PER_BUCKET = 4


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
    # Padding repeats the first member (a valid index; masked by ``real``).
    pos = start[code][:, None] + torch.where(real, slot, 0)
    return order[pos.clamp_(max=order.shape[0] - 1)], real


class _Buffers:
    """Work arrays reused from block to block.

    Fresh multi-megabyte arrays for every block cost page faults that were
    measured to dominate the kernel; the last block uses views.
    """

    def __init__(self, n_rows, n_cols, device):
        n_bins = n_rows * max(1, n_cols // _ITEMS_PER_BUCKET)
        self.mask = torch.empty((n_rows, n_cols), dtype=torch.bool, device=device)
        # int32 counts: the row-wise cumulative sum of int64 was measured
        # 5-10 times slower on the CPU.
        self.hist = torch.empty(n_bins, dtype=torch.int32, device=device)
        self.occupied = torch.empty(n_bins, dtype=torch.bool, device=device)
        self.ones = torch.ones((), dtype=torch.int32, device=device)


def _flatnonzero(mask):
    """Flat indices of the True entries of a contiguous mask, in increasing order."""
    if mask.device.type == "cpu":
        # NumPy's flatnonzero was measured 5-7 times faster than torch's.
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return mask.view(-1).nonzero().view(-1)


def _entries_up_to(d, last, out):
    """Flat indices and rows of the entries of ``d`` at most ``last`` of their row."""
    n, ng = d.shape
    if d.device.type == "cpu":
        # NumPy's comparison and flatnonzero were measured 5-7 times faster
        # than torch's.
        flat = np.flatnonzero(np.less_equal(d.numpy(), last.numpy()[:, None],
                                            out=out.numpy()))
        return torch.from_numpy(flat), torch.from_numpy(flat // ng)
    flat = torch.le(d, last[:, None], out=out).view(-1).nonzero().view(-1)
    return flat, torch.div(flat, ng, rounding_mode="floor")


def _take(x, index):
    """``x.view(-1)[index]``; index_select was measured 4x faster on the CPU."""
    return x.view(-1).index_select(0, index)


def _bucket_scale(lo, hi, n_buckets):
    """Per-row factor that maps ``[lo, hi]`` onto buckets ``0 .. n_buckets - 1``.

    ``lo`` is a scalar tensor at most every value of the block, ``hi`` (n,)
    the largest value of each row (``-inf`` for a row without values), both
    already halved when ``hi - lo`` overflows (see :func:`_positions`).
    """
    span = torch.where(hi > -torch.inf, hi - lo, 0.0)
    # A constant row (span 0) or a subnormal span: the clamps keep the
    # scale finite, and every value of the row at 0 or in the range above.
    span = span.to(torch.float64).clamp_(min=torch.finfo(torch.float64).tiny)
    return torch.div(n_buckets - 1, span).clamp_(max=torch.finfo(hi.dtype).max).to(
        hi.dtype)


def _bucket_keys(v, rows, lo, scale, n_buckets):
    """Key ``row * n_buckets + bucket`` of values ``v`` of rows ``rows``.

    Subtraction, multiplication by a positive number and truncation are each
    monotone (rounding included), so within a row a lower bucket always
    means a strictly smaller value; and for ``lo <= v <= hi``,
    ``rnd(v - lo) <= rnd(hi - lo) = span``, while ``span * rnd((n_buckets -
    1) / span)`` exceeds ``n_buckets - 1`` by a few rounding errors only,
    so the buckets are ``0 .. n_buckets - 1``. Elementwise IEEE arithmetic:
    the same value in the same row always gets the same key.
    """
    t = torch.sub(v, lo).mul_(_take(scale, rows))
    return t.to(torch.int64).add_(rows, alpha=n_buckets)  # truncation


def _positions(d, mem, needed, last, buf):
    """Positions of members in their row's (distance, gallery index) order.

    ``d`` is a contiguous block of rows, ``mem`` (n, width) gallery indices,
    ``needed`` the members to place; every one of them, and every entry that
    can precede it, is at most ``last`` (n,) of its row. The others get
    ``n_gallery``. A member's position is the number of entries in lower
    buckets of a histogram of the row, plus the entries that share its
    bucket and come before it, compared exactly.
    """
    n, ng = d.shape
    width = mem.shape[1]
    dev = d.device
    # Only the entries up to ``last`` matter: the rest come after every
    # needed member (for a usable model, most of the gallery).
    flat, rows = _entries_up_to(d, last, buf.mask[:n])
    if flat.shape[0] == 0:  # no row with a positive
        return torch.full((n, width), ng, dtype=torch.int64, device=dev)
    v = _take(d, flat)
    lo = v.amin()
    if bool(torch.isinf(last.amax() - lo)):  # overflow: halve all (monotone)
        v, lo, last, d = v * 0.5, lo * 0.5, last * 0.5, d * 0.5
    n_buckets = max(1, flat.shape[0] // (n * _ITEMS_PER_BUCKET))
    scale = _bucket_scale(lo, last, n_buckets)
    key = _bucket_keys(v, rows, lo, scale, n_buckets)
    hist = buf.hist[:n * n_buckets].zero_()
    hist.index_add_(0, key, buf.ones.expand(key.shape))
    below = torch.cumsum(hist.view(n, n_buckets), 1, dtype=torch.int32).view(-1) - hist
    # The needed members, keyed as the entries they are.
    slot = _flatnonzero(needed)  # member slots, row-major
    m_row = torch.div(slot, width, rounding_mode="floor")
    m_flat = m_row * ng + _take(mem, slot)
    m_d = _take(d, m_flat)
    m_key = _bucket_keys(m_d, m_row, lo, scale, n_buckets)
    position = torch.full((n * width,), ng, dtype=torch.int64, device=dev)
    position[slot] = _take(below, m_key).to(torch.int64)
    # The entries sharing a bucket with a needed member (members included).
    occupied = buf.occupied[:n * n_buckets].zero_()
    occupied[m_key] = True
    cand = _flatnonzero(_take(occupied, key))
    e_key, e_flat, e_d = _take(key, cand), _take(flat, cand), _take(v, cand)
    # Each is compared with the members of its bucket only: members sorted
    # by key, the j-th pass compares each entry with the j-th member of its
    # bucket (one pass, unless several members share a bucket). Within a
    # row, the flat index orders as the gallery index.
    m_key, by_key = torch.sort(m_key)
    m_slot, m_flat, m_d = _take(slot, by_key), _take(m_flat, by_key), _take(m_d, by_key)
    first = torch.searchsorted(m_key, e_key)
    n_mem = m_key.shape[0]
    while e_key.shape[0]:
        same = _take(m_key, first.clamp(max=n_mem - 1)) == e_key
        same &= first < n_mem
        keep = _flatnonzero(same)
        first, e_key = _take(first, keep), _take(e_key, keep)
        e_d, e_flat = _take(e_d, keep), _take(e_flat, keep)
        md = _take(m_d, first)
        before = (e_d < md) | ((e_d == md) & (e_flat < _take(m_flat, first)))
        position.index_add_(0, _take(m_slot, first), before.to(torch.int64))
        first += 1
    return position.view(n, width)


def _block_scores(d, mem, real, is_junk, buf):
    """AP, INP, first-match rank and validity of a block of query rows."""
    pos = real & ~is_junk
    d_mem = d.gather(1, mem)
    # The last positive of each row (-inf when there is none): a member
    # after it changes nothing.
    last = torch.where(pos, d_mem, -torch.inf).amax(1)
    needed = real & (d_mem <= last[:, None])
    position = _positions(d, mem, needed, last, buf)
    # Members in ranking order, the others last; the positions of the
    # needed members are distinct, so no tie needs breaking.
    position, order = torch.sort(position, dim=1)
    pos, junk = pos.gather(1, order), (needed & is_junk).gather(1, order)
    junk_before = junk.cumsum(1) - junk.to(torch.int64)
    rank = (position - junk_before + 1).to(torch.float64)
    hits = pos.cumsum(1).to(torch.float64)
    n_pos = pos.sum(1)
    valid = n_pos > 0
    n = n_pos.clamp(min=1).to(torch.float64)
    ap = torch.where(pos, hits / rank, 0.0).sum(1) / n
    last_rank = torch.where(pos, rank, 0.0).amax(1)
    inp = n_pos / last_rank.clamp(min=1.0)
    first = torch.where(pos, rank, math.inf).amin(1)
    first = torch.where(valid, first, 0.0).to(torch.int64)
    return valid, first, ap, inp


def _query_scores(distmat, q_pids, g_pids, q_camids, g_camids):
    """Validate, then score every query; see the module docstring."""
    D, qp, gp, qc, gc = check_reid_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    D = D.contiguous()  # row blocks are read through flat views
    nq, ng = D.shape
    index = _gallery_index(gp)
    if D.device.type == "cuda":  # a quarter of the free memory, one stream
        working_memory, n_workers = None, 1
    else:
        working_memory = min(_BLOCK_MIB, get_config()["working_memory"])
        n_workers = torch.get_num_threads()
    # At most about 40 bytes of work arrays per (query, gallery) entry of a
    # block, when every entry is selected (indices, row, value, key, mask).
    step = min(nq, rows_per_block(ng, 8, D.device, working_memory, n_buffers=5))
    starts = range(0, nq, step)
    results = [None] * len(starts)
    claim = _BlockCounter(len(starts))

    def score_blocks():
        buf = _Buffers(step, ng, D.device)
        while (b := claim()) is not None:
            r0, r1 = starts[b], min(nq, starts[b] + step)
            mem, real = _members(qp[r0:r1], index)
            is_junk = gc[mem] == qc[r0:r1, None]
            results[b] = _block_scores(D[r0:r1], mem, real, is_junk, buf)

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


@validate_params(
    {**REID_CONSTRAINTS, "max_rank": [Interval(Integral, 1, None, closed="left")]},
    prefer_skip_nested_validation=True,
)
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
    scores = _query_scores(distmat, q_pids, g_pids, q_camids, g_camids)
    max_rank = _clip_max_rank(max_rank, scores.n_gallery)
    scores = _valid_scores(scores)
    return _cmc_from_first_ranks(scores.first_rank, max_rank)


@validate_params(
    {**REID_CONSTRAINTS, "k": [Interval(Integral, 1, None, closed="left")]},
    prefer_skip_nested_validation=True,
)
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
    scores = _valid_scores(_query_scores(distmat, q_pids, g_pids, q_camids, g_camids))
    return float(np.mean(scores.first_rank <= k))


@validate_params(REID_CONSTRAINTS, prefer_skip_nested_validation=True)
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


@validate_params(REID_CONSTRAINTS, prefer_skip_nested_validation=True)
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


@validate_params(
    {**REID_CONSTRAINTS, "max_rank": [Interval(Integral, 1, None, closed="left")]},
    prefer_skip_nested_validation=True,
)
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
