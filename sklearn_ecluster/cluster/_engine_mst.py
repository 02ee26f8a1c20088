"""The minimum-spanning-tree engine: exact single linkage (no regulariser).

Single linkage merges along a minimum spanning tree of the clusters (Gower &
Ross 1969; fastcluster's ``single`` is built this way): Prim's algorithm over
the pair matrix (one row read per added cluster) gives the tree, and
Kruskal's order of its edges gives the merges. On the CPU both are compiled
(``_exact_kernels.c``) when the package was built with its kernels, else
NumPy (one vectorised minimum per Prim step) and Python.

The greedy order breaks exact ties by the lowest ``(i, j)`` slot pair. Tied
tree edges that merge disjoint pairs of clusters are taken in that order; two
tied edges at one cluster can make the greedy rule pick a pair outside the
tree (a tied non-tree edge), so then the engine hands over to the reducible
engine (rounds of reciprocal nearest neighbours), which follows the rule
exactly.
"""

import numpy as np
import torch

from . import _compiled
from ._engine_reducible import build_exact_reducible
from ._union_find import find as find_root
from ._union_find import union


def _prim_numpy(S):
    """Edges ``(a, b, w)`` with the single-linkage tree of a minimum spanning
    tree of the symmetric NumPy ``S``, by Prim's algorithm.

    Each step is three vectorised calls over the clusters not yet reached (a
    minimum, a gather of the new cluster's row, an elementwise minimum), the
    reached ones swapped out of the working arrays. The edges join each
    cluster to the one reached before it, with the weight of its tree edge:
    at every height the clusters that single linkage has joined are runs of
    Prim's order (a run is finished before a longer edge is taken), so these
    edges give the same merges as the tree's own edges (Gower & Ross 1969;
    fastcluster's ``MST_linkage_core`` records the same).
    """
    k = S.shape[0]
    order = np.empty(k, dtype=np.int64)
    w = np.empty(k, dtype=np.float64)
    rest = np.arange(1, k)
    dist = S[0, 1:].copy()
    row = np.empty_like(dist)
    order[0] = 0
    for t in range(1, k):
        p = int(dist.argmin())
        j = int(rest[p])
        order[t], w[t] = j, dist[p]
        last = k - 1 - t  # the last position still in use
        rest[p], dist[p] = rest[last], dist[last]
        rest, dist = rest[:last], dist[:last]
        np.minimum(dist, S[j].take(rest, out=row[:last]), out=dist)
    return order[:-1], order[1:], w[1:]


def _prim_compiled(S):
    """:func:`_prim_numpy` by the compiled kernel (the same steps, one fused
    pass a step); None when the package was built without it."""
    if _compiled.kernels is None or S.dtype not in (np.float32, np.float64):
        return None
    k = S.shape[0]
    order = np.empty(k, dtype=np.int64)
    w = np.empty(k, dtype=np.float64)
    _compiled.kernels.prim(S, order, w)
    return order[:-1], order[1:], w[1:]


def _prim(S, alive_count):
    """Edges ``(a, b, w)`` of a minimum spanning tree of the symmetric ``S``."""
    k = S.shape[0]
    dev = S.device
    inf = float("inf")
    dist = S[0].clone()
    parent = torch.zeros(k, dtype=torch.long, device=dev)
    done = torch.zeros(k, dtype=torch.bool, device=dev)
    done[0] = True
    dist[0] = inf
    a, b, w = np.empty(k - 1, np.int64), np.empty(k - 1, np.int64), np.empty(k - 1)
    for t in range(alive_count - 1):
        j = int(torch.argmin(dist))
        a[t], b[t], w[t] = int(parent[j]), j, float(dist[j])
        done[j] = True
        row = S[j]
        closer = row < dist
        closer &= ~done
        dist = torch.where(closer, row, dist)
        parent = torch.where(closer, j, parent)
        dist[j] = inf
    return a, b, w


def _kruskal(a, b, w, k, q_max, threshold):
    """Merges ``(lo, hi, w)`` in the greedy order, or None when ties are ambiguous.

    Edges of equal weight are taken together: when no cluster is an end of
    two of them, they merge disjoint pairs, and the greedy order takes them by
    their ``(lo, hi)`` slots; otherwise (two tied edges at one cluster) the
    greedy rule may pick a pair outside the tree, and None is returned.
    """
    order = np.argsort(w, kind="stable")
    parent = list(range(k))
    merges = []
    t = 0
    while t < len(order) and len(merges) < q_max:
        h = w[order[t]]
        if threshold is not None and h >= threshold:
            break
        end = t + 1
        while end < len(order) and w[order[end]] == h:
            end += 1
        group = []
        for e in order[t:end]:
            ra, rb = find_root(parent, int(a[e])), find_root(parent, int(b[e]))
            group.append((min(ra, rb), max(ra, rb)))
        ends = [r for pair in group for r in pair]
        if len(set(ends)) < len(ends):
            return None
        for lo, hi in sorted(group):
            if len(merges) == q_max:
                break
            union(parent, lo, hi)
            merges.append((lo, hi, float(h)))
        t = end
    return merges


def _kruskal_compiled(a, b, w, q_max, threshold, recorder):
    """:func:`_kruskal` by the compiled kernel, straight into ``recorder``;
    False (nothing recorded) when ties are ambiguous."""
    n = len(w)
    children = np.empty((n, 2), dtype=np.int64)
    heights = np.empty(n, dtype=np.float64)
    node = recorder.node.copy()  # kept when the kernel gives up
    m = _compiled.kernels.kruskal(np.ascontiguousarray(a, dtype=np.int64),
                                  np.ascontiguousarray(b, dtype=np.int64),
                                  np.ascontiguousarray(w, dtype=np.float64),
                                  np.argsort(w, kind="stable"), min(q_max, n),
                                  float("inf") if threshold is None else float(threshold),
                                  node, recorder.n_leaves + recorder.n_merges, children,
                                  heights)
    if m < 0:
        return False
    recorder.say(f"minimum spanning tree: {n} edges")
    recorder.node[:] = node
    recorder.extend_sequence(children[:m], heights[:m])
    recorder.replace_sequence(recorder.children, recorder.distances)
    return True


def build_exact_mst(state, recorder, stop):
    """The exact single-linkage tree from a minimum spanning tree."""
    k = state.k
    q_max = stop.max_merges(k)
    # minimum distances, read off the diagonal only (a borrowed input matrix
    # keeps its own diagonal)
    S = state.pm.matrix
    # compiled (or NumPy) on the CPU: no per-operation overhead in the N-step loop
    if S.device.type == "cpu":
        S = np.ascontiguousarray(S.numpy())
        a, b, w = _prim_compiled(S) or _prim_numpy(S)
    else:
        a, b, w = _prim(S, k)
    if _compiled.kernels is not None:
        if _kruskal_compiled(a, b, w, q_max, stop.distance_threshold, recorder):
            return
        merges = None
    else:
        merges = _kruskal(a, b, w, k, q_max, stop.distance_threshold)
    if merges is None:
        recorder.say("minimum spanning tree: tied weights at one cluster, rounds of "
                     "reciprocal nearest neighbours instead")
        state.pm.own()  # that engine writes the matrix
        return build_exact_reducible(state, recorder, stop)
    recorder.say(f"minimum spanning tree: {k - 1} edges")
    for lo, hi, h in merges:
        recorder.merge(lo, hi, h)
    recorder.replace_sequence(recorder.children, recorder.distances)
