"""The cached exact engine: one merge at a time, the criterion refreshed after
every merge, for any criterion (reducible or not).

A nearest-neighbour cache (``nn[i]``, ``nn_value[i]`` over all active j != i)
makes each merge O(K) instead of a rescan of all K^2 pairs: after merging b
into a, only row a, the rows whose neighbour was a or b, and the comparison of
every row with the new cluster a change. This is exact for any criterion that
depends on the two clusters only (all of ours), reducible or not. Ties pick
the lowest ``(i, j)`` pair, as in the batched mode.
"""

import torch

from ._criterion import merged_moments


class ExactMerger:
    """Greedy agglomeration with a nearest-neighbour cache over an N x N matrix.

    The pair matrix is not compacted (rows of merged clusters are masked), so
    slot ids stay stable for the whole run.
    """

    def __init__(self, state):
        pm = state.pm
        self.pm = pm
        self.S = pm.matrix
        self.stats = state.stats
        self.criterion = state.criterion
        self.moments = state.criterion.needs_moments
        k = pm.k
        dev = self.S.device
        self.active = torch.ones(k, dtype=torch.bool, device=dev)
        self.inf = torch.tensor(float("inf"), dtype=self.S.dtype, device=dev)
        self.nn = torch.zeros(k, dtype=torch.long, device=dev)
        self.nn_value = torch.full((k,), float("inf"), dtype=self.S.dtype, device=dev)
        self.n_active = k
        step = max(1, pm.block_rows(k))
        all_rows = torch.arange(k, device=dev)
        for r0 in range(0, k, step):
            self._refresh_rows(all_rows[r0 : r0 + step])

    def _rows(self, rows):
        """Criterion of ``rows`` against every slot; inactive and self = inf."""
        d = self.criterion.block(
            self.S.index_select(0, rows), rows, slice(None), self.stats, symmetric=True,
        )
        d.masked_fill_(~self.active.unsqueeze(0), float("inf"))
        d[torch.arange(rows.numel(), device=rows.device), rows] = float("inf")
        return d

    def _refresh_rows(self, rows):
        if rows.numel() == 0:
            return
        d = self._rows(rows)
        val, idx = torch.min(d, dim=1)  # first minimum: lowest j among ties
        self.nn[rows] = idx
        self.nn_value[rows] = val

    def next_pair(self):
        """``(i, j, value)`` of the pair to merge next, ``i < j``."""
        val, i = torch.min(self.nn_value, dim=0)
        i = int(i)
        j = int(self.nn[i])
        return min(i, j), max(i, j), float(val)

    def merge(self, a, b):
        """Merge cluster b into cluster a (``a < b``) and update the cache."""
        S, st = self.S, self.stats
        if self.pm.reduce == "sum":
            S[a].add_(S[b])
            S[:, a].add_(S[:, b])
        else:
            torch.minimum(S[a], S[b], out=S[a])
            S[:, a] = torch.minimum(S[:, a], S[:, b])
        self.active[b] = False
        self.n_active -= 1
        if self.moments:
            root = torch.tensor([a, a], device=S.device)
            pair = torch.tensor([a, b], device=S.device)
            sizes, means, ssd = merged_moments(
                st.sizes[pair], st.means[pair], st.ssd[pair], root - a, 1
            )
            st.means[a] = means[0]
            st.ssd[a] = ssd[0]
        st.sizes[a] += st.sizes[b]
        if st.within is not None:
            st.within[a] = S[a, a]
        self.nn_value[b] = float("inf")

        row_a = self._rows(torch.tensor([a], device=S.device))[0]
        val, idx = torch.min(row_a, dim=0)
        self.nn[a], self.nn_value[a] = idx, val
        # rows whose neighbour disappeared or changed must be rescanned
        stale = self.active & ((self.nn == a) | (self.nn == b))
        stale[a] = False
        # every other row: is the new cluster a closer than its neighbour?
        closer = self.active & ((row_a < self.nn_value) | ((row_a == self.nn_value) & (self.nn > a)))
        closer &= ~stale
        closer[a] = False
        self.nn = torch.where(closer, torch.full_like(self.nn, a), self.nn)
        self.nn_value = torch.where(closer, row_a, self.nn_value)
        self._refresh_rows(torch.nonzero(stale).squeeze(1))


def build_exact_cached(state, recorder, stop):
    """Greedy merges in the exact (D, i, j) order until the stopping rule.

    Every merge is one step of ``history``; at ``verbose=1`` a line is printed
    every twentieth of the merges (not one per merge).
    """
    merger = ExactMerger(state)
    total = merger.n_active - stop.target
    every = max(1, total // 20)
    while merger.n_active > stop.target and (stop.max_steps is None
                                             or recorder.n_steps < stop.max_steps):
        i, j, v = merger.next_pair()
        if stop.distance_threshold is not None and v >= stop.distance_threshold:
            break
        recorder.merge(i, j, v)
        merger.merge(i, j)
        done = recorder.n_merges
        recorder.end_step(merger.n_active, 1, v, echo=done % every == 0 or done == total)
