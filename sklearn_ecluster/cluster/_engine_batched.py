"""The batched engine: the schedule of the paper's Algorithm 1 (SPEC 6).

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

from ._union_find import group_roots, walk_pairs


def _row_block(pm, stats, criterion, penalty, r0, r1):
    """Criterion of rows r0..r1-1 against the columns j > r0 (j <= i masked)."""
    k = pm.width
    block = criterion.block(
        pm.matrix[r0:r1, r0 + 1 :], slice(r0, r1), slice(r0 + 1, k), stats,
        penalty=penalty,
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

    def __init__(self, state, per_row=8):
        self.state = state
        self.pm = pm = state.pm
        self.stats = state.stats
        self.criterion = state.criterion
        self.per_row = per_row
        w = pm.width
        dev = pm.storage.device
        self.values = torch.full((w, per_row), float("inf"), dtype=pm.storage.dtype,
                                 device=dev)
        self.cols = torch.zeros((w, per_row), dtype=torch.long, device=dev)
        self.kth = torch.full((w,), float("inf"), dtype=pm.storage.dtype, device=dev)
        self._rescan(torch.arange(w, device=dev))

    def _row_values(self, rows, penalty):
        """Criterion of ``rows`` against every slot, pairs j <= i masked."""
        pm = self.pm
        block = self.criterion.block(
            pm.matrix.index_select(0, rows), rows, slice(None), self.stats,
            penalty=penalty,
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
        penalty = self.state.penalty()
        step = max(1, self.pm.block_rows(w))
        for p0 in range(0, rows.numel(), step):
            sub = rows[p0 : p0 + step]
            r0, r1 = int(sub[0]), int(sub[-1]) + 1
            if r1 - r0 == sub.numel():
                # contiguous rows: only the columns right of the first row
                block = _row_block(self.pm, self.stats, self.criterion, penalty, r0, r1)
                off = r0 + 1
            else:
                block = self._row_values(sub, penalty)
                off = 0
            rr = min(self.per_row, block.shape[1])
            v, c = torch.topk(block, rr, dim=1, largest=False, sorted=True)
            self.values[sub] = float("inf")
            self.values[sub, :rr] = v
            self.cols[sub, :rr] = c + off
            self.kth[sub] = v[:, -1] if rr == self.per_row else float("inf")

    def update(self, changed, dead, keep):
        """Refresh after a merge step (the state's statistics are the new ones).

        Parameters
        ----------
        changed, dead : LongTensor
            Group representatives whose cluster changed, and the slots merged
            away, in the numbering *before* the step's compaction.
        keep : LongTensor or None
            Slots kept by a compaction (old numbering), or None.
        """
        self.stats = self.state.stats
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
        penalty = self.state.penalty()
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
            block = self.criterion.block(s_block, slice(r0, r1), changed, self.stats,
                                         penalty=penalty)
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
            penalty = self.state.penalty()
            step = max(1, self.pm.block_rows(w))
            extra_v, extra_i, extra_j = [v], [i], [j]
            for p0 in range(0, dense.size, step):
                rows = rows_t[p0 : p0 + step]
                block = self._row_values(rows, penalty)
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


def build_batched(state, recorder, stop, *, merge_percent, merge_schedule, n_samples):
    """Run batched steps until the stopping rule; the merges go to ``recorder``.

    Each step merges ``max(1, int(merge_percent * base))`` pairs, ``base`` the
    number of samples (``"constant"``, the paper) or of current clusters
    (``"geometric"``), found from one evaluation of the criterion.
    """
    cache = None
    while state.k > stop.target and (stop.max_steps is None
                                     or recorder.n_steps < stop.max_steps):
        if cache is None:
            cache = CandidateCache(state)
        base = n_samples if merge_schedule == "constant" else state.k
        quota = min(max(1, int(merge_percent * base)), state.k - stop.target)
        merges, root, stopped = batched_step(cache, quota, stop.distance_threshold)
        if not merges:
            break  # a step counts only when it merges (as in the exact mode)
        for a, b, v in merges:
            recorder.merge(a, b, v)
        keep, changed, dead = state.merge_groups(root)
        if keep is not None:
            recorder.compact(keep)
        if state.k > stop.target and not stopped:
            cache.update(changed, dead, keep)
        recorder.end_step(state.k, len(merges), max(v for _, _, v in merges))
        if stopped:
            break
