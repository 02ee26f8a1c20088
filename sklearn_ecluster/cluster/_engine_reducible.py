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
"""

import heapq

import numpy as np
import torch

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

    compact_fraction = 0.4

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
        self.pm._compact(keep)  # the live block to the front of the buffer
        self.new_rows = new[:, keep]
        self.sizes = self.sizes[keep]
        self.alive = torch.ones(keep.numel(), dtype=torch.bool, device=keep.device)
        return keep


class _NearestCache:
    """First nearest slot, its criterion value and a tie flag, for every slot.

    A row is rescanned only when its neighbour merged (or it merged itself);
    the other rows are compared with the new clusters' columns. For a
    reducible criterion a new cluster is never strictly closer than a row's
    neighbour in exact arithmetic, so that comparison only catches exact ties
    and rounding, but it keeps the cache exactly the greedy algorithm's.
    """

    def __init__(self, rs):
        self.rs = rs
        w = rs.alive.numel()
        M = rs.pm.matrix
        dev = M.device
        self.val = torch.full((w,), INF, dtype=M.dtype, device=dev)
        self.nn = torch.zeros(w, dtype=torch.long, device=dev)
        self.tied = torch.zeros(w, dtype=torch.bool, device=dev)
        self.rescan(torch.arange(w, device=dev))

    def rescan(self, rows):
        if rows.numel() == 0:
            return
        pm = self.rs.pm
        step = max(1, pm.block_rows(pm.width))
        for p0 in range(0, rows.numel(), step):
            sub = rows[p0 : p0 + step]
            d = self.rs.rows(sub)  # a copy: modified below
            v, j = torch.min(d, dim=1)  # first minimum: lowest j among ties
            d[torch.arange(sub.numel(), device=sub.device), j] = INF
            self.val[sub] = v
            self.nn[sub] = j
            self.tied[sub] = torch.min(d, dim=1).values == v  # a second minimum
            del d

    def compare_new(self, rows, new, new_rows):
        """Rows ``rows`` against the new clusters ``new`` (ascending slots), whose
        own rows (pair values, in the order of ``new``) are ``new_rows``."""
        if rows.numel() == 0 or new.numel() == 0:
            return
        d = new_rows.index_select(1, rows).T  # the matrix is symmetric
        if self.rs.sums:
            d = d / (self.rs.sizes[rows].unsqueeze(1) * self.rs.sizes[new].unsqueeze(0))
        v, pos = torch.min(d, dim=1)
        col = new[pos]
        cur_v, cur_j = self.val[rows], self.nn[rows]
        better = (v < cur_v) | ((v == cur_v) & (col < cur_j))
        several = (d == v.unsqueeze(1)).sum(1) > 1
        self.tied[rows] = torch.where(v < cur_v, several, self.tied[rows] | (v == cur_v))
        self.val[rows] = torch.where(better, v, cur_v)
        self.nn[rows] = torch.where(better, col, cur_j)

    def compact(self, keep):
        new_of_old = torch.full((self.val.numel(),), -1, dtype=torch.long,
                                device=keep.device)
        new_of_old[keep] = torch.arange(keep.numel(), device=keep.device)
        self.val = self.val[keep]
        self.tied = self.tied[keep]
        self.nn = new_of_old[self.nn[keep]].clamp_(min=0)  # stale rows are rescanned
        return new_of_old


def build_exact_reducible(state, recorder, stop):
    """The exact greedy dendrogram of a reducible criterion, by RNN rounds.

    On the CPU the rounds run in NumPy on the pair matrix's own memory
    (:func:`_rounds_numpy`): single-threaded vectorised kernels, no launch
    overhead or thread hand-offs per operation; elsewhere in torch
    (:func:`_rounds_torch`). Both follow the same steps.
    """
    n_leaves = state.k
    q_max = stop.max_merges(n_leaves)
    rs = _ReducibleState(state)
    del state  # its statistics are not needed any more; D holds everything
    rounds = _rounds_numpy if rs.pm.matrix.device.type == "cpu" else _rounds_torch
    rounds(rs, recorder, stop, q_max)
    children, distances = recorder.children, recorder.distances
    order = greedy_order(np.asarray(children, dtype=np.int64).reshape(-1, 2),
                         np.asarray(distances, dtype=np.float64), n_leaves)
    recorder.replace_sequence(*_renumber(children, distances, order, n_leaves, q_max))


def _rounds_torch(rs, recorder, stop, q_max):
    """The rounds on the reducible state ``rs``, in torch (any device)."""
    threshold = stop.distance_threshold
    dev = rs.pm.matrix.device
    cache = _NearestCache(rs)
    heights = []
    n_round = 0
    while rs.k > 1:
        val, nn, tied = cache.val, cache.nn, cache.tied
        w = val.numel()
        slots = torch.arange(w, device=dev)
        vmin = float(val.min())
        if len(heights) >= q_max and np.count_nonzero(np.asarray(heights) < vmin) >= q_max:
            break  # every later merge is at least vmin: the first q_max are known
        ok = rs.alive & torch.isfinite(val) & ~tied
        ok &= (nn[nn] == slots) & (slots < nn) & ok[nn]
        if threshold is not None:
            ok &= val < threshold
        i = torch.nonzero(ok).squeeze(1)
        if i.numel() == 0:
            # no clean reciprocal pair: the pair the greedy order takes next
            if not np.isfinite(vmin) or (threshold is not None and vmin >= threshold):
                break
            i = torch.argmin(val).reshape(1)  # first minimum: lowest i
        j = nn[i]
        lo, hi = torch.minimum(i, j), torch.maximum(i, j)
        d_ab = val[i]
        values = d_ab.double().cpu().tolist()
        for a, b, v in zip(lo.tolist(), hi.tolist(), values, strict=True):
            recorder.merge(a, b, v)
        heights.extend(values)
        # rows whose neighbour merged, and the merged rows, are rescanned
        changed = torch.zeros(w, dtype=torch.bool, device=dev)
        changed[lo] = True
        changed[hi] = True
        stale = changed[nn] | changed
        stale[hi] = False
        keep = rs.merge_pairs(lo, hi, d_ab)
        cache.val[hi] = INF
        new, order = torch.sort(lo)
        if keep is not None:
            recorder.compact(keep)
            new = cache.compact(keep)[new]
            stale = stale[keep]
        cache.compare_new(torch.nonzero(rs.alive & ~stale).squeeze(1), new,
                          rs.new_rows[order])
        cache.rescan(torch.nonzero(rs.alive & stale).squeeze(1))
        n_round += 1
        recorder.say(f"round {n_round}: {len(values)} merges -> {rs.k} clusters, "
                     f"max D {max(values):.4g}")
        recorder.advance(len(values))


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


# ---------------------------------------------------------------------------
# the rounds in NumPy (CPU)

#: bytes of one block of rows in the CPU kernels: a few blocks stay in cache,
#: so the several passes of an update read and write cache, not memory
_BLOCK_BYTES = 4 << 20


def _np_lance_williams(criterion, d_ak, d_bk, d_ab, n_a, n_b, n_k, out):
    """:meth:`~._criterion.Criterion.lance_williams` into ``out`` (NumPy)."""
    if criterion.linkage == "single":
        return np.minimum(d_ak, d_bk, out=out)
    if criterion.linkage == "average":
        np.multiply(n_a, d_ak, out=out)
        out += n_b * d_bk
        out /= n_a + n_b
        return out
    np.add(d_ak, d_bk, out=out)
    out -= d_ab
    out *= n_k
    out += n_a * d_ak
    out += n_b * d_bk
    out /= n_a + n_b + n_k
    return out


class _NumpyRounds:
    """The reducible state and nearest-neighbour cache of :func:`_rounds_numpy`.

    The same quantities as :class:`_ReducibleState` and :class:`_NearestCache`
    (``M`` is a NumPy view of the pair matrix's storage), with every pass over
    rows done a block of rows at a time.
    """

    def __init__(self, rs):
        self.pm = rs.pm
        self.criterion = rs.criterion
        self.sums = rs.sums
        self.flat = rs.pm.storage.numpy()
        self.width = rs.pm.width
        self.sizes = rs.sizes.numpy().copy()
        self.alive = np.ones(self.width, dtype=bool)
        self.k = self.width
        w = self.width
        # 0 on live slots, +inf on dead ones, added to every row read: dead
        # columns keep stale values (writing +inf into W x m scattered places
        # a round would cost as much as the update itself)
        self.penalty = np.zeros(w, dtype=self.flat.dtype)
        self.val = np.full(w, INF, dtype=self.flat.dtype)
        self.nn = np.zeros(w, dtype=np.int64)
        self.tied = np.zeros(w, dtype=bool)
        self.rescan(np.arange(w))

    @property
    def M(self):
        w = self.width
        return self.flat[: w * w].reshape(w, w)

    def block(self, n_cols):
        return max(1, _BLOCK_BYTES // max(1, n_cols * self.flat.itemsize))

    def _values(self, d, rows):
        """Criterion values of the pair values ``d`` of ``rows`` (in place)."""
        if self.sums:
            d /= np.multiply.outer(self.sizes[rows], self.sizes)
        return d

    def rescan(self, rows):
        """First minimum, its value and a tie flag of every row in ``rows``."""
        M = self.M
        step = self.block(self.width)
        contiguous = rows.size > 0 and rows[-1] - rows[0] + 1 == rows.size
        for p0 in range(0, rows.size, step):
            sub = rows[p0 : p0 + step]
            if contiguous and not self.sums and self.k == self.width:
                d = M[sub[0] : sub[-1] + 1]  # a view: restored below
            else:
                d = self._values(M.take(sub, axis=0), sub)
                if self.k < self.width:
                    d += self.penalty
            j = d.argmin(axis=1)  # first minimum: lowest j among ties
            r = np.arange(sub.size)
            v = d[r, j]
            d[r, j] = INF
            self.tied[sub] = d.min(axis=1) == v  # a second minimum
            d[r, j] = v
            self.val[sub] = v
            self.nn[sub] = j

    def merge_pairs(self, lo, hi, d_ab):
        """Merge cluster ``hi[t]`` into ``lo[t]`` (disjoint pairs, ``lo`` ascending).

        Returns the merged clusters' new rows (criterion or pair values).
        """
        M = self.M
        n = self.sizes
        m, w = lo.size, self.width
        n_a, n_b, dab = n[lo][:, None], n[hi][:, None], d_ab[:, None]
        n_k = n[None, :]
        new = np.empty((m, w), dtype=M.dtype)
        step = self.block(w)
        for p0 in range(0, m, step):
            p1 = min(m, p0 + step)
            r_a, r_b = M.take(lo[p0:p1], axis=0), M.take(hi[p0:p1], axis=0)
            if self.sums:  # S(A u B, K) = S(A, K) + S(B, K)
                np.add(r_a, r_b, out=new[p0:p1])
            else:
                _np_lance_williams(self.criterion, r_a, r_b, dab[p0:p1], n_a[p0:p1],
                                   n_b[p0:p1], n_k, new[p0:p1])
        # pairs of two new clusters: the update once more over the other side
        if self.sums:
            sub = new[:, lo] + new[:, hi]
        else:
            sub = _np_lance_williams(self.criterion, new[:, lo], new[:, hi], dab.T, n_a.T,
                                     n_b.T, n_a + n_b, np.empty((m, m), dtype=M.dtype))
        sub = np.triu(sub, 1)
        sub += sub.T  # exactly symmetric
        new[:, lo] = sub
        new[:, hi] = INF
        new[np.arange(m), lo] = INF
        # rows, then the same values as columns (dead rows are never read
        # again, dead columns are masked by the penalty)
        M[lo] = new
        M.T[lo] = new
        n[lo] += n[hi]
        self.alive[hi] = False
        self.penalty[hi] = INF
        self.k -= m
        self.val[hi] = INF
        return new

    def compact(self):
        """Move the live block to the front of the storage; returns ``keep``."""
        keep = np.flatnonzero(self.alive)
        old, k_new = self.M, keep.size
        new = self.flat[: k_new * k_new].reshape(k_new, k_new)
        # row p lands at offset p K' <= keep[p] W: blocks in increasing order
        # never overwrite a row still to be read
        step = self.block(self.width)
        for p0 in range(0, k_new, step):
            p1 = min(k_new, p0 + step)
            rows = old.take(keep[p0:p1], axis=0)
            np.take(rows, keep, axis=1, out=new[p0:p1])
        self.width = k_new
        pm = self.pm
        pm.width = pm.k = k_new
        pm.alive = torch.ones(k_new, dtype=torch.bool, device=pm.storage.device)
        new_of_old = np.full(self.alive.size, -1, dtype=np.int64)
        new_of_old[keep] = np.arange(k_new)
        self.sizes = self.sizes[keep]
        self.alive = np.ones(k_new, dtype=bool)
        self.penalty = np.zeros(k_new, dtype=self.flat.dtype)
        self.val = self.val[keep]
        self.tied = self.tied[keep]
        self.nn = np.maximum(new_of_old[self.nn[keep]], 0)  # stale rows are rescanned
        return keep, new_of_old

    def compare_new(self, rows, new, new_rows):
        """Rows ``rows`` against the new clusters ``new`` (ascending slots), whose
        rows (pair values, in the order of ``new``) are ``new_rows``.

        A column minimum over the new rows picks the few rows where a new
        cluster is as close as the cached neighbour (ties and rounding); only
        those are compared in full.
        """
        if rows.size == 0 or new.size == 0:
            return
        step = self.block(self.width)
        colmin = None
        for p0 in range(0, new.size, step):
            blk = new_rows[p0 : p0 + step]
            if self.sums:
                blk = blk / np.multiply.outer(self.sizes[new[p0 : p0 + step]], self.sizes)
            part = blk.min(axis=0)
            colmin = part if colmin is None else np.minimum(colmin, part, out=colmin)
        rows = rows[colmin[rows] <= self.val[rows]]
        if rows.size == 0:
            return
        d = new_rows[:, rows].T
        if self.sums:
            d = d / np.multiply.outer(self.sizes[rows], self.sizes[new])
        pos = d.argmin(axis=1)
        v = d[np.arange(rows.size), pos]
        col = new[pos]
        cur_v, cur_j = self.val[rows], self.nn[rows]
        better = (v < cur_v) | ((v == cur_v) & (col < cur_j))
        several = (d == v[:, None]).sum(1) > 1
        self.tied[rows] = np.where(v < cur_v, several, self.tied[rows] | (v == cur_v))
        self.val[rows] = np.where(better, v, cur_v)
        self.nn[rows] = np.where(better, col, cur_j)


def _rounds_numpy(rs, recorder, stop, q_max):
    """The rounds of :func:`_rounds_torch`, in NumPy on the CPU."""
    threshold = stop.distance_threshold
    st = _NumpyRounds(rs)
    n_heights = 0
    heights = []
    n_round = 0
    while st.k > 1:
        val, nn, tied = st.val, st.nn, st.tied
        w = val.size
        slots = np.arange(w)
        vmin = float(val.min())
        if n_heights >= q_max and np.count_nonzero(np.concatenate(heights) < vmin) >= q_max:
            break  # every later merge is at least vmin: the first q_max are known
        ok = st.alive & np.isfinite(val) & ~tied
        ok &= (nn[nn] == slots) & (slots < nn) & ok[nn]
        if threshold is not None:
            ok &= val < threshold
        lo = np.flatnonzero(ok)
        if lo.size == 0:
            # no clean reciprocal pair: the pair the greedy order takes next
            if not np.isfinite(vmin) or (threshold is not None and vmin >= threshold):
                break
            lo = np.array([int(np.argmin(val))])  # first minimum: lowest i
        hi = nn[lo]  # lo < hi: both ascending with lo
        d_ab = val[lo].copy()
        recorder.merge_many(lo, hi, d_ab)
        heights.append(d_ab.astype(np.float64))
        n_heights += lo.size
        # rows whose neighbour merged, and the merged rows, are rescanned
        changed = np.zeros(w, dtype=bool)
        changed[lo] = True
        changed[hi] = True
        stale = changed[nn] | changed
        stale[hi] = False
        new_rows = st.merge_pairs(lo, hi, d_ab)
        new = lo
        if w - st.k >= _ReducibleState.compact_fraction * w:
            keep, new_of_old = st.compact()
            recorder.compact(keep)
            new = new_of_old[lo]
            stale = stale[keep]
            new_rows = new_rows[:, keep]
        st.compare_new(np.flatnonzero(st.alive & ~stale), new, new_rows)
        del new_rows
        st.rescan(np.flatnonzero(st.alive & stale))
        n_round += 1
        if recorder.verbose == 1:
            recorder.say(f"round {n_round}: {lo.size} merges -> {st.k} clusters, "
                         f"max D {float(d_ab.max()):.4g}")
        recorder.advance(lo.size)


