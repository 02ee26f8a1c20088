"""One step of the batched schedule (SPEC 6, paper Algorithm 1).

The criterion is evaluated once for all current cluster pairs; the pairs are
walked in ascending order (ties: lower ``(i, j)`` slot pair first) and merged
with a union-find unless both sides already joined in this step, until the
step's quota of merges. Distances are not refreshed inside a step, as in BUC
and DBC, so chains A-B, B-C may form one cluster.

The full sorted list of K^2/2 pairs is never built: :class:`CandidateCache`
keeps each row's smallest values (row-wise ``topk``), refreshes only what a
merge step changed, and yields exactly the pairs below the ``t``-th smallest
value (rescanning the few dense rows). When the walk needs more (many pairs
inside already joined groups), ``t`` grows.
"""

import numpy as np
import torch

from ._criterion import criterion_block


def _row_block(pm, stats, crit, r0, r1):
    """Criterion of rows r0..r1-1 against the columns j > r0 (j <= i masked)."""
    k = pm.width
    block = criterion_block(
        pm.matrix[r0:r1, r0 + 1 :], slice(r0, r1), slice(r0 + 1, k), stats, **crit
    )
    b = r1 - r0
    lower = torch.ones((b, b), dtype=torch.bool, device=block.device).tril_(-1)
    block[:, :b].masked_fill_(lower, float("inf"))
    return block


class CandidateCache:
    """Each row's smallest criterion values, kept across steps.

    For every live slot ``i`` the cache holds up to ``per_row`` pairs
    ``(i, j)``, ``j > i``, with their criterion values, and a bound
    ``kth[i]``: every pair of row i that is not in its list has a value
    ``>= kth[i]``. A criterion value depends on its two clusters only, so after
    a merge step only the pairs touching a changed cluster (a group
    representative) or a dead one are stale: those rows are rescanned, and the
    other rows get the exact values of their pairs with the changed clusters
    merged into their lists. A step then costs O(K m) instead of O(K^2).

    :meth:`pairs_below` turns the lists into exactly the set of pairs below a
    value ``tau`` (rows whose bound is below ``tau`` are rescanned).
    """

    def __init__(self, pm, stats, crit, per_row=8):
        self.pm = pm
        self.stats = stats
        self.crit = crit
        self.per_row = per_row
        w = pm.width
        dev = pm.storage.device
        self.values = torch.full((w, per_row), float("inf"), dtype=pm.storage.dtype,
                                 device=dev)
        self.cols = torch.zeros((w, per_row), dtype=torch.long, device=dev)
        self.kth = torch.full((w,), float("inf"), dtype=pm.storage.dtype, device=dev)
        self._rescan(torch.arange(w, device=dev))

    def _crit(self):
        pm = self.pm
        return {**self.crit, "penalty": pm.penalty() if pm.k < pm.width else None}

    def _row_values(self, rows, crit):
        """Criterion of ``rows`` against every slot, pairs j <= i masked."""
        pm = self.pm
        block = criterion_block(
            pm.matrix.index_select(0, rows), rows, slice(None), self.stats, **crit
        )
        cols = torch.arange(pm.width, device=rows.device)
        return block.masked_fill_(cols.unsqueeze(0) <= rows.unsqueeze(1), float("inf"))

    def _rescan(self, rows):
        """Recompute the lists of ``rows`` (sorted slots) from scratch."""
        w = self.pm.width
        last = rows == w - 1  # the last slot has no pair (i, j > i)
        self.values[rows[last]] = float("inf")
        self.kth[rows[last]] = float("inf")
        rows = rows[~last]
        if rows.numel() == 0:
            return
        crit = self._crit()
        step = max(1, self.pm.block_rows(w))
        for p0 in range(0, rows.numel(), step):
            sub = rows[p0 : p0 + step]
            r0, r1 = int(sub[0]), int(sub[-1]) + 1
            if r1 - r0 == sub.numel():
                # contiguous rows: only the columns right of the first row
                block = _row_block(self.pm, self.stats, crit, r0, r1)
                off = r0 + 1
            else:
                block = self._row_values(sub, crit)
                off = 0
            rr = min(self.per_row, block.shape[1])
            v, c = torch.topk(block, rr, dim=1, largest=False, sorted=True)
            self.values[sub] = float("inf")
            self.values[sub, :rr] = v
            self.cols[sub, :rr] = c + off
            self.kth[sub] = v[:, -1] if rr == self.per_row else float("inf")

    def update(self, stats, changed, dead, keep):
        """Refresh after a merge step.

        Parameters
        ----------
        stats : ClusterStats
            The statistics after the step (compacted when ``keep`` is given).
        changed, dead : LongTensor
            Group representatives whose cluster changed, and the slots merged
            away, in the numbering *before* the step's compaction.
        keep : LongTensor or None
            Slots kept by a compaction (old numbering), or None.
        """
        self.stats = stats
        dev = self.values.device
        w_old = self.values.shape[0]
        stale = torch.zeros(w_old, dtype=torch.bool, device=dev)
        stale[changed] = True
        stale[dead] = True
        # drop the entries pointing at changed or dead clusters; the bound of
        # each row still holds for its remaining (unchanged) columns
        self.values.masked_fill_(stale[self.cols], float("inf"))
        self.kth[dead] = float("inf")
        self.values[dead] = float("inf")
        if keep is not None:
            new_of_old = torch.full((w_old,), -1, dtype=torch.long, device=dev)
            new_of_old[keep] = torch.arange(keep.numel(), device=dev)
            self.values = self.values[keep]
            self.kth = self.kth[keep]
            cols = new_of_old[self.cols[keep]]
            self.values.masked_fill_(cols < 0, float("inf"))
            self.cols = cols.clamp_(min=0)
            changed = new_of_old[changed]
        changed = torch.sort(changed).values
        self._rescan(changed)
        self._merge_columns(changed)

    def _merge_columns(self, changed):
        """Exact values of every row's pairs with the changed clusters."""
        if changed.numel() == 0:
            return
        pm = self.pm
        crit = self._crit()
        w = pm.width
        dev = changed.device
        m = changed.numel()
        step = max(1, pm.block_rows(2 * m + self.per_row))
        keep = min(self.per_row + 1, m)
        for r0 in range(0, w, step):
            r1 = min(w, r0 + step)
            rows = torch.arange(r0, r1, device=dev)
            # S is symmetric: the columns S[r0:r1, changed] are read as the
            # transposed rows S[changed, r0:r1] (contiguous reads, not a gather
            # of single elements)
            s_block = pm.matrix[:, r0:r1].index_select(0, changed).T
            block = criterion_block(s_block, slice(r0, r1), changed, self.stats, **crit)
            block.masked_fill_(changed.unsqueeze(0) <= rows.unsqueeze(1), float("inf"))
            # changed rows were rescanned in full: keep their lists as they are
            block.masked_fill_(_member(rows, changed).unsqueeze(1), float("inf"))
            # the block's own short list first, then merge it with the row's list
            bv, bpos = torch.topk(block, keep, dim=1, largest=False, sorted=False)
            vals = torch.cat([self.values[r0:r1], bv], dim=1)
            cols = torch.cat([self.cols[r0:r1], changed[bpos]], dim=1)
            rr = min(self.per_row + 1, vals.shape[1])
            v, pos = torch.topk(vals, rr, dim=1, largest=False, sorted=True)
            self.values[r0:r1] = v[:, : self.per_row]
            self.cols[r0:r1] = torch.gather(cols, 1, pos[:, : self.per_row])
            if rr > self.per_row:  # a dropped entry lowers the row's bound
                self.kth[r0:r1] = torch.minimum(self.kth[r0:r1], v[:, self.per_row])

    def pairs_below(self, n_candidates):
        """Exactly the pairs below the ``n_candidates``-th smallest listed value.

        Returns
        -------
        values : ndarray (c,)
            Ascending; ties ordered by ``(i, j)``.
        i, j : ndarray (c,)
            Slots, ``i < j``.
        complete : bool
            True when the list holds every pair.

        The pairs returned are exactly those below (or at) a value, so they
        are a prefix of the order of all pairs; about ``n_candidates`` of them
        (more with ties).
        """
        w = self.pm.width
        v = self.values.reshape(-1)
        i = torch.arange(w, device=v.device).unsqueeze(1).expand(-1, self.per_row).reshape(-1)
        j = self.cols.reshape(-1)
        finite = torch.isfinite(v)
        v = v[finite].double().cpu().numpy()
        i = i[finite].cpu().numpy()
        j = j[finite].cpu().numpy()
        kth = self.kth.double().cpu().numpy()
        tau = np.partition(v, n_candidates - 1)[n_candidates - 1] if v.size > n_candidates else np.inf
        dense = np.nonzero(kth < tau)[0]
        if dense.size:
            # rows whose list may hide pairs below tau: all their pairs below it
            in_dense = np.isin(i, dense)
            v, i, j = v[~in_dense], i[~in_dense], j[~in_dense]
            rows_t = torch.as_tensor(dense, device=self.values.device)
            crit = self._crit()
            step = max(1, self.pm.block_rows(w))
            extra_v, extra_i, extra_j = [v], [i], [j]
            for p0 in range(0, dense.size, step):
                rows = rows_t[p0 : p0 + step]
                block = self._row_values(rows, crit)
                sel = torch.nonzero(block < tau)
                extra_v.append(block[sel[:, 0], sel[:, 1]].double().cpu().numpy())
                extra_i.append(rows[sel[:, 0]].cpu().numpy())
                extra_j.append(sel[:, 1].cpu().numpy())
            v, i, j = (np.concatenate(a) for a in (extra_v, extra_i, extra_j))
        keep = v < tau
        v, i, j = v[keep], i[keep], j[keep]
        complete = not np.isfinite(tau)
        if v.size > n_candidates:
            # dense rows added many pairs (late steps, large clusters): all
            # pairs below tau are here, so the pairs <= their n-th smallest
            # value are exactly a prefix of the global order; sort only those
            cut = np.partition(v, n_candidates - 1)[n_candidates - 1]
            keep = v <= cut
            complete = complete and bool(keep.all())
            v, i, j = v[keep], i[keep], j[keep]
        order = np.lexsort((j, i, v))
        return v[order], i[order], j[order], complete


def _member(values, sorted_set):
    """Boolean mask: which ``values`` are in the sorted tensor ``sorted_set``."""
    pos = torch.searchsorted(sorted_set, values).clamp_(max=sorted_set.numel() - 1)
    return sorted_set[pos] == values


def walk_pairs(values, i, j, n_slots, quota, threshold):
    """Kruskal-style walk: accept pairs whose sides are not yet joined.

    Returns
    -------
    merges : list of (root_a, root_b, value)
        In walking order; ``root_a < root_b`` are the group representatives
        (smallest slots) at the time of the merge.
    parent : ndarray (n_slots,)
        Union-find forest after the walk (roots are group minima).
    stopped_by_threshold : bool
    """
    parent = list(range(n_slots))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    merges = []
    stopped = False
    for v, a, b in zip(values.tolist(), i.tolist(), j.tolist(), strict=False):
        if len(merges) >= quota:
            break
        if threshold is not None and v >= threshold:
            stopped = True
            break
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        if rb < ra:
            ra, rb = rb, ra
        parent[rb] = ra
        merges.append((ra, rb, v))
    return merges, np.asarray(parent, dtype=np.int64), stopped


def group_roots(parent):
    """Root (group minimum) of every slot, by vectorised pointer jumping."""
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt


def batched_step(cache, quota, threshold):
    """Select the merges of one step.

    Returns ``(merges, root, stopped_by_threshold)``; ``root`` maps each slot
    to its group's smallest slot.
    """
    k = cache.pm.width
    # room for pairs inside groups already joined in this step (cycles)
    n_candidates = 4 * quota + 64
    while True:
        v, i, j, complete = cache.pairs_below(n_candidates)
        merges, parent, stopped = walk_pairs(v, i, j, k, quota, threshold)
        if len(merges) >= quota or stopped or complete:
            return merges, group_roots(parent), stopped
        n_candidates *= 4
