"""Features in a Dask array: sample distances and moments computed on the cluster.

:class:`DaskSampleDistances` is the sample-distance source of the graph mode
(see :mod:`._sample_distances`) for features that do not fit one machine: the
client holds only the pair indices it asks about and the answers (one value
per pair, or the (K, d) means and K SSDs of the clusters); the rows of X stay
on the Dask workers. Dask is imported only when a Dask array is met, so that
the package works without it.

Persist X on the cluster first (``X = X.persist()``): every call runs a graph
on the row chunks of X, and a chunk that is not persisted is recomputed from
its own graph each time.
"""

import sys

import numpy as np
import torch

from ..utils import rows_per_block
from ._sample_distances import SOURCE_METRICS


def is_dask_array(X):
    """Whether ``X`` is a ``dask.array.Array``, without importing Dask.

    A Dask array can only exist once ``dask.array`` has been imported, so the
    module is looked up in ``sys.modules`` rather than imported.
    """
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(X, da.Array)


def _import_dask():
    try:
        import dask
        import dask.array  # noqa: F401 (registers dask.array for is_dask_array)
    except ImportError as exc:  # pragma: no cover - only without dask
        raise ImportError(
            "Dask input needs dask: pip install 'dask[distributed]' "
            "(or pip install 'sklearn-ecluster[dask]')."
        ) from exc
    return dask


def row_chunks(X):
    """``X`` with one chunk across the features, its delayed row blocks and offsets.

    Returns
    -------
    X : dask.array.Array
        Rechunked so that a block holds whole rows.
    blocks : list of dask.delayed.Delayed
        The row blocks, in order.
    offsets : ndarray (n_blocks + 1,)
        Block ``b`` holds rows ``offsets[b]:offsets[b + 1]``.
    """
    _import_dask()
    if len(X.chunks[1]) != 1:
        X = X.rechunk({1: -1})
    blocks = list(X.to_delayed().ravel())
    offsets = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(np.int64)
    return X, blocks, offsets


def _pair_distances(Xa, Xb, ia, ib, metric, working_memory):
    """Distances of the rows ``Xa[ia[t]]`` and ``Xb[ib[t]]`` (a task on a worker).

    The same differences (not the Gram expansion) as
    :meth:`TensorSampleDistances.pairs`, in bounded chunks of pairs.
    """
    A = torch.from_numpy(np.ascontiguousarray(Xa))
    B = torch.from_numpy(np.ascontiguousarray(Xb))
    ia = torch.from_numpy(ia)
    ib = torch.from_numpy(ib)
    out = torch.empty(ia.numel(), dtype=A.dtype)
    step = rows_per_block(A.shape[1], A.element_size(), A.device, working_memory,
                          n_buffers=3)
    for p0 in range(0, ia.numel(), step):
        p1 = min(ia.numel(), p0 + step)
        diff = A.index_select(0, ia[p0:p1]).sub_(B.index_select(0, ib[p0:p1]))
        d = torch.linalg.vector_norm(diff, dim=1)
        out[p0:p1] = d if metric == "euclidean" else d.square_()
    return out.numpy()


def _chunk_sums(Xc, labels):
    """Clusters present in one row block, their counts and float64 sums.

    Only the clusters present: with many clusters (up to one per sample) a
    dense (K, d) array per block would be the size of X.
    """
    Xc = torch.from_numpy(np.asarray(Xc, dtype=np.float64))
    present, local = torch.unique(torch.from_numpy(labels), return_inverse=True)
    counts = torch.bincount(local, minlength=present.numel())
    sums = torch.zeros((present.numel(), Xc.shape[1]), dtype=torch.float64)
    sums.index_add_(0, local, Xc)
    return present.numpy(), counts.numpy(), sums.numpy()


def _chunk_ssd(Xc, labels, means):
    """Sum of ``||x - mean(label)||^2`` per cluster over one row block (float64)."""
    Xc = np.asarray(Xc, dtype=np.float64)
    dev = Xc - means[labels]
    return np.bincount(labels, weights=np.einsum("ij,ij->i", dev, dev),
                       minlength=means.shape[0])


class DaskSampleDistances:
    """Sample distances from features held in a Dask array (computed on the cluster).

    The same interface as :class:`TensorSampleDistances`: ``n_samples``,
    ``dtype`` (a torch dtype), ``device`` (the CPU: the answers come back to
    the client as CPU tensors), ``metric``, :meth:`pairs` and :meth:`moments`.

    Parameters
    ----------
    X : dask.array.Array (n_samples, n_features)
        float32 or float64 features, chunked by rows (a chunking across the
        features is merged first). Persist it (``X.persist()``) so that its
        chunks are not recomputed at every call.
    metric : {"euclidean", "sqeuclidean"}
    working_memory : float, default=None
        MiB for the gathered rows of one chunk of pairs inside a task.
    """

    def __init__(self, X, metric, working_memory=None):
        if not is_dask_array(X):
            raise TypeError(f"X must be a dask.array.Array, got {type(X).__name__}.")
        if metric not in SOURCE_METRICS:
            raise ValueError(f"metric must be one of {SOURCE_METRICS}, got {metric!r}.")
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D, got shape {X.shape}.")
        if X.dtype not in (np.float32, np.float64):
            raise TypeError(f"X must be float32 or float64, got {X.dtype}.")
        self.X, self._blocks, self._offsets = row_chunks(X)
        self.metric = metric
        self.working_memory = working_memory
        self.n_samples = int(X.shape[0])
        self.dtype = torch.float32 if X.dtype == np.float32 else torch.float64
        self.device = torch.device("cpu")

    def _block_of(self, idx):
        return np.searchsorted(self._offsets, idx, side="right") - 1

    def pairs(self, i, j):
        """Distances ``d(x_i[t], x_j[t])`` of the sample pairs, a CPU tensor (len(i),).

        The pairs are grouped by the row blocks of ``i[t]`` and ``j[t]``; one
        task per non-empty group of blocks computes its distances, and only
        those values come back.
        """
        dask = _import_dask()
        i = i.detach().cpu().numpy().astype(np.int64, copy=False)
        j = j.detach().cpu().numpy().astype(np.int64, copy=False)
        out = np.empty(i.size, dtype=np.float32 if self.dtype == torch.float32
                       else np.float64)
        if i.size == 0:
            return torch.from_numpy(out)
        bi, bj = self._block_of(i), self._block_of(j)
        n_blocks = len(self._blocks)
        group = bi * n_blocks + bj
        order = np.argsort(group, kind="stable")
        keys, starts = np.unique(group[order], return_index=True)
        ends = np.append(starts[1:], order.size)
        task = dask.delayed(_pair_distances, pure=True)
        tasks, where = [], []
        for key, s, e in zip(keys, starts, ends):
            a, b = divmod(int(key), n_blocks)
            sel = order[s:e]
            tasks.append(task(self._blocks[a], self._blocks[b],
                              i[sel] - self._offsets[a], j[sel] - self._offsets[b],
                              self.metric, self.working_memory))
            where.append(sel)
        for sel, vals in zip(where, dask.compute(*tasks)):
            out[sel] = vals
        return torch.from_numpy(out)

    def moments(self, labels, n_clusters):
        """Means (n_clusters, d) and SSD (float64) of the clusters ``labels``.

        Two passes on the cluster, both reducing per row block: the counts and
        float64 sums give the means, then the squared deviations from those
        means give the SSD (no cancellation of ``sum |x|^2 - n |mu|^2``).
        """
        dask = _import_dask()
        lab = labels.detach().cpu().numpy().astype(np.int64, copy=False)
        parts = [lab[self._offsets[b]:self._offsets[b + 1]]
                 for b in range(len(self._blocks))]
        if n_clusters == self.n_samples and np.array_equal(lab, np.arange(n_clusters)):
            # singletons: the means are X itself, the SSD zero
            means = self.X.compute()
            return (torch.from_numpy(np.ascontiguousarray(means)),
                    torch.zeros(n_clusters, dtype=torch.float64))
        sums_task = dask.delayed(_chunk_sums, pure=True)
        counts = np.zeros(n_clusters, dtype=np.int64)
        sums = np.zeros((n_clusters, self.X.shape[1]), dtype=np.float64)
        for present, c, s in dask.compute(*[sums_task(blk, p)
                                            for blk, p in zip(self._blocks, parts)]):
            counts[present] += c  # labels are unique within one block's answer
            sums[present] += s
        means = sums / np.maximum(counts, 1)[:, None]
        # the means are put in the graph once and shared by every task
        means_d = dask.delayed(means, pure=True)
        ssd_task = dask.delayed(_chunk_ssd, pure=True)
        ssd = sum(dask.compute(*[ssd_task(blk, p, means_d)
                                 for blk, p in zip(self._blocks, parts)]))
        return (torch.from_numpy(means).to(self.dtype),
                torch.from_numpy(np.asarray(ssd, dtype=np.float64)))
