"""Sample distances from a sparse precomputed matrix: the stored pairs, the rest at one value.

The source of the graph mode for ``metric="precomputed"`` with a sparse X. A
pair that X stores has that distance; every other pair has the distance
``missing_distance``. For the k-reciprocal Jaccard distance
(:func:`~sklearn_ecluster.metrics.jaccard_distance` with ``sparse=True``)
that is exact, not an approximation: a pair of samples without a common
neighbour is at distance 1. The cross sums the graph mode needs are then
``S(A, B) = missing |A| |B| + sum over the stored pairs of A x B of
(d - missing)``, computed pair by pair (:func:`~._sample_distances.
cluster_pair_values`), each pair looked up in its row of the CSR matrix.
Memory: the matrix the user holds, read in place; nothing of size N x N.
"""

import numpy as np
import scipy.sparse as sp
import torch

from ..utils._sparse import csr_row_blocks

#: stored entries handled at once (a dozen int64 temporaries each in the
#: binary search of the symmetry check: about 50 MiB)
_BLOCK = 1 << 19


class SparsePrecomputedDistances:
    """The distances of a sparse symmetric matrix, ``missing`` where nothing is stored.

    The matrix's own CSR arrays are read in place (a pair is found by a
    vectorised binary search in its row's sorted columns): the source adds
    nothing of the size of the stored pairs unless the values are not
    exactly symmetric (then one averaged copy of them).

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
    #: sample pairs looked up at once by ``cluster_pair_values`` (a dozen
    #: int64 temporaries each in the binary search: about 50 MiB)
    max_pairs = 1 << 19

    def __init__(self, D, missing, dtype, device):
        D = D.tocsr()
        if not D.has_canonical_format:
            D = D.copy()
            D.sum_duplicates()  # sorted columns, duplicates summed (scipy's meaning)
        self.matrix = D
        self.n_samples = int(D.shape[0])
        self.missing = float(missing)
        self.dtype = dtype
        self.device = device
        self.indptr = torch.from_numpy(D.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(D.indices).to(device)
        self.values = torch.from_numpy(D.data).to(device=device, dtype=dtype)
        lengths = np.diff(D.indptr)
        self._steps = int(np.ceil(np.log2(int(lengths.max()) + 1))) if D.nnz else 0
        self._symmetrize()

    def _rows_of(self, e0, e1):
        """Row of each stored entry ``e0:e1``."""
        return torch.searchsorted(self.indptr, torch.arange(e0, e1, device=self.device),
                                  right=True) - 1

    def _find(self, i, j):
        """Position of the stored entry (i[t], j[t]), and whether it is stored."""
        nnz = self.indices.numel()
        lo, end = self.indptr[i], self.indptr[i + 1]
        hi = end.clone()
        j32 = j.to(self.indices.dtype)
        for _ in range(self._steps):  # binary search in each row's sorted columns
            mid = torch.div(lo + hi, 2, rounding_mode="floor")
            right = self.indices[mid.clamp(max=nnz - 1)] < j32
            active = lo < hi
            lo = torch.where(active & right, mid + 1, lo)
            hi = torch.where(active & ~right, mid, hi)
        pos = lo.clamp(max=max(nnz - 1, 0))
        found = (lo < end) & (self.indices[pos] == j32) if nnz else lo < end
        return pos, found

    def _symmetrize(self):
        """Check the pattern is symmetric; average the values with their mirrors'."""
        nnz = self.indices.numel()
        averaged = None
        for e0 in range(0, nnz, _BLOCK):
            e1 = min(nnz, e0 + _BLOCK)
            rows, cols = self._rows_of(e0, e1), self.indices[e0:e1].long()
            pos, found = self._find(cols, rows)
            if not bool(found.all()):
                t = int(torch.nonzero(~found)[0])
                i, j = int(rows[t]), int(cols[t])
                raise ValueError(
                    f"A sparse precomputed X must have a symmetric pattern: it stores "
                    f"({i}, {j}) but not ({j}, {i}). Store both (the value of a pair "
                    f"not stored is missing_distance={self.missing!r})."
                )
            mirror = self.values[pos]
            if averaged is None and not torch.equal(mirror, self.values[e0:e1]):
                averaged = self.values.clone()  # first asymmetry: one averaged copy
            if averaged is not None:
                averaged[e0:e1] = (self.values[e0:e1] + mirror) * 0.5
        if averaged is not None:
            self.values = averaged

    def pairs(self, i, j):
        """Distances of the sample pairs ``(i[t], j[t])``: stored, 0 on the diagonal,
        else ``missing``."""
        pos, found = self._find(i, j)
        out = torch.where(found, self.values[pos] if self.values.numel() else
                          torch.zeros((), dtype=self.dtype, device=self.device),
                          torch.full((), self.missing, dtype=self.dtype, device=self.device))
        out[i == j] = 0.0
        return out

    def moments(self, labels, n_clusters):
        raise ValueError("A precomputed distance has no cluster means or sums of squares: "
                         "the SSD regularisers need the features.")

    def support_edges(self):
        """The stored pairs as undirected edges ``(u, v)``, ``u < v``, sorted (numpy)."""
        us, vs = [], []
        for _, _, rows, cols, _ in csr_row_blocks(self.matrix, _BLOCK):
            upper = cols > rows
            us.append(rows[upper])
            vs.append(cols[upper].astype(np.int64))
        empty = np.zeros(0, dtype=np.int64)
        return (np.concatenate(us) if us else empty), (np.concatenate(vs) if vs else empty)

    def nearest_stored(self, k):
        """Each sample's ``k`` nearest stored neighbours (ties by column) as a CSR graph."""
        n = self.n_samples
        out_rows, out_cols = [], []
        values = self.values.cpu().numpy()  # the symmetrised values, as pairs() gives
        for r0, r1, rows, cols, _ in csr_row_blocks(self.matrix, _BLOCK):
            vals = values[self.matrix.indptr[r0]:self.matrix.indptr[r1]]
            off = cols != rows
            rows, cols, vals = rows[off], cols[off], vals[off]
            order = np.lexsort((cols, vals, rows))  # by row, then value, then column
            sorted_rows = rows[order]
            rank = np.arange(len(order)) - np.searchsorted(sorted_rows, sorted_rows)
            keep = order[rank < k]
            out_rows.append(rows[keep])
            out_cols.append(cols[keep])
        r = np.concatenate(out_rows) if out_rows else np.zeros(0, dtype=np.int64)
        c = np.concatenate(out_cols) if out_cols else np.zeros(0, dtype=np.int64)
        return sp.csr_matrix((np.ones(len(c), dtype=np.int8), (r, c)), shape=(n, n))

    def row_entries(self, r0, r1):
        """Stored off-diagonal entries of rows ``r0:r1``: ``(local row, column,
        value - missing)``."""
        e0, e1 = int(self.indptr[r0]), int(self.indptr[r1])
        rows, cols = self._rows_of(e0, e1), self.indices[e0:e1].long()
        off = rows != cols
        return rows[off] - r0, cols[off], self.values[e0:e1][off] - self.missing

    def take(self, idx):
        """The source restricted to the samples ``idx`` (sorted), renumbered 0..len-1."""
        return SparsePrecomputedDistances(self.matrix[idx][:, idx], self.missing,
                                          self.dtype, self.device)

    @property
    def entries_per_row(self):
        """Mean number of stored entries a row."""
        return self.indices.numel() / max(self.n_samples, 1)

    @property
    def shape(self):
        return (self.n_samples, self.n_samples)
