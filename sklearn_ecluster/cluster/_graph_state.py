"""The state of the graph mode: edges between clusters with exact pair values.

Only clusters joined by an edge of the candidate graph may merge (scikit-learn's
``connectivity``). The pair value of every edge is exact, the same as the dense
pair matrix holds (SPEC 5): the cross sum S(A, B) over *all* sample pairs of
A x B (a minimum for single linkage), not only over the graph's sample edges.
It stays additive under merges, S(A u B, C) = S(A, C) + S(B, C): the parts that
were edges are summed, and only the part pairs that were not (B and C not
adjacent) are computed from the features (:func:`~._sample_distances.
cluster_pair_values`). The within sums grow the same way. Nothing of size
N x N exists: the state is O(E + K d) with E the number of edges.

Slots are compacted after every merge: the live clusters are 0..K-1, in order
of their smallest sample, like the dense engines' slots; the edges ``(u, v)``,
``u < v``, are kept sorted, so a stable sort by criterion value breaks ties by
the lower ``(u, v)`` pair, as the dense walk does.
"""

from types import SimpleNamespace

import numpy as np
import torch

from ._criterion import ClusterStats, merged_moments
from ._sample_distances import Membership, cluster_pair_values


def symmetric_edges(connectivity, n_samples):
    """Undirected sample edges ``(u, v)``, ``u < v``, of a sparse matrix, sorted.

    A pair is an edge when either ``connectivity[u, v]`` or ``[v, u]`` is
    stored and non-zero (scikit-learn symmetrises the same way); the diagonal
    is ignored.
    """
    coo = connectivity.tocoo()
    keep = coo.data != 0
    r = coo.row[keep].astype(np.int64)
    c = coo.col[keep].astype(np.int64)
    lo, hi = np.minimum(r, c), np.maximum(r, c)
    off = lo != hi
    key = np.unique(lo[off] * n_samples + hi[off])
    return key // n_samples, key % n_samples


class GraphState:
    """Edges, their pair values, and the statistics of the live clusters.

    Attributes
    ----------
    u, v : LongTensor (E,)
        Edge endpoints, ``u < v``, sorted by ``(u, v)``.
    s : Tensor (E,)
        Pair values: sums of sample distances over A x B, or minima.
    stats : ClusterStats
        Sizes, within sums (energy), means and SSD (regularisers), per slot.
    labels : LongTensor (n_samples,)
        Slot of each sample.
    criterion : Criterion
    source : sample-distance source (:mod:`._sample_distances`)
    """

    def __init__(self, u, v, s, stats, labels, criterion, source):
        self.u, self.v, self.s = u, v, s
        self.stats = stats
        self.labels = labels
        self.criterion = criterion
        self.source = source

    @classmethod
    def from_graph(cls, source, edges, leaf_labels, n_leaves, criterion):
        """The state of the initial clusters ``leaf_labels`` on the sample graph.

        ``edges`` are the undirected sample edges (two int64 arrays). Initial
        clusters are adjacent when one of their samples' edges joins them;
        their pair values and within sums come from all their sample pairs.
        """
        dev = source.device
        n = source.n_samples
        u = torch.as_tensor(edges[0], device=dev)
        v = torch.as_tensor(edges[1], device=dev)
        s = source.pairs(u, v)  # a singleton pair: its distance, sum or minimum
        labels = torch.arange(n, device=dev)
        stats = ClusterStats(sizes=torch.ones(n, dtype=source.dtype, device=dev))
        if criterion.linkage == "energy":
            stats.within = torch.zeros(n, dtype=source.dtype, device=dev)
        if criterion.needs_moments:
            stats.means, stats.ssd = source.moments(labels, n)
        state = cls(u, v, s, stats, labels, criterion, source)
        leaf = torch.as_tensor(leaf_labels, device=dev)
        if n_leaves < n:
            # merge the samples into the initial clusters; the root of a group
            # is its first sample, so the slots come out as the labels 0..K-1
            first = torch.full((n_leaves,), n, dtype=torch.long, device=dev)
            first.scatter_reduce_(0, leaf, labels, reduce="amin")
            state.merge_groups(first[leaf].cpu().numpy())
        return state

    @property
    def k(self):
        """Number of live clusters (slots)."""
        return int(self.stats.sizes.numel())

    @property
    def n_edges(self):
        return int(self.u.numel())

    def values(self):
        """Criterion value of every edge, in edge order."""
        return self.criterion.pairs(self.s, self.u, self.v, self.stats)

    def merge_groups(self, root_np):
        """Merge every slot into its group's root ``root_np[slot] <= slot``.

        The roots (group minima) stay, renumbered 0..K'-1 in order; every
        edge is mapped to its groups, parallel edges combine (sum or
        minimum), and the part pairs that were not edges are computed from
        the features.

        Returns
        -------
        keep : LongTensor
            The old slots kept (the roots), ascending.
        """
        m = self._map(root_np)
        stats = self._new_stats(m)
        s = self._new_edge_values(m, stats)
        self.u, self.v, self.s = m.new_u, m.new_v, s
        self.stats = stats
        self.labels = m.group[self.labels]
        return m.keep

    def _map(self, root_np):
        """Where every old slot and edge goes: a namespace of index tensors."""
        m = SimpleNamespace()
        dev = self.u.device
        m.k_old = k_old = self.k
        root = torch.as_tensor(root_np, device=dev)
        is_root = root == torch.arange(k_old, device=dev)
        m.keep = torch.nonzero(is_root).squeeze(1)
        m.group = group = (torch.cumsum(is_root, 0) - 1)[root]  # old slot -> new slot
        m.k_new = k_new = m.keep.numel()
        m.n_parts = torch.bincount(group, minlength=k_new)
        m.parts = Membership(group, k_new)  # the old slots of each new slot
        m.old_members = _LazyMembership(self.labels, k_old)
        m.old_keys = self.u * k_old + self.v  # sorted, as the edges are
        m.gu, m.gv = group[self.u], group[self.v]
        m.inside = m.gu == m.gv
        # edges between two groups; parallel ones become one
        lo = torch.minimum(m.gu, m.gv)[~m.inside]
        hi = torch.maximum(m.gu, m.gv)[~m.inside]
        key, m.inverse = torch.unique(lo * k_new + hi, return_inverse=True)
        m.new_u, m.new_v = torch.div(key, k_new, rounding_mode="floor"), key % k_new
        m.have = torch.bincount(m.inverse, minlength=key.numel())
        m.complete = m.have == m.n_parts[m.new_u] * m.n_parts[m.new_v]
        return m

    def _new_edge_values(self, m, stats):
        """Pair values of the new edges: the parts' edges combined, the part
        pairs that were not edges computed from the features."""
        reduce = self.criterion.pair_reduce
        s = torch.full((m.new_u.numel(),), 0.0 if reduce == "sum" else float("inf"),
                       dtype=self.s.dtype, device=self.s.device)
        s.scatter_reduce_(0, m.inverse, self.s[~m.inside], reduce=reduce)
        short = torch.nonzero(~m.complete).squeeze(1)
        if short.numel():
            # part pairs that were not edges: enumerate, drop the known ones
            e, p, q = _part_pairs(m.parts, m.new_u[short], m.new_v[short], same=False)
            p_lo, p_hi = torch.minimum(p, q), torch.maximum(p, q)
            miss = ~_member(p_lo * m.k_old + p_hi, m.old_keys)
            vals = cluster_pair_values(self.source, m.old_members, p_lo[miss],
                                       p_hi[miss], reduce)
            s.scatter_reduce_(0, short[e[miss]], vals, reduce=reduce)
        return s

    def _new_stats(self, m):
        """Sizes, within sums and moments of the new slots."""
        stats = self.stats
        dev = stats.sizes.device
        k_new, group = m.k_new, m.group
        sizes = torch.zeros(k_new, dtype=stats.sizes.dtype, device=dev)
        sizes.index_add_(0, group, stats.sizes)
        new = ClusterStats(sizes=sizes)
        if stats.within is not None:
            # W(G) = sum of the parts' W + 2 sum over their unordered part pairs
            inside = m.inside
            within = torch.zeros(k_new, dtype=stats.within.dtype, device=dev)
            within.index_add_(0, group, stats.within)
            within.index_add_(0, m.gu[inside], 2.0 * self.s[inside])
            have_in = torch.bincount(m.gu[inside], minlength=k_new)
            need_in = m.n_parts * (m.n_parts - 1) // 2
            short = torch.nonzero(have_in < need_in).squeeze(1)
            if short.numel():
                e, p, q = _part_pairs(m.parts, short, short, same=True)
                miss = ~_member(p * m.k_old + q, m.old_keys)
                vals = cluster_pair_values(self.source, m.old_members, p[miss], q[miss],
                                           "sum")
                within.index_add_(0, short[e[miss]], 2.0 * vals)
            new.within = within
        if stats.means is not None:
            _, new.means, new.ssd = merged_moments(stats.sizes, stats.means, stats.ssd,
                                                   group, k_new)
        return new


class _LazyMembership:
    """The old slots' samples, laid out only if a part pair must be computed."""

    def __init__(self, labels, n_clusters):
        self._args = (labels, n_clusters)
        self._m = None

    def __getattr__(self, name):
        if self._m is None:
            self._m = Membership(*self._args)
        return getattr(self._m, name)


def _part_pairs(parts, ga, gb, *, same):
    """The pairs of old slots (parts) of the new-slot pairs ``(ga[e], gb[e])``.

    Returns ``(e, p, q)``: part ``p`` of ``ga[e]`` and part ``q`` of ``gb[e]``
    (all of them; with ``same``, ``ga == gb`` and only ``p < q``).
    """
    na, nb = parts.sizes[ga], parts.sizes[gb]
    counts = na * nb
    e = torch.repeat_interleave(torch.arange(ga.numel(), device=ga.device), counts)
    starts = torch.cumsum(counts, 0) - counts
    local = torch.arange(e.numel(), device=ga.device) - starts[e]
    a = torch.div(local, nb[e], rounding_mode="floor")
    b = local % nb[e]
    p = parts.order[parts.offsets[ga[e]] + a]
    q = parts.order[parts.offsets[gb[e]] + b]
    if same:
        keep = a < b  # parts are in ascending order: p < q
        e, p, q = e[keep], p[keep], q[keep]
    return e, p, q


def _member(values, sorted_set):
    """Boolean mask: which ``values`` are in the sorted tensor ``sorted_set``."""
    if sorted_set.numel() == 0:
        return torch.zeros(values.shape, dtype=torch.bool, device=values.device)
    pos = torch.searchsorted(sorted_set, values).clamp_(max=sorted_set.numel() - 1)
    return sorted_set[pos] == values
