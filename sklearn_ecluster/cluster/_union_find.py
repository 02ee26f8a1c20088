"""Union-find over cluster slots: the one implementation the engines and cuts share.

Roots are always the smallest member of their group (a merge links the larger
root under the smaller one), so a group's root is also its slot after a merge
step and its label rank under first-occurrence numbering.
"""

import numpy as np


def find(parent, a):
    """Root of ``a`` (path halving; ``parent`` is modified in place)."""
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


def union(parent, a, b):
    """Join the groups of ``a`` and ``b``; returns ``(lo, hi)`` roots, or None if joined."""
    ra, rb = find(parent, a), find(parent, b)
    if ra == rb:
        return None
    lo, hi = (ra, rb) if ra < rb else (rb, ra)
    parent[hi] = lo
    return lo, hi


def group_roots(parent):
    """Root (group minimum) of every slot, by vectorised pointer jumping."""
    root = np.asarray(parent).copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt


def walk_pairs(values, i, j, n_slots, quota, threshold):
    """Kruskal-style walk: accept pairs whose sides are not yet joined.

    Parameters
    ----------
    values, i, j : ndarray
        Candidate pairs ``(i, j)`` and their criterion values, in walking order.
    n_slots : int
    quota : int
        Stop after this many merges.
    threshold : float or None
        Stop at the first value ``>= threshold``.

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
    merges = []
    stopped = False
    for v, a, b in zip(values.tolist(), i.tolist(), j.tolist(), strict=False):
        if len(merges) >= quota:
            break
        if threshold is not None and v >= threshold:
            stopped = True
            break
        joined = union(parent, a, b)
        if joined is not None:
            merges.append((*joined, v))
    return merges, np.asarray(parent, dtype=np.int64), stopped
