"""The rounds of the reducible engine in NumPy, on the CPU.

Single-threaded vectorised kernels on the pair matrix's own memory: no launch
overhead or thread hand-offs per operation. :mod:`._reducible_torch` does the
same steps in torch on any device (CUDA).
"""

import numpy as np
import torch

INF = float("inf")

#: compact the live block to the front once this fraction of slots is dead
COMPACT_FRACTION = 0.4
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


def _rounds_numpy(rs, recorder, stop, q_max, heights=None):
    """The rounds of :func:`_rounds_torch`, in NumPy on the CPU.

    ``heights``: those of the merges already made (by the chain).
    """
    threshold = stop.distance_threshold
    st = _NumpyRounds(rs)
    heights = [] if heights is None else [np.asarray(heights, dtype=np.float64)]
    n_heights = sum(h.size for h in heights)
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
        if w - st.k >= COMPACT_FRACTION * w:
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
