"""The rounds of the reducible engine in torch (any device; used on CUDA).

The same steps as the NumPy rounds of :mod:`._reducible_numpy`, written with
torch operations so that they run where the pair matrix lives; the tests run
them on the CPU too.
"""

import numpy as np
import torch

INF = float("inf")


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


def _rounds_torch(rs, recorder, stop, q_max, heights=None):
    """The rounds on the reducible state ``rs``, in torch (any device).

    ``heights``: those of the merges already made (by the chain).
    """
    threshold = stop.distance_threshold
    dev = rs.pm.matrix.device
    cache = _NearestCache(rs)
    heights = [] if heights is None else [float(h) for h in heights]
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
