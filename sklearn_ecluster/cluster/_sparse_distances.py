"""Sample distances from a sparse precomputed matrix: the stored pairs, the rest at one value.

The source of the graph mode for ``metric="precomputed"`` with a sparse X. A
pair that X stores has that distance; every other pair has the distance
``missing_distance``. For the k-reciprocal Jaccard distance
(:func:`~sklearn_ecluster.metrics.jaccard_distance` with ``sparse=True``)
that is exact, not an approximation: a pair of samples without a common
neighbour is at distance 1. The cross sums the graph mode needs are then
``S(A, B) = missing |A| |B| + sum over the stored pairs of A x B of
(d - missing)``, and they are computed pair by pair from a sorted key array
(:func:`~._sample_distances.cluster_pair_values`). Memory: the stored
off-diagonal pairs (an int64 key and a value each), nothing of size N x N.
"""

import numpy as np
import scipy.sparse as sp
import torch

#: stored entries handled at once when the keys are built and checked
_BLOCK = 1 << 22


class SparsePrecomputedDistances:
    """The distances of a sparse symmetric matrix, ``missing`` where nothing is stored.

    Parameters
    ----------
    D : sparse matrix (n_samples, n_samples)
        Its pattern must be symmetric ((j, i) stored whenever (i, j) is);
        its values are symmetrised as the dense path does, ``(D + D.T) / 2``.
        The diagonal is ignored (a sample is at distance 0 from itself).
    missing : float
        The distance of every pair that ``D`` does not store.
    dtype : torch.dtype
    device : torch.device
    """

    metric = "precomputed"

    def __init__(self, D, missing, dtype, device):
        D = D.tocsr()
        if not D.has_canonical_format:
            D = D.copy()
            D.sum_duplicates()  # sorted columns, duplicates summed (scipy's meaning)
        self.n_samples = n = int(D.shape[0])
        self.missing = float(missing)
        self.dtype = dtype
        self.device = device
        keys, vals = [], []
        for rows, cols, v in _csr_blocks(D):
            off = cols != rows
            keys.append(torch.as_tensor(rows[off].astype(np.int64) * n + cols[off]))
            vals.append(torch.as_tensor(v[off]).to(dtype))
        # row-major order: a canonical CSR gives the keys sorted
        self.keys = (torch.cat(keys) if keys else torch.zeros(0, dtype=torch.long)).to(device)
        self.values = (torch.cat(vals) if vals else torch.zeros(0, dtype=dtype)).to(device)
        del keys, vals
        self._symmetrize()

    def _symmetrize(self):
        """Check the pattern is symmetric; average each value with its mirror's."""
        n, keys = self.n_samples, self.keys
        if keys.numel() == 0:
            return
        mirror_pos = torch.empty_like(keys)
        for e0 in range(0, keys.numel(), _BLOCK):
            k = keys[e0:e0 + _BLOCK]
            mirrored = (k % n) * n + torch.div(k, n, rounding_mode="floor")
            pos = torch.searchsorted(keys, mirrored).clamp_(max=keys.numel() - 1)
            bad = keys[pos] != mirrored
            if bool(bad.any()):
                t = int(torch.nonzero(bad)[0]) + e0
                i, j = divmod(int(keys[t]), n)
                raise ValueError(
                    f"A sparse precomputed X must have a symmetric pattern: it stores "
                    f"({i}, {j}) but not ({j}, {i}). Store both (the value of a pair "
                    f"not stored is missing_distance={self.missing!r})."
                )
            mirror_pos[e0:e0 + _BLOCK] = pos
        self.values = (self.values + self.values[mirror_pos]) * 0.5

    def pairs(self, i, j):
        """Distances of the sample pairs ``(i[t], j[t])``: stored, 0 on the diagonal,
        else ``missing``."""
        out = torch.full(i.shape, self.missing, dtype=self.dtype, device=self.device)
        if self.keys.numel():
            key = i * self.n_samples + j
            pos = torch.searchsorted(self.keys, key).clamp_(max=self.keys.numel() - 1)
            found = self.keys[pos] == key
            out[found] = self.values[pos[found]]
        out[i == j] = 0.0
        return out

    def moments(self, labels, n_clusters):
        raise ValueError("A precomputed distance has no cluster means or sums of squares: "
                         "the SSD regularisers need the features.")

    def support_edges(self):
        """The stored pairs as undirected edges ``(u, v)``, ``u < v``, sorted (numpy)."""
        u = torch.div(self.keys, self.n_samples, rounding_mode="floor")
        v = self.keys % self.n_samples
        upper = u < v
        return u[upper].cpu().numpy(), v[upper].cpu().numpy()

    def nearest_stored(self, k):
        """Each sample's ``k`` nearest stored neighbours (ties by column) as a CSR graph."""
        n = self.n_samples
        rows = torch.div(self.keys, n, rounding_mode="floor")
        n_keys = self.keys.numel()
        keep = torch.zeros(n_keys, dtype=torch.bool, device=self.device)
        e0 = 0
        while e0 < n_keys:
            e1 = min(n_keys, e0 + _BLOCK)
            if e1 < n_keys:  # end the block with a whole row
                e1 = int(torch.searchsorted(rows, rows[e1 - 1], right=True))
            r, v = rows[e0:e1], self.values[e0:e1]
            # by (row, value, column): columns ascend within a row, sorts are stable
            order = torch.argsort(v, stable=True)
            order = order[torch.argsort(r[order], stable=True)]
            sorted_rows = r[order]
            rank = torch.arange(r.numel(), device=r.device) - torch.searchsorted(
                sorted_rows, sorted_rows)
            keep[e0 + order[rank < k]] = True
            e0 = e1
        cols = (self.keys % n)[keep].cpu().numpy()
        r = rows[keep].cpu().numpy()
        return sp.csr_matrix((np.ones(len(cols), dtype=np.int8), (r, cols)), shape=(n, n))

    def row_entries(self, r0, r1):
        """Stored entries of rows ``r0:r1``: ``(local row, column, value - missing)``."""
        n = self.n_samples
        bounds = torch.tensor([r0 * n, r1 * n], device=self.device)
        e0, e1 = (int(b) for b in torch.searchsorted(self.keys, bounds))
        k = self.keys[e0:e1]
        return (torch.div(k, n, rounding_mode="floor") - r0, k % n,
                self.values[e0:e1] - self.missing)

    def take(self, idx):
        """The source restricted to the samples ``idx`` (sorted), renumbered 0..len-1."""
        n = self.n_samples
        where = torch.full((n,), -1, dtype=torch.long, device=self.device)
        idx_t = torch.as_tensor(idx, device=self.device)
        where[idx_t] = torch.arange(idx_t.numel(), device=self.device)
        a = where[torch.div(self.keys, n, rounding_mode="floor")]
        b = where[self.keys % n]
        both = (a >= 0) & (b >= 0)
        sub = object.__new__(SparsePrecomputedDistances)
        sub.n_samples, sub.missing = int(idx_t.numel()), self.missing
        sub.dtype, sub.device = self.dtype, self.device
        sub.keys = a[both] * sub.n_samples + b[both]  # idx sorted: still sorted
        sub.values = self.values[both]
        return sub

    @property
    def shape(self):
        return (self.n_samples, self.n_samples)


def _csr_blocks(D):
    """Row blocks of a CSR matrix with about ``_BLOCK`` entries: (rows, cols, values)."""
    n = D.shape[0]
    r0 = 0
    while r0 < n:
        r1 = int(np.searchsorted(D.indptr, D.indptr[r0] + _BLOCK, side="right")) - 1
        r1 = min(n, max(r1, r0 + 1))
        e0, e1 = D.indptr[r0], D.indptr[r1]
        rows = np.repeat(np.arange(r0, r1, dtype=np.int64), np.diff(D.indptr[r0:r1 + 1]))
        yield rows, D.indices[e0:e1].astype(np.int64), D.data[e0:e1]
        r0 = r1
