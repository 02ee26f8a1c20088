"""The reducible exact engine: rounds of reciprocal nearest neighbours (SPEC 6c).

For a reducible criterion (single, average, the weighted energy distance, all
without a regulariser) two clusters that are each other's nearest neighbour
stay so whatever else merges, so the greedy algorithm merges them sooner or
later: merging every such pair of a round at once gives the same dendrogram
(the argument behind the nearest-neighbour chain of fastcluster and the RAC
algorithm of Sumengen et al. 2021).

The engine turns the pair matrix into the criterion matrix D in place (one
pass), then updates D itself by the criterion's Lance-Williams form
(:meth:`~._criterion.Criterion.lance_williams`; average linkage keeps the
additive sums instead, for exact ties): a round costs one gather and minimum
per row whose neighbour merged, plus O(m K) for the m merged rows, the same
order of work as the nearest-neighbour chain, vectorised.

Exact ties need care, since the greedy order breaks them by the lowest
``(i, j)`` slot pair: a pair is merged in a round only when both rows have a
*unique* minimum; when no such pair exists the round merges the single pair
the greedy algorithm takes next. The merges are then put in the greedy order
(ascending criterion, ties by slots, children before parents), so every cut
of the sequence is the greedy clustering with that many merges.

The rounds themselves run in NumPy on the CPU (:mod:`._reducible_numpy`) and
in torch elsewhere (:mod:`._reducible_torch`); this module holds the state
they share, the dispatcher and the greedy order.
"""

import heapq

import numpy as np
import torch

from ._reducible_chain import chain_available, run_chain
from ._reducible_numpy import COMPACT_FRACTION, _rounds_numpy
from ._reducible_torch import _rounds_torch

INF = float("inf")


class _ReducibleState:
    """The pair values of the live clusters, with their sizes.

    Single linkage and the weighted energy keep the criterion matrix D itself,
    updated by the Lance-Williams form; average linkage keeps the pair sums
    S (additive, SPEC 5) and divides by ``n_a n_b`` when a row is read, so that
    its values are the correctly rounded quotients the tie rule relies on.
    Dead slots (merged away) hold +inf in their row and column until a
    compaction moves the live block to the front of the same buffer.
    """

    compact_fraction = COMPACT_FRACTION

    def __init__(self, state):
        pm, stats, criterion = state.pm, state.stats, state.criterion
        self.pm = pm
        self.criterion = criterion
        self.sums = criterion.linkage == "average"
        M = pm.matrix
        # singletons with zero within sums: D = d already (E_w({a}, {b}) = d(a, b),
        # single = d, to the bit), so the conversion pass is skipped
        trivial = bool((stats.sizes == 1).all()) and (
            stats.within is None or not bool(stats.within.any()))
        if not self.sums and not trivial:
            step = max(1, pm.block_rows(pm.width))
            for r0 in range(0, pm.width, step):  # S -> D in place, block by block
                r1 = min(pm.width, r0 + step)
                M[r0:r1] = criterion.block(M[r0:r1], slice(r0, r1), slice(None), stats,
                                           symmetric=True)
        M.fill_diagonal_(INF)
        self.sizes = stats.sizes.to(M.dtype).clone()
        self.alive = torch.ones(pm.width, dtype=torch.bool, device=M.device)

    @property
    def k(self):
        return int(self.alive.sum())

    def rows(self, rows):
        """Criterion values of ``rows`` against every slot (a copy)."""
        d = self.pm.matrix.index_select(0, rows)
        if self.sums:
            d /= self.sizes[rows].unsqueeze(1) * self.sizes.unsqueeze(0)
        return d

    def merge_pairs(self, lo, hi, d_ab):
        """Merge cluster ``hi[t]`` into ``lo[t]`` for every t (disjoint pairs).

        Returns the slots kept by a compaction (None when there was none).
        """
        M = self.pm.matrix
        n = self.sizes
        n_a, n_b = n[lo].unsqueeze(1), n[hi].unsqueeze(1)
        dab = d_ab.unsqueeze(1)
        if self.sums:  # S(A u B, K) = S(A, K) + S(B, K), twice for two new clusters
            new = M.index_select(0, lo).add_(M.index_select(0, hi))
            sub = new[:, lo] + new[:, hi]
        else:
            lw = self.criterion.lance_williams
            # by blocks of pairs: a first round merges up to N / 2 pairs, and
            # the two gathered rows of each were most of a second N x N buffer
            new = torch.empty((lo.numel(), M.shape[1]), dtype=M.dtype, device=M.device)
            step = max(1, self.pm.block_rows(M.shape[1], n_buffers=3))
            for p0 in range(0, lo.numel(), step):
                p = slice(p0, p0 + step)
                new[p] = lw(M.index_select(0, lo[p]), M.index_select(0, hi[p]), dab[p],
                            n_a[p], n_b[p], n.unsqueeze(0))
            # pairs of two new clusters: the update once more over the other side
            sub = lw(new[:, lo], new[:, hi], dab.T, n_a.T, n_b.T, n_a + n_b)
        sub = torch.triu(sub, 1) + torch.triu(sub, 1).T  # exactly symmetric
        new[:, lo] = sub
        new[:, hi] = INF
        new[torch.arange(lo.numel(), device=lo.device), lo] = INF
        # rows, then the same values as columns; the dead ones filled with +inf
        M.index_copy_(0, lo, new)
        M.index_fill_(0, hi, INF)
        M.index_copy_(1, lo, new.T)
        M.index_fill_(1, hi, INF)
        self.new_rows = new  # the merged clusters' rows, read by the cache next
        n[lo] += n[hi]
        self.alive[hi] = False
        w = self.alive.numel()
        if w - self.k < self.compact_fraction * w:
            return None
        keep = torch.nonzero(self.alive).squeeze(1)
        self.keep_only(keep)
        self.new_rows = new[:, keep]
        return keep

    def keep_only(self, keep):
        """Move the live slots ``keep`` (ascending) to the front of the buffer."""
        keep = keep.to(self.pm.storage.device)
        self.pm._compact(keep)
        self.sizes = self.sizes[keep]
        self.alive = torch.ones(keep.numel(), dtype=torch.bool, device=keep.device)


def build_exact_reducible(state, recorder, stop):
    """The exact greedy dendrogram of a reducible criterion.

    On the CPU the compiled nearest-neighbour chain (:func:`run_chain`) makes
    every merge it can prove is the greedy one, then (only after an exact
    tie) the NumPy rounds (:func:`_rounds_numpy`) finish; without the
    compiled kernel the rounds do it all, on the pair matrix's own memory.
    Elsewhere (CUDA) the rounds run in torch (:func:`_rounds_torch`). All
    paths give the same dendrogram, put in the greedy order at the end.
    """
    n_leaves = state.k
    q_max = stop.max_merges(n_leaves)
    rs = _ReducibleState(state)
    del state  # its statistics are not needed any more; D holds everything
    on_cpu = rs.pm.matrix.device.type == "cpu"
    finished, heights = False, None
    if on_cpu and chain_available(rs):
        heights, finished = run_chain(rs, recorder)
    if not finished:
        rounds = _rounds_numpy if on_cpu else _rounds_torch
        rounds(rs, recorder, stop, q_max, heights=heights)
    children = np.asarray(recorder.children, dtype=np.int64).reshape(-1, 2)
    distances = np.asarray(recorder.distances, dtype=np.float64)
    order = greedy_order(children, distances, n_leaves)
    threshold = stop.distance_threshold
    if threshold is not None:  # the chain builds the whole tree: cut it there
        above = np.flatnonzero(distances[order] >= threshold)
        q_max = min(q_max, int(above[0]) if above.size else q_max)
    recorder.replace_sequence(*_renumber(children, distances, order, n_leaves, q_max))


def greedy_order(children, distances, n_leaves):
    """Order of the merges that the greedy algorithm follows.

    The greedy algorithm takes the available merge (both children exist) of
    least ``(D, lo, hi)``, where ``lo < hi`` are the smallest leaves of the two
    children (a cluster's slot is its smallest leaf). When the plain sort by
    that key already puts children before parents (no ties against the tree
    order), it is the answer; else a heap over the available merges decides.
    """
    n = len(children)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    key = list(range(n_leaves))  # Python lists: scalar steps
    lo, hi = [0] * n, [0] * n
    for t, (a, b) in enumerate(children.tolist()):  # a node's key needs its children's
        ka, kb = key[a], key[b]
        lo[t], hi[t] = (ka, kb) if ka < kb else (kb, ka)
        key.append(lo[t])
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    order = np.lexsort((hi, lo, distances))
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    internal = children >= n_leaves
    child_pos = np.where(internal, position[np.where(internal, children - n_leaves, 0)], -1)
    if np.all(child_pos.max(axis=1) < position):
        return order
    # a tie put a parent before its child: topological order by heap
    parent_of = np.full(n, -1, dtype=np.int64)
    waiting = internal.sum(axis=1)
    for t in range(n):
        for c in children[t][internal[t]]:
            parent_of[c - n_leaves] = t
    heap = [(distances[t], lo[t], hi[t], t) for t in range(n) if waiting[t] == 0]
    heapq.heapify(heap)
    out = []
    while heap:
        *_, t = heapq.heappop(heap)
        out.append(t)
        p = parent_of[t]
        if p >= 0:
            waiting[p] -= 1
            if waiting[p] == 0:
                heapq.heappush(heap, (distances[p], lo[p], hi[p], p))
    return np.asarray(out, dtype=np.int64)


def _renumber(children, distances, order, n_leaves, q_max):
    """Children and distances in ``order``, node ids renumbered, first ``q_max``."""
    children = np.asarray(children, dtype=np.int64).reshape(-1, 2)
    distances = np.asarray(distances, dtype=np.float64)
    new_id = np.arange(n_leaves + len(children), dtype=np.int64)
    new_id[n_leaves + order] = n_leaves + np.arange(len(order))
    out = new_id[children[order]]
    return out[:q_max], distances[order][:q_max]
