"""Cross-camera association: a clusterer's labels joined across cameras.

Pretrained features of a person seen by two cameras are often closer to other
people in the same camera than to that person in the other one (on PRID 450S
68 % of the nearest neighbours share the camera, impossible for a true pair
there), so a clusterer of all images groups within cameras. The camera ids,
which every re-ID set has without any identity label, give a second source:
the *cross-camera mutual nearest neighbours*, pairs of images of different
cameras that are each other's nearest image in the other's camera (the
inter-camera association of camera-aware methods, e.g. Xuan & Zhang, CVPR
2021; Wang et al., CAP, AAAI 2021). :class:`CrossCameraAssociation` joins the
clusters of a base clusterer along those pairs (connected components).
"""

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.base import BaseEstimator, ClusterMixin, clone
from sklearn.metrics import pairwise_distances_chunked

from ..utils._sklearn import HasMethods, StrOptions, _fit_context, validate_params

#: the parameters of the two neighbour functions
_PAIR_PARAMS = {
    "X": ["array-like", "sparse matrix"], "camids": ["array-like"],
    "metric": [StrOptions({"euclidean", "precomputed"})],
}


@validate_params(_PAIR_PARAMS, prefer_skip_nested_validation=True)
def cross_camera_nearest(X, camids, *, metric="euclidean"):
    """Each sample's nearest sample in every camera other than its own.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), or (n_samples, n_samples)
        Features, or distances with ``metric="precomputed"`` (dense or a
        scipy sparse matrix whose missing pairs are at the largest distance,
        as :func:`~sklearn_ecluster.metrics.jaccard_distance` with
        ``sparse=True`` leaves them: they are never a neighbour).
    camids : array-like of shape (n_samples,)
    metric : {"euclidean", "precomputed"}, default="euclidean"

    Returns
    -------
    nearest : ndarray of shape (n_samples, n_cameras), int64
        ``nearest[i, c]``: the sample of camera ``cameras[c]`` nearest to
        ``i`` (the lowest index among ties), -1 for ``i``'s own camera and
        where no pair of ``i`` with that camera is stored.
    cameras : ndarray of shape (n_cameras,)
        The sorted camera ids.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ecluster.self_training import cross_camera_nearest
    >>> X = np.array([[0.0], [0.1], [1.0], [5.0]])
    >>> cross_camera_nearest(X, [0, 0, 1, 1])[0]
    array([[-1,  2],
           [-1,  2],
           [ 1, -1],
           [ 1, -1]])
    """
    if not sparse.issparse(X):
        X = np.asarray(X)
    camids = np.asarray(camids)
    if X.ndim != 2 or X.shape[0] == 0 or camids.shape != (X.shape[0],):
        raise ValueError(f"X of shape {X.shape} and camids of shape {camids.shape}: one "
                         "camera id a sample is needed.")
    if metric == "precomputed" and X.shape[0] != X.shape[1]:
        raise ValueError(f"metric='precomputed' needs a square distance matrix, got X of "
                         f"shape {X.shape}.")
    cameras, cam = np.unique(camids, return_inverse=True)
    cam = cam.ravel()
    n, n_cams = cam.size, cameras.size
    nearest = np.full((n, n_cams), -1, dtype=np.int64)
    if metric == "precomputed" and sparse.issparse(X):
        D = sparse.coo_matrix(X)
        other = cam[D.row] != cam[D.col]
        rows, cols, vals = D.row[other], D.col[other], D.data[other]
        key = rows.astype(np.int64) * n_cams + cam[cols]
        # by key, then value, then column: the first of each key is its minimum
        order = np.lexsort((cols, vals, key))
        key, cols = key[order], cols[order]
        first = np.ones(key.size, dtype=bool)
        first[1:] = key[1:] != key[:-1]
        nearest.reshape(-1)[key[first]] = cols[first]
        return nearest, cameras
    members = [np.flatnonzero(cam == c) for c in range(n_cams)]
    if metric == "precomputed":
        chunks = _row_blocks(np.asarray(X))
    else:
        chunks = pairwise_distances_chunked(np.asarray(X), metric="euclidean")
    r0 = 0
    for block in chunks:
        r1 = r0 + block.shape[0]
        for c, idx in enumerate(members):
            if idx.size:
                nearest[r0:r1, c] = idx[np.argmin(block[:, idx], axis=1)]
        r0 = r1
    nearest[np.arange(n), cam] = -1
    return nearest, cameras


def _row_blocks(D, block_bytes=64 << 20):
    step = max(1, block_bytes // max(1, D.shape[1] * D.itemsize))
    for r0 in range(0, D.shape[0], step):
        yield D[r0 : r0 + step]


@validate_params(_PAIR_PARAMS, prefer_skip_nested_validation=True)
def mutual_cross_camera_pairs(X, camids, *, metric="euclidean"):
    """Pairs ``(i, j)``, ``i < j``, of different cameras, each the other's nearest there.

    Parameters
    ----------
    X, camids, metric
        As in :func:`cross_camera_nearest`.

    Returns
    -------
    pairs : ndarray of shape (n_pairs, 2), int64
        Sorted by ``i``, then ``j``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ecluster.self_training import mutual_cross_camera_pairs
    >>> X = np.array([[0.0], [0.1], [1.0], [5.0]])
    >>> mutual_cross_camera_pairs(X, [0, 0, 1, 1])  # 1 and 2 choose each other
    array([[1, 2]])
    """
    nearest, cameras = cross_camera_nearest(X, camids, metric=metric)
    cam = np.searchsorted(cameras, np.asarray(camids))
    i, c = np.nonzero(nearest >= 0)
    j = nearest[i, c]
    mutual = (nearest[j, cam[i]] == i) & (i < j)
    i, j = i[mutual], j[mutual]
    order = np.lexsort((j, i))
    return np.stack([i[order], j[order]], axis=1)


class CrossCameraAssociation(ClusterMixin, BaseEstimator):
    """A clusterer's clusters joined along cross-camera mutual nearest neighbours.

    The base clusterer labels the samples (its noise, ``-1``, included);
    then every pair of samples of different cameras that are each other's
    nearest sample in the other's camera is an edge, and so is every pair in
    one base cluster: the labels are the connected components with at least
    two samples, the others noise (``-1``). A sample the base clusterer left
    out can so enter a cluster through its cross-camera partner, and two
    clusters of one person in two cameras become one.

    Parameters
    ----------
    clusterer : estimator or None
        The base clusterer (cloned at each fit), e.g.
        :class:`~sklearn_ecluster.self_training.AutoEpsDBSCAN`. None: no base
        clusters, the labels are the components of the pairs alone (with two
        cameras, the pairs themselves).
    metric : {"euclidean", "precomputed"}, default="euclidean"
        How ``X`` is read for the nearest neighbours: features, or the
        distances the base clusterer reads (dense, or sparse with the pairs
        not stored at the largest distance).

    Attributes
    ----------
    clusterer_ : estimator or None
        The fitted base clusterer.
    labels_ : ndarray of shape (n_samples,)
        ``0..K-1``, ``-1`` for samples in no component of two or more.
    pairs_ : ndarray of shape (n_pairs, 2)
        The cross-camera mutual nearest-neighbour pairs.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.cluster import DBSCAN
    >>> from sklearn_ecluster.self_training import CrossCameraAssociation
    >>> X = np.array([[0.0], [0.05], [1.0], [1.05], [9.0], [9.5]])
    >>> camids = [0, 0, 1, 1, 0, 1]
    >>> model = CrossCameraAssociation(DBSCAN(eps=0.1, min_samples=2))
    >>> model.fit(X, camids=camids).labels_  # (0, 1) + (2, 3) via pair (1, 2)
    array([0, 0, 0, 0, 1, 1])
    """

    _parameter_constraints = {
        "clusterer": [HasMethods(["fit"]), None],
        "metric": [StrOptions({"euclidean", "precomputed"})],
    }

    def __init__(self, clusterer=None, *, metric="euclidean"):
        self.clusterer = clusterer
        self.metric = metric

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, camids=None):
        """Cluster ``X`` with the base clusterer, then join across cameras.

        Parameters
        ----------
        X : array-like or sparse matrix
            What the base clusterer reads (features, or distances with
            ``metric="precomputed"``).
        y : None
            Ignored.
        camids : array-like of shape (n_samples,)
            The camera of each sample (required).

        Returns
        -------
        self : CrossCameraAssociation
        """
        if camids is None:
            raise ValueError("CrossCameraAssociation.fit needs camids: the camera of "
                             "each sample.")
        if not sparse.issparse(X):
            X = np.asarray(X)
        camids = np.asarray(camids)
        n = X.shape[0] if X.ndim else 0
        if camids.shape != (n,):
            raise ValueError(f"camids of shape {camids.shape} for {n} samples: one "
                             "camera id a sample is needed.")
        if self.clusterer is None:
            self.clusterer_, base = None, np.full(n, -1, dtype=np.int64)
        else:
            self.clusterer_ = clone(self.clusterer).fit(X)
            base = np.asarray(self.clusterer_.labels_, dtype=np.int64)
        self.pairs_ = mutual_cross_camera_pairs(X, camids, metric=self.metric)
        self.labels_ = _components(base, self.pairs_, n)
        return self


def _components(base, pairs, n):
    """Connected components of base clusters plus pairs; components of one -> -1."""
    clustered = np.flatnonzero(base >= 0)
    # each clustered sample linked to its cluster's first sample: a star a cluster
    first = np.full(int(base.max()) + 1 if clustered.size else 0, -1, dtype=np.int64)
    first[base[clustered][::-1]] = clustered[::-1]
    rows = np.concatenate([clustered, pairs[:, 0]])
    cols = np.concatenate([first[base[clustered]], pairs[:, 1]])
    graph = sparse.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
    _, comp = connected_components(graph, directed=False)
    keep = np.bincount(comp, minlength=n)[comp] >= 2
    labels = np.full(n, -1, dtype=np.int64)
    if keep.any():  # numbered in the order of each component's first sample
        _, first, inverse = np.unique(comp[keep], return_index=True, return_inverse=True)
        rank = np.argsort(np.argsort(first, kind="stable"), kind="stable")
        labels[keep] = rank[inverse.ravel()]
    return labels
