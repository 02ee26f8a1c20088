"""One step of the batched schedule (SPEC 6, paper Algorithm 1).

The criterion is evaluated once for all current cluster pairs; the pairs are
walked in ascending order (ties: lower ``(i, j)`` slot pair first) and merged
with a union-find unless both sides already joined in this step, until the
step's quota of merges. Distances are not refreshed inside a step, as in BUC
and DBC, so chains A-B, B-C may form one cluster.

The full sorted list of K^2/2 pairs is never built: :func:`smallest_pairs`
finds exactly the pairs below the ``t``-th smallest value from row-wise
``topk`` and a rescan of the few dense rows. When the walk needs more
(many pairs inside already joined groups), ``t`` grows and the step is redone.
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


def smallest_pairs(pm, stats, crit, n_candidates, per_row=8):
    """The cluster pairs ``i < j`` with the smallest criterion values.

    Pass 1 keeps each row's ``per_row`` smallest values (a row-wise
    ``topk``: far cheaper than a selection over the flattened K^2 / 2 values)
    and takes ``tau``, the ``n_candidates``-th smallest of them. Every pair
    below ``tau`` is then in the pool, except in rows whose ``per_row``-th
    value is itself below ``tau`` (dense rows); pass 2 rescans just those
    rows. The result is exactly the set of pairs strictly below ``tau``.

    Returns
    -------
    values : ndarray (c,)
        Ascending; ties ordered by ``(i, j)``.
    i, j : ndarray (c,)
        Slots, ``i < j``.
    complete : bool
        True when the list holds every pair.
    """
    k = pm.width
    device = pm.storage.device
    crit = {**crit, "penalty": pm.penalty() if pm.k < k else None}
    vals, ii, jj, kth = [], [], [], []
    step = max(1, pm.block_rows(k))
    for r0 in range(0, k - 1, step):
        r1 = min(k - 1, r0 + step)
        block = _row_block(pm, stats, crit, r0, r1)
        r = min(per_row, block.shape[1])
        v, f = torch.topk(block, r, dim=1, largest=False, sorted=True)
        rows = torch.arange(r0, r1, device=device).unsqueeze(1).expand(-1, r)
        vals.append(v.reshape(-1))
        ii.append(rows.reshape(-1))
        jj.append((f + (r0 + 1)).reshape(-1))
        # a row whose per_row-th value is finite may hold more pairs
        kth.append(v[:, -1] if r == per_row else torch.full_like(v[:, 0], float("inf")))
    v = torch.cat(vals).double().cpu().numpy()
    i = torch.cat(ii).cpu().numpy()
    j = torch.cat(jj).cpu().numpy()
    kth = torch.cat(kth).double().cpu().numpy()
    finite = np.isfinite(v)
    v, i, j = v[finite], i[finite], j[finite]
    tau = np.partition(v, n_candidates - 1)[n_candidates - 1] if v.size > n_candidates else np.inf
    dense = np.nonzero(kth < tau)[0]
    if dense.size:
        # pass 2: every pair below tau of the dense rows
        in_dense = np.isin(i, dense)
        v, i, j = v[~in_dense], i[~in_dense], j[~in_dense]
        rows_t = torch.as_tensor(dense, device=device)
        for p0 in range(0, dense.size, step):
            rows = rows_t[p0 : p0 + step]
            block = criterion_block(
                pm.matrix.index_select(0, rows), rows, slice(None), stats, **crit
            )
            cols = torch.arange(k, device=device)
            block.masked_fill_(cols.unsqueeze(0) <= rows.unsqueeze(1), float("inf"))
            sel = torch.nonzero(block < tau)
            v = np.concatenate([v, block[sel[:, 0], sel[:, 1]].double().cpu().numpy()])
            i = np.concatenate([i, rows[sel[:, 0]].cpu().numpy()])
            j = np.concatenate([j, sel[:, 1].cpu().numpy()])
    keep = v < tau
    v, i, j = v[keep], i[keep], j[keep]
    order = np.lexsort((j, i, v))
    return v[order], i[order], j[order], not np.isfinite(tau)


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


def batched_step(pm, stats, crit, quota, threshold):
    """Select the merges of one step.

    Returns ``(merges, root, stopped_by_threshold)``; ``root`` maps each slot
    to its group's smallest slot.
    """
    k = pm.width
    # room for pairs inside groups already joined in this step (cycles)
    n_candidates = 4 * quota + 64
    while True:
        v, i, j, complete = smallest_pairs(pm, stats, crit, n_candidates)
        merges, parent, stopped = walk_pairs(v, i, j, k, quota, threshold)
        if len(merges) >= quota or stopped or complete:
            return merges, group_roots(parent), stopped
        n_candidates *= 4
