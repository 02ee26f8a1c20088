"""DBSCAN with its radius chosen from the data (the contrastive recipe's clusterer)."""

from numbers import Integral, Real

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN
from sklearn.metrics import pairwise_distances

from ..utils._sklearn import Interval, StrOptions, _fit_context, validate_data
from ..utils._sparse import csr_row_blocks


def eps_from_distances(D, rho=1.6e-3):
    """Mean of the smallest ``rho`` share of the pairwise distances (upper triangle).

    The rule of Song et al. (2018), used by SSG and MMT with the Jaccard
    distance: the radius of DBSCAN follows the scale of the distances of the
    closest pairs. Computed by row blocks (no second ``N x N`` array).

    Parameters
    ----------
    D : ndarray of shape (n, n)
        Symmetric distances.
    rho : float in (0, 1]

    Returns
    -------
    eps : float

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ecluster.self_training._dbscan import eps_from_distances
    >>> D = np.array([[0, 1, 4], [1, 0, 2], [4, 2, 0]], dtype=float)
    >>> eps_from_distances(D, rho=2 / 3)  # the two smallest of 1, 4, 2
    1.5
    """
    n = D.shape[0]
    t = max(1, int(round(rho * n * (n - 1) / 2)))
    if sparse.issparse(D):
        return _sparse_eps(D.tocsr(), t)
    D = np.asarray(D)
    best = np.empty(0, dtype=np.float64)
    step = max(1, (1 << 20) // max(n, 1))
    for r0 in range(0, n - 1, step):
        r1 = min(n - 1, r0 + step)
        rows, cols = np.triu_indices(r1 - r0, k=1, m=n - r0)  # j > i within the block
        block = D[r0:r1, r0:][rows, cols].astype(np.float64)
        candidates = np.concatenate([best, block])
        best = np.partition(candidates, t - 1)[:t] if len(candidates) > t else candidates
    return float(best.mean())


def _sparse_eps(D, t):
    """:func:`eps_from_distances` of a sparse matrix (pairs not stored at 1), by row blocks."""
    best = np.empty(0, dtype=np.float64)
    n_upper = 0
    for _, _, rows, cols, vals in csr_row_blocks(D):
        upper = vals[cols > rows].astype(np.float64)
        n_upper += len(upper)
        candidates = np.concatenate([best, upper])
        best = np.partition(candidates, t - 1)[:t] if len(candidates) > t else candidates
    if n_upper >= t:
        return float(best.mean())
    return float((best.sum() + (t - n_upper) * 1.0) / t)  # the rest at distance 1


def _radius_graph(D, eps):
    """CSR matrix of the entries ``D[i, j] <= eps`` (explicit zeros kept), by row blocks."""
    n = D.shape[0]
    if sparse.issparse(D):
        D = D.tocsr()
        counts, cols, vals = np.zeros(n, dtype=np.int64), [], []
        for r0, r1, rows, c, v in csr_row_blocks(D):
            keep = v <= eps
            counts[r0:r1] = np.bincount(rows[keep] - r0, minlength=r1 - r0)
            cols.append(c[keep])
            vals.append(v[keep])
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return sparse.csr_matrix((np.concatenate(vals), np.concatenate(cols), indptr),
                                 shape=(n, n))
    step = max(1, (1 << 22) // max(n, 1))
    rows, cols, vals = [], [], []
    for r0 in range(0, n, step):
        i, j = np.nonzero(D[r0:r0 + step] <= eps)
        rows.append(i + r0)
        cols.append(j)
        vals.append(D[r0:r0 + step][i, j])
    rows, cols, vals = (np.concatenate(a) for a in (rows, cols, vals))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return sparse.csr_matrix((vals, cols, indptr), shape=(n, n))  # rows already sorted


class AutoEpsDBSCAN(ClusterMixin, BaseEstimator):
    """scikit-learn's DBSCAN whose ``eps`` is set from the distances at every fit.

    In a self-training loop the features (and so the distances) change every
    round; a fixed radius tuned on one dataset does not carry over to
    another. This clusterer sets ``eps`` to the mean of the smallest ``rho``
    share of the pairwise distances (:func:`eps_from_distances`), then runs
    :class:`sklearn.cluster.DBSCAN`. Points in no cluster get the label -1.

    Parameters
    ----------
    eps : float or None, default=None
        A fixed radius (Cluster-Contrast: 0.6 on Market-1501's Jaccard
        distance); None: from the data.
    rho : float in (0, 1], default=1.6e-3
        The share of closest pairs whose mean distance is ``eps``.
    min_samples : int, default=4
        DBSCAN's ``min_samples`` (Cluster-Contrast: 4).
    metric : {"precomputed", "euclidean"}, default="precomputed"
        ``"precomputed"``: ``fit`` gets a distance matrix (the Jaccard
        distance of the recipe), dense or sparse. A sparse matrix
        (:func:`~sklearn_ecluster.metrics.jaccard_distance` with
        ``sparse=True``) stores the pairs below distance 1; the others are
        at distance 1 and so are never within a radius ``eps < 1``.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Cluster ids, -1 for noise.
    eps_ : float
        The radius used.
    n_clusters_ : int
        Clusters found (noise excluded).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ecluster.self_training import AutoEpsDBSCAN
    >>> X = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.2], [20.0]])
    >>> model = AutoEpsDBSCAN(min_samples=2, metric="euclidean", rho=0.3).fit(X)
    >>> model.labels_.tolist()
    [0, 0, 0, 1, 1, 1, -1]
    """

    _parameter_constraints = {
        "eps": [Interval(Real, 0, None, closed="neither"), None],
        "rho": [Interval(Real, 0, 1, closed="right")],
        "min_samples": [Interval(Integral, 1, None, closed="left")],
        "metric": [StrOptions({"precomputed", "euclidean"})],
    }

    def __init__(self, eps=None, *, rho=1.6e-3, min_samples=4, metric="precomputed"):
        self.eps = eps
        self.rho = rho
        self.min_samples = min_samples
        self.metric = metric

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Choose ``eps`` (when None) and run DBSCAN.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_samples) or \
(n_samples, n_features)
            Distances (``metric="precomputed"``; sparse: the pairs not
            stored are at distance 1) or features.
        y : None
            Ignored.

        Returns
        -------
        self : AutoEpsDBSCAN
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32],
                          accept_sparse="csr" if self.metric == "precomputed" else False)
        if self.metric == "precomputed":
            if X.ndim != 2 or X.shape[0] != X.shape[1]:
                raise ValueError(f"metric='precomputed' needs a square distance matrix, "
                                 f"got shape {X.shape}.")
            D = X
        else:
            D = pairwise_distances(X, metric=self.metric)
        self.eps_ = float(self.eps) if self.eps is not None else eps_from_distances(D, self.rho)
        if not self.eps_ > 0:
            self.eps_ = float(np.finfo(np.float32).eps)  # all closest pairs at distance 0
        if sparse.issparse(D) and self.eps_ >= 1.0:
            raise ValueError(
                f"eps={self.eps_:.4g} >= 1 with a sparse distance matrix: its pairs not "
                "stored are at distance 1 and would all be neighbours. Use eps < 1 or "
                "a dense X.")
        model = DBSCAN(eps=self.eps_, min_samples=self.min_samples, metric="precomputed")
        # DBSCAN gets the sparse graph of the pairs within eps (the same
        # neighbourhoods): no second N x N array, whatever its internals do
        self.labels_ = model.fit(_radius_graph(D, self.eps_)).labels_.astype(np.int64)
        self.n_clusters_ = int(self.labels_.max() + 1) if len(self.labels_) else 0
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self.metric == "precomputed"
        return tags
