"""One step of the batched schedule (SPEC 6, paper Algorithm 1).

The criterion is evaluated once for all current cluster pairs; the pairs are
walked in ascending order (ties: lower ``(i, j)`` slot pair first) and merged
with a union-find unless both sides already joined in this step, until the
step's quota of merges. Distances are not refreshed inside a step, as in BUC
and DBC, so chains A-B, B-C may form one cluster.

The full sorted list of K^2/2 pairs is never built: each row block keeps its
``t`` smallest values (``torch.topk``), and only pairs strictly below the
global ``t``-th value are trusted (they are complete: no block can hide a
smaller one). When the walk needs more, ``t`` doubles and the step is redone.
"""

import numpy as np
import torch

from ._criterion import criterion_block


def smallest_pairs(pm, stats, crit, n_candidates):
    """The cluster pairs ``i < j`` with the smallest criterion values.

    Returns
    -------
    values : ndarray (c,)
        Ascending; ties ordered by ``(i, j)``.
    i, j : ndarray (c,)
        Slots, ``i < j``.
    complete : bool
        True when every pair is in the list; otherwise the list holds exactly
        the pairs strictly below the ``n_candidates``-th smallest value.
    """
    k = pm.k
    n_pairs = k * (k - 1) // 2
    S = pm.matrix
    device = S.device
    vals, ii, jj = [], [], []
    step = max(1, pm.block_rows(k))
    for r0 in range(0, k - 1, step):
        r1 = min(k - 1, r0 + step)
        ncols = k - r0 - 1
        block = criterion_block(
            S[r0:r1, r0 + 1 :], slice(r0, r1), slice(r0 + 1, k), stats, **crit
        )
        b = r1 - r0
        # pairs with j <= i inside the leading b x b part are not pairs i < j
        lower = torch.ones((b, b), dtype=torch.bool, device=device).tril_(-1)
        block[:, :b].masked_fill_(lower, float("inf"))
        flat = block.view(-1)
        t = min(n_candidates, flat.numel())
        v, f = torch.topk(flat, t, largest=False, sorted=False)
        vals.append(v)
        ii.append(r0 + torch.div(f, ncols, rounding_mode="floor"))
        jj.append(r0 + 1 + f % ncols)
    v = torch.cat(vals).double().cpu().numpy()
    i = torch.cat(ii).cpu().numpy()
    j = torch.cat(jj).cpu().numpy()
    finite = np.isfinite(v)  # masked slots
    v, i, j = v[finite], i[finite], j[finite]
    complete = n_pairs <= n_candidates
    if not complete and v.size >= n_candidates:
        cut = np.partition(v, n_candidates - 1)[n_candidates - 1]
        trusted = v < cut
        v, i, j = v[trusted], i[trusted], j[trusted]
    order = np.lexsort((j, i, v))
    return v[order], i[order], j[order], complete


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
    k = pm.k
    n_candidates = 2 * quota + 16
    while True:
        v, i, j, complete = smallest_pairs(pm, stats, crit, n_candidates)
        merges, parent, stopped = walk_pairs(v, i, j, k, quota, threshold)
        if len(merges) >= quota or stopped or complete:
            return merges, group_roots(parent), stopped
        n_candidates *= 2
