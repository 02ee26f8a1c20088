"""The cluster-level pair matrix and the merge update (SPEC 5).

``S[a, b]`` holds, for clusters a and b,

- the sum of sample distances over A x B (energy and average linkage), which is
  additive under merges: S(A u B, C) = S(A, C) + S(B, C); the diagonal S(A, A)
  is the within sum over ordered pairs (zero self-pairs included);
- or the minimum sample distance (single linkage): S(A u B, C) = min(S(A, C), S(B, C)).

So the N x N sample distance matrix is computed once per fit and then reused
in place as the cluster matrix: a merge step costs O(m K) for the update.
Merged-away slots stay in place as dead slots (masked by the criterion) until
40% of the slots are dead; then the live block is compacted to the
front of the same storage in one gather pass. Only one N x N buffer ever
exists.
"""

import warnings

import numpy as np
import torch

from ..utils import check_memory, rows_per_block, self_distances
from ..utils._distances import distance_rows
from . import _compiled


class PairMatrix:
    """A W x W cluster pair matrix (W slots, K of them alive) in a flat buffer.

    Parameters
    ----------
    storage : Tensor (capacity,)
        Flat buffer; the matrix is ``storage[:W*W].view(W, W)``.
    n_clusters : int
        Initial number of slots, all alive.
    reduce : {"sum", "amin"}
    block_rows : callable
        ``block_rows(n_cols) -> int``: rows per temporary block.

    Attributes
    ----------
    width : int
        Number of slots W.
    alive : BoolTensor (W,)
    k : int
        Number of live slots (clusters).
    """

    #: compact when this fraction of the slots is dead
    compact_fraction = 0.4
    #: the storage is the caller's matrix (read only, its diagonal untouched)
    borrowed = False

    def __init__(self, storage, n_clusters, reduce, block_rows):
        self.storage = storage
        self.width = n_clusters
        self.k = n_clusters
        self.alive = torch.ones(n_clusters, dtype=torch.bool, device=storage.device)
        self.reduce = reduce
        self.block_rows = block_rows

    def own(self):
        """Replace a borrowed storage by a copy with the diagonal a merge needs."""
        if not self.borrowed:
            return
        self.storage = self.storage.clone()
        self.matrix.fill_diagonal_(float("inf") if self.reduce == "amin" else 0.0)
        self.borrowed = False

    @property
    def matrix(self):
        w = self.width
        return self.storage[: w * w].view(w, w)

    def penalty(self):
        """0 for live slots, +inf for dead ones (added to the criterion)."""
        pen = torch.zeros(self.width, dtype=self.storage.dtype, device=self.storage.device)
        return pen.masked_fill_(~self.alive, float("inf"))

    def diagonal(self):
        return torch.diagonal(self.matrix)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_samples(cls, X, labels, n_clusters, *, metric, reduce, working_memory,
                     read_only=False):
        """Build S from the samples and an initial labelling (0..K-1, ordered).

        Singletons (``labels is None``): S is the distance matrix itself,
        computed on the upper block triangle and mirrored (exactly symmetric).
        Otherwise S = P^T D P is accumulated from row blocks of D, so the N x N
        matrix is never materialised when K < N.

        ``read_only=True`` promises that the caller reads S off the diagonal
        and never writes it before calling :meth:`own` (Prim's tree): then an
        exactly symmetric precomputed matrix on the CPU is borrowed, not copied.
        """
        n = X.shape[0]
        k = n if labels is None else n_clusters

        def block_rows(n_cols, n_buffers=2):
            return rows_per_block(n_cols, X.element_size(), X.device, working_memory,
                                  n_buffers=n_buffers)

        if (read_only and labels is None and metric == "precomputed"
                and X.device.type == "cpu" and X.is_contiguous()
                and exactly_symmetric(X.numpy())):
            pm = cls(X.reshape(-1), k, reduce, block_rows)
            pm.borrowed = True
            return pm
        nbytes = k * k * X.element_size()
        check_memory(nbytes, X.device, f"The {k} x {k} cluster pair matrix")
        storage = _empty_buffer(k * k, X.dtype, X.device)
        pm = cls(storage, k, reduce, block_rows)
        S = pm.matrix
        if labels is None:
            if metric == "precomputed":
                # exactly symmetric, zero diagonal (the tie rules need it); an
                # exactly symmetric input is kept to the bit: (x + x) / 2 = x
                _symmetrize_(S, X)
                S.fill_diagonal_(0.0)
            else:  # written in place, strip by strip (no N x N temporary)
                self_distances(X, metric, out=S)
            if reduce == "amin":
                S.fill_diagonal_(float("inf"))  # never used: self-pairs are masked
            return pm

        if reduce == "sum":
            S.zero_()
        else:
            S.fill_(float("inf"))
        step = block_rows(n + k)
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            d = distance_rows(X, r0, r1, metric, working_memory=working_memory)
            if r1 > r0:  # exact zero self-distances, as in the singleton path
                idx = torch.arange(r0, r1, device=X.device)
                d[idx - r0, idx] = 0.0
            part = _segment_reduce(d, labels, k, dim=1, reduce=reduce)
            _reduce_into(S, 0, labels[r0:r1], part, reduce)
        # blocks were accumulated in different orders: make S exactly symmetric
        _symmetrize_(S, step=max(1, int((block_rows(k) * k) ** 0.5)))
        return pm

    # ------------------------------------------------------------------ merge
    def merge(self, root):
        """Merge the slots into their group representatives.

        Parameters
        ----------
        root : LongTensor (W,)
            ``root[i]`` is the representative slot of slot i's group, with
            ``root[i] <= i`` (the representative is the group's smallest slot).

        Returns
        -------
        keep : LongTensor (K,) or None
            When the matrix was compacted, the old slots kept (ascending), in
            their new order; None otherwise.
        """
        S = self.matrix
        w = self.width
        moved = torch.nonzero(root != torch.arange(w, device=root.device)).squeeze(1)
        if moved.numel() == 0:
            return None
        targets = root[moved]
        # rows: S[t] <- reduce of the rows of t's group (contiguous reads)
        _reduce_into(S, 0, targets, S.index_select(0, moved), self.reduce)
        # columns from rows: S was symmetric, so for a live slot r outside the
        # groups the new S[r, t] is the new S[t, r]. Fold the moved columns
        # within the g changed rows only (then the diagonal of a group sums all
        # G x G pairs), and write those rows back as rows and as columns:
        # W x g scattered writes instead of reading and updating W x m columns.
        tgt = torch.unique(targets)
        rt = S.index_select(0, tgt)
        _reduce_into(rt, 1, targets, rt.index_select(1, moved), self.reduce)
        # pairs of two changed groups were summed in two orders: keep the value
        # of the lower slot's row on both sides, so S stays exactly symmetric
        sub = rt[:, tgt]
        rt[:, tgt] = torch.triu(sub) + torch.triu(sub, 1).T
        S[tgt] = rt
        S[:, tgt] = rt.T
        self.alive[moved] = False
        self.k = int(self.alive.sum())
        if self.width - self.k < self.compact_fraction * self.width:
            return None
        keep = torch.nonzero(self.alive).squeeze(1)
        self._compact(keep)
        return keep

    def _compact(self, keep):
        """Move the ``keep`` x ``keep`` block to the front of the storage.

        Row p of the new matrix lands at flat offset p*K' <= keep[p]*K, and
        blocks are written in increasing order, so a block never overwrites
        rows that a later block still has to read.
        """
        old = self.matrix
        k_new = keep.numel()
        new = self.storage[: k_new * k_new].view(k_new, k_new)
        # two gathers of whole rows, then of columns: an advanced index
        # old[rows[:, None], keep[None, :]] would materialise two int64 index
        # tensors of the block's shape (4x the block's own size in float32)
        step = max(1, self.block_rows(self.width + k_new, n_buffers=1))
        for p0 in range(0, k_new, step):
            p1 = min(k_new, p0 + step)
            rows = old.index_select(0, keep[p0:p1])
            new[p0:p1] = rows.index_select(1, keep)
            del rows
        self.width = self.k = k_new
        self.alive = torch.ones(k_new, dtype=torch.bool, device=self.storage.device)


def _empty_buffer(n, dtype, device):
    """An uninitialised vector of ``n`` entries for the pair matrix.

    On the CPU it is NumPy's memory, which NumPy advises the kernel to back
    with transparent huge pages: the first touch of a fresh N x N buffer then
    costs a few hundred page faults instead of one per 4 KiB (a 200 MB matrix
    filled 4x faster here than in torch's own allocation).
    """
    numpy_dtype = {torch.float32: np.float32, torch.float64: np.float64}.get(dtype)
    if device.type != "cpu" or numpy_dtype is None:
        return torch.empty(n, dtype=dtype, device=device)
    return torch.from_numpy(np.empty(n, dtype=numpy_dtype))


def _symmetrize_(S, X=None, step=256):
    """S <- (X + X^T) / 2 (X None: S itself, in place), a pair of square tiles at a time.

    Each transposed read stays within a tile held in cache (a plain ``X.T``
    read walks the whole matrix column by column, several times slower than
    a copy), and both tiles of a pair are read before either is written, so
    the in-place case is safe. The values are ``(x + y) * 0.5`` exactly: an
    exactly symmetric input is kept to the bit. On the CPU in NumPy
    (single-threaded kernels, no hand-off between torch's threads per tile).
    """
    if S.device.type != "cpu":
        src = S if X is None else X
        k = S.shape[0]
        for i0 in range(0, k, step):
            i1 = min(k, i0 + step)
            for j0 in range(i0, k, step):
                j1 = min(k, j0 + step)
                avg = (src[i0:i1, j0:j1] + src[j0:j1, i0:i1].T) * 0.5
                S[i0:i1, j0:j1] = avg
                S[j0:j1, i0:i1] = avg.T
        return
    src = S.numpy() if X is None else X.contiguous().numpy()
    if exactly_symmetric(src, step):  # the average would give src to the bit
        if X is not None:
            # a plain copy (about a third of the tiled average)
            np.copyto(S.numpy(), src)
        return
    if _compiled.kernels is not None and src.dtype in (np.float32, np.float64):
        _compiled.kernels.symmetrize(src, S.numpy())  # the same values, one compiled pass
        return
    S = S.numpy()
    k = S.shape[0]
    tmp = np.empty((step, step), dtype=S.dtype)
    for i0 in range(0, k, step):
        i1 = min(k, i0 + step)
        for j0 in range(i0, k, step):
            j1 = min(k, j0 + step)
            tot = np.add(src[i0:i1, j0:j1], src[j0:j1, i0:i1].T,
                         out=tmp[: i1 - i0, : j1 - j0])
            np.multiply(tot, 0.5, out=S[i0:i1, j0:j1])
            if j0 != i0:
                np.multiply(tot.T, 0.5, out=S[j0:j1, i0:i1])


def exactly_symmetric(A, step=256):
    """Whether the square NumPy ``A`` equals its transpose exactly.

    Read-only, a pair of square tiles at a time (each transposed read stays
    in cache), stopping at the first tile pair that differs; compiled when
    the package was built with its kernels.
    """
    if _compiled.kernels is not None and A.dtype in (np.float32, np.float64) \
            and A.flags.c_contiguous:
        return _compiled.kernels.is_symmetric(A)
    k = A.shape[0]
    for i0 in range(0, k, step):
        i1 = min(k, i0 + step)
        for j0 in range(i0, k, step):
            j1 = min(k, j0 + step)
            if not np.array_equal(A[i0:i1, j0:j1], A[j0:j1, i0:i1].T):
                return False
    return True


def _segment_reduce(values, segments, n_segments, *, dim, reduce):
    """Sum (or min) of ``values`` along ``dim`` grouped by ``segments``."""
    shape = list(values.shape)
    shape[dim] = n_segments
    if reduce == "sum":
        out = torch.zeros(shape, dtype=values.dtype, device=values.device)
        return out.index_add_(dim, segments, values)
    out = torch.full(shape, float("inf"), dtype=values.dtype, device=values.device)
    _reduce_into(out, dim, segments, values, "amin")
    return out


def _reduce_into(target, dim, index, source, reduce):
    if reduce == "sum":
        target.index_add_(dim, index, source)
    else:
        with warnings.catch_warnings():  # "index_reduce() is in beta"
            warnings.simplefilter("ignore", UserWarning)
            target.index_reduce_(dim, index, source, "amin", include_self=True)
