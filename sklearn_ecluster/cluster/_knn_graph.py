"""k-nearest-neighbour graphs without an N x N matrix: the candidate edges of the graph mode.

One kernel, :func:`_nearest_in`, finds for a set of query rows their nearest
rows in a set of candidate rows: the distances of a block of query rows to
all candidates by the Gram expansion (one GEMM), ``torch.topk`` per row, then
the selected distances recomputed from the differences (exact, and the same
values whatever the blocking). The torch backend runs it on all of X; the
Dask path runs it for every pair of row chunks on the cluster and merges the
candidate lists per row chunk; the faiss backend searches a faiss index and
only recomputes the values.
"""

import math
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils import check_random_state

from ..utils import get_device, rows_per_block, to_numpy
from ..utils._validation import check_matrix, check_scalar
from ._dask import is_dask_array, row_chunks

BACKENDS = ("torch", "faiss")
METRICS = ("euclidean", "sqeuclidean")
#: index of "no candidate" (a chunk with fewer rows than k): sorts after all
_NONE = np.iinfo(np.int64).max


def _lexsort_rows(vals, inds):
    """Sort each row by (value, index): ties go to the lower index."""
    o = torch.argsort(inds, dim=1, stable=True)
    vals, inds = vals.gather(1, o), inds.gather(1, o)
    o = torch.argsort(vals, dim=1, stable=True)
    return vals.gather(1, o), inds.gather(1, o)


def _exact_values(Q, C, local, metric):
    """``d(Q[r], C[local[r, t]])`` from the differences, shape of ``local``."""
    diff = C[local].sub_(Q.unsqueeze(1))
    d = torch.linalg.vector_norm(diff, dim=2)
    return d if metric == "euclidean" else d.square_()


def _nearest_in(Q, C, q0, c0, m, metric, working_memory=None):
    """The ``m`` nearest rows of ``C`` to each row of ``Q``, the row itself excluded.

    Parameters
    ----------
    Q, C : Tensor (n_q, d), (n_c, d)
        Query and candidate rows, same dtype and device.
    q0, c0 : int, or q0 a LongTensor (n_q,)
        Global indices: ``q0 + r`` (or ``q0[r]``) and ``c0 + c``. A candidate
        with the global index of the query is excluded (by index, so
        duplicates of the query stay candidates).
    m : int
    metric : {"euclidean", "sqeuclidean"}

    Returns
    -------
    vals : Tensor (n_q, m)
        Distances (exact, from differences), ascending; ``inf`` where fewer
        than ``m`` candidates exist.
    inds : LongTensor (n_q, m)
        Global indices, ties by lower index; ``_NONE`` where no candidate.
    """
    n_q, n_c, dim = Q.shape[0], C.shape[0], Q.shape[1]
    dev = Q.device
    vals = torch.full((n_q, m), math.inf, dtype=Q.dtype, device=dev)
    inds = torch.full((n_q, m), _NONE, dtype=torch.long, device=dev)
    kk = min(m, n_c)
    if kk == 0 or n_q == 0:
        return vals, inds
    # |q|^2 is the same for a whole row: the ranking needs |c|^2 - 2 q.c only
    sq_c = (C * C).sum(1)
    # per query row: the distance row, the comparison for ties (bool, counted
    # as one) and the gathered candidates with their differences (2 kk d)
    step = rows_per_block(3 * n_c + 2 * kk * dim, Q.element_size(), dev,
                          working_memory, n_buffers=1)
    q_ids = (q0.to(dev) if isinstance(q0, torch.Tensor)
             else torch.arange(q0, q0 + n_q, device=dev))
    for r0 in range(0, n_q, step):
        r1 = min(n_q, r0 + step)
        q = Q[r0:r1]
        d = torch.addmm(sq_c.unsqueeze(0), q, C.T, alpha=-2.0)
        own = q_ids[r0:r1] - c0
        mine = (own >= 0) & (own < n_c)
        rows = torch.arange(r1 - r0, device=dev)
        d[rows[mine], own[mine]] = math.inf  # the query itself, by index
        # one more than needed: the k-th and (k+1)-th smallest values are
        # equal exactly when a tie straddles the cut
        extra = int(kk < n_c)
        top, local = torch.topk(d, kk + extra, dim=1, largest=False, sorted=True)
        if extra:
            # topk's choice among equal values is unspecified: there, take the
            # lowest indices (a stable sort of those rows)
            tied = (top[:, kk] == top[:, kk - 1]).nonzero().squeeze(1)
            local = local[:, :kk]
            if tied.numel():
                local[tied] = torch.sort(d[tied], dim=1, stable=True).indices[:, :kk]
        del d
        v = _exact_values(q, C, local, metric)
        g = local + c0
        self_hit = g == q_ids[r0:r1].unsqueeze(1)
        v[self_hit] = math.inf  # only picked when nothing else was left
        g[self_hit] = _NONE
        vals[r0:r1, :kk], inds[r0:r1, :kk] = _lexsort_rows(v, g)
    return vals, inds


def _merge(a, b, m):
    """The ``m`` best of two candidate lists (vals, inds) per row."""
    vals, inds = _lexsort_rows(torch.cat([a[0], b[0]], 1), torch.cat([a[1], b[1]], 1))
    return vals[:, :m].contiguous(), inds[:, :m].contiguous()


def _import_faiss():
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            "backend='faiss' needs faiss: pip install faiss-cpu "
            "(or pip install 'sklearn-ecluster[faiss]')."
        ) from exc
    return faiss


def _faiss_nearest(X, m, metric, n_lists, n_probe, random_state, working_memory):
    """faiss search of the ``m`` nearest others of every row of X (float32 inside)."""
    faiss = _import_faiss()
    n, dim = X.shape
    Xf = np.ascontiguousarray(to_numpy(X), dtype=np.float32)
    if n_lists is None:
        index = faiss.IndexFlatL2(dim)
    else:
        rng = check_random_state(random_state)
        # a named quantizer: the IVF index does not own it, and a temporary
        # would be freed under it
        quantizer = faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, n_lists)
        index.cp.seed = int(rng.randint(np.iinfo(np.int32).max))
        # 64 points per list: above faiss's minimum advice (39), a quarter of
        # its cap (256), as k-means costs n_train * n_lists * d per iteration;
        # drawing them here makes the training set follow random_state
        n_train = min(n, 64 * n_lists)
        sub = np.sort(rng.choice(n, n_train, replace=False))
        index.train(Xf[sub])
        index.nprobe = n_probe
    index.add(Xf)
    _, found = index.search(Xf, m + 1)
    found = torch.from_numpy(found.astype(np.int64, copy=False))
    # drop the query itself by index, or the last one when it was not found
    # (more than m duplicates of it at distance 0)
    own = found == torch.arange(n).unsqueeze(1)
    own[~own.any(1), -1] = True
    inds = found[~own].reshape(n, m)
    Xt = torch.from_numpy(Xf)
    missing = (inds < 0).any(1).nonzero().squeeze(1)
    if missing.numel():
        # the probed lists held fewer than m + 1 points: exact search for those
        inds[missing] = _nearest_in(Xt[missing], Xt, missing, 0, m, metric,
                                    working_memory)[1]
    # the values from the differences, in row blocks (the gathered
    # neighbours of all rows would be k times the size of X)
    vals = torch.empty((n, m), dtype=Xt.dtype)
    step = rows_per_block(2 * m * dim, Xt.element_size(), Xt.device, working_memory,
                          n_buffers=1)
    for r0 in range(0, n, step):
        r1 = min(n, r0 + step)
        vals[r0:r1] = _exact_values(Xt[r0:r1], Xt, inds[r0:r1], metric)
    return _lexsort_rows(vals, inds)


def _dask_nearest(X, m, metric, device, working_memory):
    """:func:`_nearest_in` for every pair of row chunks on the Dask cluster.

    Task (a, b) finds the m nearest rows of chunk b for each row of chunk a;
    the lists of a row chunk are merged pairwise in a tree (log2 of the number
    of chunks deep), so that only the (N, m) result reaches the client.
    """
    import dask

    X, blocks, offsets = row_chunks(X)

    def nearest(Xa, Xb, a0, b0):
        Qa = torch.from_numpy(np.ascontiguousarray(Xa)).to(device)
        Cb = torch.from_numpy(np.ascontiguousarray(Xb)).to(device)
        return _nearest_in(Qa, Cb, a0, b0, m, metric, working_memory)

    task = dask.delayed(nearest, pure=True)
    merge = dask.delayed(_merge, pure=True)
    per_chunk = []
    for a, Xa in enumerate(blocks):
        level = [task(Xa, Xb, int(offsets[a]), int(offsets[b]))
                 for b, Xb in enumerate(blocks)]
        while len(level) > 1:
            nxt = [merge(level[t], level[t + 1], m) for t in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        per_chunk.append(dask.delayed(lambda r: (r[0].cpu(), r[1].cpu()))(level[0]))
    results = dask.compute(*per_chunk)
    return (torch.cat([r[0] for r in results]), torch.cat([r[1] for r in results]))


def _check_dask_input(X):
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array, got shape {X.shape}.")
    if X.dtype.kind not in "iuf":
        raise TypeError(f"X must hold real numbers, got array of dtype {X.dtype}.")
    if X.dtype.kind != "f":
        X = X.astype(np.float64)
    elif X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float32)
    # one pass on the cluster; only the flag comes back
    import dask.array as da

    if not bool(da.isfinite(X).all().compute()):
        raise ValueError("X contains NaN or infinity; all values must be finite.")
    return X


def knn_graph(X, n_neighbors=10, *, backend="torch", metric="euclidean",
              include_self=False, device="auto", working_memory=None,
              n_lists=None, n_probe=None, random_state=None):
    """Graph of the k nearest neighbours of each sample, without an N x N matrix.

    Row ``i`` holds the distances from sample ``i`` to its ``n_neighbors``
    nearest samples, in scikit-learn's
    :func:`~sklearn.neighbors.kneighbors_graph` format (``mode="distance"``):
    a CSR matrix with exactly ``n_neighbors`` stored entries per row, sorted
    by distance. It is the candidate graph of the graph mode (only clusters
    joined by an edge may merge).

    Parameters
    ----------
    X : array-like, torch.Tensor or dask.array.Array of shape (n_samples, n_features)
        Features. NumPy arrays and tensors are computed in their dtype
        (float32 or float64; integers become float64). A Dask array is
        computed on the Dask cluster (the active ``distributed.Client`` if
        any), row chunk against row chunk; only the (n_samples, n_neighbors)
        result comes back.
    n_neighbors : int, default=10
        Neighbours per sample, ``1 <= n_neighbors < n_samples`` (``<=`` with
        ``include_self=True``).
    backend : {"torch", "faiss"}, default="torch"
        ``"torch"``: exact, in row blocks (the distances of a block of rows to
        all samples, then ``torch.topk``), on the CPU or CUDA. ``"faiss"``:
        a faiss index (``pip install faiss-cpu``), exact (``IndexFlatL2``)
        or approximate (``IndexIVFFlat``, see ``n_lists``); always float32
        inside faiss. Dask input uses the torch kernel.
    metric : {"euclidean", "sqeuclidean"}, default="euclidean"
        The stored values; the neighbours are the same.
    include_self : bool, default=False
        Whether each sample is its own first neighbour (distance 0, so
        ``n_neighbors - 1`` others). Either way the sample is recognised by
        its index, not by a zero distance, so duplicates are neighbours.
    device : {"auto", "cpu", "cuda"} or torch.device, default="auto"
        Where the torch kernel runs; ``"auto"`` follows a tensor input, else
        CUDA when available. Dask input: the device of the workers' tasks
        (``"auto"`` is the CPU there).
    working_memory : float, default=None
        MiB for one block of distances (see
        :func:`~sklearn_ecluster.utils.rows_per_block`); ``None`` uses
        scikit-learn's ``working_memory`` on the CPU, a quarter of the free
        memory on CUDA.
    n_lists : int, default=None
        faiss only: ``None`` for the exact search; else the number of
        inverted lists of an ``IndexIVFFlat`` (k-means cells trained on a
        random subsample of at most ``64 * n_lists`` samples). About
        ``4 * sqrt(n_samples)`` to ``16 * sqrt(n_samples)`` is faiss's usual
        advice.
    n_probe : int, default=None
        faiss IVF only: the lists searched per query, ``1 <= n_probe <=
        n_lists``. ``None`` is ``max(1, n_lists // 16)``: a fixed fraction of
        the lists, so a query compares with about ``n_samples / 16`` samples
        (a ~16x saving over the exact search whatever ``n_lists``), while on
        clustered data the neighbours of a point lie in the few cells nearest
        to it. ``n_probe = n_lists`` is exact.
    random_state : int, RandomState instance or None, default=None
        faiss IVF only: the training subsample and the k-means seed.

    Returns
    -------
    graph : scipy.sparse.csr_matrix of shape (n_samples, n_samples)
        In X's dtype (float32 for the faiss backend).

    Raises
    ------
    TypeError
        If X is not array-like, or a parameter has the wrong type.
    ValueError
        If X is not 2-D, holds NaN or infinity, or a parameter is out of range.
    ImportError
        If ``backend="faiss"`` and faiss is not installed.

    Notes
    -----
    Memory: the torch backend holds X, one block of distances (rows x
    n_samples) and the (n_samples, n_neighbors) result; nothing of size
    n_samples^2. The block is ranked with the Gram expansion
    ``|c|^2 - 2 q.c``, whose rounding (about ``eps * |x|^2``) can reorder
    two neighbours whose distances differ by less than that (float32:
    ``eps = 1.2e-7``); the stored values are then recomputed from the
    differences, so they are exact to the dtype. Among equal distances the
    lower index wins (faiss: only for the final order of the neighbours it
    found).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.neighbors import kneighbors_graph
    >>> from sklearn_ecluster.cluster import knn_graph
    >>> X = np.random.default_rng(0).normal(size=(100, 5))
    >>> G = knn_graph(X, n_neighbors=3, device="cpu")
    >>> G.shape, G.nnz
    ((100, 100), 300)
    >>> ref = kneighbors_graph(X, 3, mode="distance")
    >>> bool((G.indices == ref.indices).all()), bool(np.allclose(G.data, ref.data))
    (True, True)
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
    if not isinstance(include_self, bool | np.bool_):
        raise TypeError(f"include_self must be a bool, got {include_self!r}.")
    if working_memory is not None:
        working_memory = check_scalar(working_memory, "working_memory", Real,
                                      min_val=0, include_boundaries="neither")
    dask_input = is_dask_array(X)
    if dask_input:
        if backend != "torch":
            raise ValueError(f"Dask input supports backend='torch' only, got {backend!r}.")
        X = _check_dask_input(X)
    else:
        X = check_matrix(X, "X")
    n = int(X.shape[0])
    if n < 2:
        raise ValueError(f"X must have at least 2 samples, got {n}.")
    n_neighbors = check_scalar(n_neighbors, "n_neighbors", Integral, min_val=1,
                               max_val=n if include_self else n - 1)
    if backend == "faiss":
        if n_lists is not None:
            n_lists = check_scalar(n_lists, "n_lists", Integral, min_val=1, max_val=n)
            n_probe = (max(1, n_lists // 16) if n_probe is None else check_scalar(
                n_probe, "n_probe", Integral, min_val=1, max_val=n_lists))
        elif n_probe is not None:
            raise ValueError(f"n_probe={n_probe!r} needs n_lists (an IVF index).")
    elif n_lists is not None or n_probe is not None:
        raise ValueError(
            f"n_lists={n_lists!r} and n_probe={n_probe!r} are used by backend='faiss' "
            "only; leave them None for backend='torch'."
        )

    m = n_neighbors - 1 if include_self else n_neighbors
    if dask_input:
        dev = torch.device("cpu") if device in (None, "auto") else get_device(device)
        vals, inds = _dask_nearest(X, m, metric, dev, working_memory)
        dtype = np.dtype(X.dtype)
    elif backend == "faiss":
        vals, inds = _faiss_nearest(X, m, metric, n_lists, n_probe, random_state,
                                    working_memory)
        dtype = np.dtype(np.float32)
    else:
        dev = get_device(device, X)
        Xd = X.to(dev)
        vals, inds = _nearest_in(Xd, Xd, 0, 0, m, metric, working_memory)
        dtype = np.dtype(to_numpy(X[:1]).dtype)
    vals, inds = to_numpy(vals).astype(dtype, copy=False), to_numpy(inds)
    if include_self:
        # the sample itself first, at distance exactly 0
        vals = np.concatenate([np.zeros((n, 1), dtype), vals], axis=1)
        inds = np.concatenate([np.arange(n)[:, None], inds], axis=1)
    indptr = np.arange(0, n * n_neighbors + 1, n_neighbors)
    return sp.csr_matrix((vals.ravel(), inds.ravel(), indptr), shape=(n, n))
