"""The estimator: :class:`EnergyAgglomerative` validates, calls the core, stores."""

from dataclasses import asdict

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin

from ..utils import get_device
from ..utils._sklearn import _fit_context, check_is_fitted, validate_data
from ._dask import is_dask_array
from ._linkage import PARAMETER_CONSTRAINTS, energy_linkage_tree
from ._tree import linkage_matrix


def _validate_tensor(X):
    """The checks ``validate_data`` makes, for a torch tensor kept on its device.

    A tensor that requires grad (features straight from a network) is detached:
    clustering is not differentiable and the values are all it needs.
    """
    X = X.detach()
    if X.is_complex():
        raise ValueError("Complex data not supported; X is a complex tensor.")
    if X.dtype == torch.bool or not (X.is_floating_point() or X.dtype in (
        torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise TypeError(f"X must be a real numeric tensor, got dtype {X.dtype}.")
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D tensor of shape {tuple(X.shape)} instead. "
            "Reshape your data using X.reshape(-1, 1) for a single feature or "
            "X.reshape(1, -1) for a single sample."
        )
    if X.shape[0] < 2:
        raise ValueError(
            f"Found array with {X.shape[0]} sample(s) (shape={tuple(X.shape)}) while a "
            "minimum of 2 is required."
        )
    if X.shape[1] < 1:
        raise ValueError("Found array with 0 feature(s) while a minimum of 1 is required.")
    if not X.is_floating_point():
        X = X.to(torch.float64 if X.device.type == "cpu" else torch.float32)
    if not bool(torch.isfinite(X).all()):
        raise ValueError("Input X contains NaN or infinity.")
    return X


def _validate_dask(X):
    """The checks that need no pass over the data, for a Dask array.

    Finiteness is not checked (it would read the whole array); integer data
    is cast to float64 lazily.
    """
    if X.ndim != 2:
        raise ValueError(f"Expected 2D array, got a {X.ndim}D Dask array of shape "
                         f"{X.shape} instead.")
    if X.shape[0] < 2 or X.shape[1] < 1:
        raise ValueError(f"Found a Dask array of shape {X.shape}: at least 2 samples "
                         "and 1 feature are required.")
    if X.dtype.kind in "iub":
        if X.dtype.kind == "b":
            raise TypeError(f"X must be numeric, got dtype {X.dtype}.")
        X = X.astype(np.float64)
    elif X.dtype not in (np.float32, np.float64):
        raise TypeError(f"X must be a float32 or float64 Dask array, got {X.dtype}.")
    return X


class EnergyAgglomerative(ClusterMixin, BaseEstimator):
    """Bottom-up clustering with the energy distance and an SSD regulariser.

    The E-cluster criterion of Zeng et al. (paper Eq. 8): clusters A and B are
    merged in ascending order of

    .. math::

        D(A, B) = \\mathcal{E}(A, B) + \\lambda\\, R(A, B), \\qquad
        \\mathcal{E}(A, B) = \\frac{2}{nm}\\sum_{a, b} \\|a - b\\|
            - \\frac{1}{n^2}\\sum_{a, a'} \\|a - a'\\|
            - \\frac{1}{m^2}\\sum_{b, b'} \\|b - b'\\|,

    with ``R(A, B) = SSD(A) + SSD(B)`` by default. Each step merges
    ``m = max(1, int(merge_percent * n_samples))`` pairs found from one
    evaluation of the criterion (paper Algorithm 1). The BUC and DBC baselines
    are the ``linkage="single"`` / ``"average"`` options (see
    :func:`make_clusterer`). Computation runs in torch, on a GPU when there is
    one.

    Read more in the :doc:`user guide </user_guide/clustering>`.

    Parameters
    ----------
    n_clusters : int, default=None
        Stop when this many clusters remain. With ``n_clusters``,
        ``distance_threshold`` and ``max_steps`` all None, the number of
        clusters is chosen automatically: a full hierarchy is built and cut
        where the mean silhouette (on the hierarchy's metric) is highest, over
        the cuts of its merge sequence. **Which hierarchy:** the fitted one
        when it is exact and reducible (``merge_percent=None`` with single or
        average linkage, or the weighted energy, without regulariser), whose
        cuts are nested partitions at monotone heights; otherwise, the
        standalone energy hierarchy (weighted, no regulariser, exact; see
        :func:`make_clusterer`), because a batched or regularised hierarchy run
        to the end chains or fragments and its cuts are poor (the clustering
        guide measures this). ``children_``, ``criterion_`` and ``engine_``
        then describe that hierarchy, and ``lam``, ``regularizer``,
        ``weighted``, ``merge_percent`` and ``merge_schedule`` are not used. The
        search scores about 24 cluster counts spaced geometrically, then the
        counts between the best one's two grid neighbours (at most 16): a
        narrow peak elsewhere can be missed. With ``init_labels``, at most the
        number of initial clusters.
    merge_percent : float in (0, 1) or None, default=0.05
        Fraction of merges per step (the paper's ``mp``). ``None`` is the exact
        mode: one merge at a time, the criterion refreshed after every merge
        (a true dendrogram).
    lam : float >= 0, default=0.9
        Weight of the regulariser (the paper's lambda). Meant for
        L2-normalised features: SSD scales with the squared feature scale.
    linkage : {"energy", "average", "single"}, default="energy"
        ``"energy"``: E-cluster; ``"single"``: BUC's minimum distance;
        ``"average"``: DBC's mean distance (UPGMA).
    regularizer : {"ssd", "ssd_merged", "size", "dispersion"} or None, default="ssd"
        ``"ssd"``: SSD(A) + SSD(B) (paper); ``"ssd_merged"``: SSD(A u B);
        ``"size"``: ``|A| + |B|`` (BUC); ``"dispersion"``: mean within-cluster
        squared distance of A plus that of B (DBC); None: no regulariser.
    metric : {"auto", "euclidean", "sqeuclidean", "precomputed"}, default="auto"
        Sample distance. ``"auto"``: Euclidean for the energy linkage, squared
        Euclidean for single/average (as BUC and DBC define them). The energy
        linkage refuses squared distances (it would reduce to a centroid
        distance). ``"precomputed"``: X is a distance matrix, symmetrised as
        ``(X + X.T) / 2``; dense, or sparse with ``missing_distance`` (the
        graph mode, below).
    weighted : bool, default=False
        Multiply the energy distance by ``n m / (n + m)`` (Szekely & Rizzo
        2005). Unregularised and exact, this is R's ``energy::energy.hclust``,
        i.e. Ward's method on the square root of the distances. Defined for
        ``linkage="energy"`` only: with ``"single"`` or ``"average"`` it is
        rejected with a ``ValueError``.
    merge_schedule : {"constant", "geometric"}, default="constant"
        ``"constant"``: ``m = int(merge_percent * n_samples)`` per step
        (paper, BUC); ``"geometric"``: ``m = int(merge_percent * K)`` with K the
        current number of clusters (finer steps as clusters grow).
    distance_threshold : float, default=None
        Stop at the first pair whose criterion is ``>= distance_threshold``.
    max_steps : int, default=None
        Stop after this many steps (merges in the exact mode).
    connectivity : sparse matrix, array-like, callable or int, default=None
        The graph mode: only clusters joined by an edge of this candidate
        graph may merge (scikit-learn's meaning): an ``(n_samples,
        n_samples)`` matrix whose non-zero entries are the sample edges
        (symmetrised), a callable ``connectivity(X)`` returning one, or an
        int k for the exact k-nearest-neighbour graph of X (all the other
        samples when ``k >= n_samples``)
        (:func:`knn_graph`; build it once with :func:`knn_graph` to reuse it
        across fits, or with ``backend="faiss"`` at large N). The criterion
        of every candidate pair stays exact (cross sums over all the sample
        pairs of the two clusters, computed from the features in blocks), and
        no ``n_samples x n_samples`` object exists: memory O(E + n d) for E
        edges. Every linkage, regulariser, schedule and the exact mode work;
        see the :doc:`graph mode guide </user_guide/graph_mode>`. With
        several connected components, merging stops when no edge is left
        (a ``UserWarning`` when that is above ``n_clusters``). With a sparse
        precomputed X: None takes its stored pairs as the graph, an int k
        the k nearest stored pairs of each sample.
    missing_distance : float, default=None
        With ``metric="precomputed"`` and a sparse X: the distance of every
        pair X does not store (1.0 for
        :func:`~sklearn_ecluster.metrics.jaccard_distance` with
        ``sparse=True``, where it is exact: samples without a common
        neighbour are at Jaccard distance 1). The fit is then in the graph
        mode: the criterion of a candidate pair stays exact (its cross sum
        is ``missing_distance |A| |B|`` corrected by the stored pairs of
        A x B), and memory is the stored pairs, not ``n_samples ** 2``. Its
        pattern must be symmetric. Ignored otherwise.
    device : str or torch.device, default="auto"
        ``"auto"`` follows a tensor input, else CUDA when available, else CPU.
    working_memory : float, default=None
        MiB for temporaries; None uses ``sklearn.get_config()["working_memory"]``
        on the CPU and a quarter of the free memory on CUDA.
    verbose : int, default=0
        0 silent, 1 one line per step, 2 a progress bar.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,), dtype int64
        Cluster labels 0..K-1, numbered in order of each cluster's smallest
        sample index.
    n_clusters_ : int
        Number of clusters found.
    children_ : ndarray of shape (n_merges, 2)
        The merges performed, in order, in scikit-learn's format: values
        ``< n_leaves_`` are leaves, ``n_leaves_ + t`` is the node made by merge t.
    distances_ : ndarray of shape (n_merges,)
        Criterion value of each merge (in the batched mode, as computed at the
        start of its step). Not necessarily monotone.
    n_leaves_ : int
        Number of leaves: ``n_samples``, or the number of initial clusters
        when ``init_labels`` is given.
    n_steps_ : int
        Steps that merged at least one pair (merges in the exact mode); a
        step stopped by ``distance_threshold`` before its first merge is not
        counted, nor recorded in ``history_``.
    history_ : dict of lists
        Per step: ``n_clusters`` after it, ``n_merges``, ``max_distance``
        (largest merged criterion value) and ``seconds``.
    cut_score_ : float or None
        Silhouette of the automatically chosen cut. None whenever no
        silhouette was computed: ``n_clusters``, ``distance_threshold`` or
        ``max_steps`` was given, or no cut has ``2 <= K <= n_samples - 1``
        (two samples, or a single initial cluster).
    metric_ : str
        The sample metric used.
    engine_ : {"batched", "exact_reducible", "exact_mst", "exact_cached", \
"graph_batched", "graph_reducible", "graph_greedy"}
        The engine that built ``children_``: batched steps (``merge_percent``
        set), rounds of reciprocal nearest neighbours (exact mode of a
        reducible criterion: average, or weighted energy, without
        regulariser), a minimum spanning tree (single linkage without
        regulariser; the rounds when tree weights tie), or the
        nearest-neighbour cache (exact mode otherwise); with
        ``connectivity``, the graph engines of those modes (batched steps,
        reciprocal-nearest-neighbour rounds for the reducible criteria, one
        merge at a time for the others).
    criterion_ : dict
        ``linkage``, ``regularizer``, ``lam`` and ``weighted`` of the
        hierarchy in ``children_``: the parameters, except after an automatic
        cut of a batched or non-reducible configuration (see ``n_clusters``).
    device_ : torch.device
        The device the computation ran on.
    n_features_in_ : int
        Number of features seen during fit.

    See Also
    --------
    make_clusterer : E-cluster, BUC and DBC presets.
    sklearn.cluster.AgglomerativeClustering : classical linkages.

    Notes
    -----
    Differences from :class:`sklearn.cluster.AgglomerativeClustering`:
    ``n_clusters`` defaults to None (automatic cut); ``n_clusters`` and
    ``distance_threshold`` may both be set (the first reached stops);
    ``children_`` holds only the merges performed; the batched mode merges
    many pairs per step without refreshing the criterion, so chains can form
    and ``distances_`` can decrease.

    Memory: one ``n_samples x n_samples`` matrix (the distances, then reused in
    place for the cluster sums), plus bounded temporaries. Data is computed in
    its own dtype on the CPU (float64 for integer input) and in float32 on CUDA.

    Precision: sample distances come from the Gram expansion
    ``||a||^2 + ||b||^2 - 2 a.b`` in the compute dtype (as ``torch.cdist``
    does, and unlike scikit-learn's ``euclidean_distances``, which upcasts
    float32 blocks to float64 at about twice the cost of the distance phase).
    The absolute error of a squared distance is then about ``eps * (||a||^2 +
    ||b||^2)``: in float32, for L2-normalised features, Euclidean distances
    below about 1e-3 (near-duplicates) are not resolved, while distances of
    0.1 and more are accurate to about 1e-5 relative (1e-7 at 1). Pass float64 data when
    near-duplicates must be told apart.
    On CUDA, atomic additions may change the order of exactly tied pairs
    between runs.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ecluster.cluster import EnergyAgglomerative
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> model = EnergyAgglomerative(n_clusters=2, device="cpu").fit(X)
    >>> model.labels_
    array([0, 0, 0, 1, 1, 1])
    >>> model.n_steps_
    4

    The graph mode: only clusters joined by an edge of a 2-nearest-neighbour
    graph may merge, with the same (exact) criterion and no 6 x 6 matrix:

    >>> model = EnergyAgglomerative(n_clusters=2, connectivity=2, device="cpu").fit(X)
    >>> model.labels_, model.engine_
    (array([0, 0, 0, 1, 1, 1]), 'graph_batched')
    """

    _parameter_constraints = dict(PARAMETER_CONSTRAINTS)

    def __init__(
        self,
        n_clusters=None,
        *,
        merge_percent=0.05,
        lam=0.9,
        linkage="energy",
        regularizer="ssd",
        metric="auto",
        weighted=False,
        merge_schedule="constant",
        distance_threshold=None,
        max_steps=None,
        connectivity=None,
        missing_distance=None,
        device="auto",
        working_memory=None,
        verbose=0,
    ):
        self.n_clusters = n_clusters
        self.merge_percent = merge_percent
        self.lam = lam
        self.linkage = linkage
        self.regularizer = regularizer
        self.metric = metric
        self.weighted = weighted
        self.merge_schedule = merge_schedule
        self.distance_threshold = distance_threshold
        self.max_steps = max_steps
        self.connectivity = connectivity
        self.missing_distance = missing_distance
        self.device = device
        self.working_memory = working_memory
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, *, init_labels=None):
        """Cluster ``X``.

        Parameters
        ----------
        X : array-like, sparse matrix or torch.Tensor of shape (n_samples, n_features)
            Samples; a tensor stays on its device when ``device="auto"``.
            With ``metric="precomputed"``: distances (n_samples, n_samples),
            dense or sparse (see ``missing_distance``).
        y : Ignored
        init_labels : array-like of shape (n_samples,), default=None
            Start from these clusters instead of singletons (any integers;
            renumbered by first occurrence). The leaves of ``children_`` are
            then these initial clusters.

        Returns
        -------
        self : EnergyAgglomerative
        """
        if is_dask_array(X):
            X = _validate_dask(X)
            self.n_features_in_ = int(X.shape[1])
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif isinstance(X, torch.Tensor):
            X = _validate_tensor(X)
            self.n_features_in_ = int(X.shape[1])
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        else:
            X = validate_data(
                self, X, ensure_min_samples=2, dtype=[np.float64, np.float32],
                accept_sparse="csr" if self.metric == "precomputed" else False,
            )
        self.device_ = get_device(self.device, X)
        tree = energy_linkage_tree(
            X,
            n_clusters=self.n_clusters,
            merge_percent=self.merge_percent,
            lam=self.lam,
            linkage=self.linkage,
            regularizer=self.regularizer,
            metric=self.metric,
            weighted=self.weighted,
            merge_schedule=self.merge_schedule,
            distance_threshold=self.distance_threshold,
            max_steps=self.max_steps,
            init_labels=init_labels,
            connectivity=self.connectivity,
            missing_distance=self.missing_distance,
            device=self.device_,
            working_memory=self.working_memory,
            verbose=self.verbose,
        )
        self.labels_ = tree.labels.astype(np.int64)
        self.n_clusters_ = int(self.labels_.max()) + 1
        self.children_ = tree.children
        self.distances_ = tree.distances
        self.n_leaves_ = int(tree.n_leaves)
        self.n_steps_ = int(tree.n_steps)
        self.history_ = tree.history
        self.cut_score_ = tree.cut_score
        self.metric_ = tree.metric
        self.engine_ = tree.engine
        self.criterion_ = asdict(tree.criterion)
        return self

    def fit_predict(self, X, y=None, *, init_labels=None):
        """Cluster ``X`` and return ``labels_``.

        Parameters
        ----------
        X : array-like or torch.Tensor of shape (n_samples, n_features)
        y : Ignored
        init_labels : array-like of shape (n_samples,), default=None
            See :meth:`fit`.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.fit(X, init_labels=init_labels).labels_

    def get_linkage_matrix(self):
        """scipy linkage matrix of the fitted hierarchy.

        Usable with :func:`scipy.cluster.hierarchy.dendrogram`. Needs the full
        tree: ``n_clusters=1``, or no stopping rule at all (then the tree is
        the one the automatic cut used, see ``n_clusters``).

        Returns
        -------
        Z : ndarray of shape (``n_leaves_ - 1``, 4)

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_ecluster.cluster import EnergyAgglomerative
        >>> X = np.array([[0.0], [0.1], [5.0], [5.2]])
        >>> model = EnergyAgglomerative(n_clusters=1, merge_percent=None,
        ...                             device="cpu").fit(X)
        >>> Z = model.get_linkage_matrix()
        >>> Z[:, [0, 1, 3]]
        array([[0., 1., 2.],
               [2., 3., 2.],
               [4., 5., 4.]])
        >>> Z[:, 2].round(4)  # E = 2 d for singletons; then E + 0.9 (SSD_A + SSD_B)
        array([0.2   , 0.4   , 9.9725])
        """
        check_is_fitted(self)
        return linkage_matrix(self.children_, self.distances_, self.n_leaves_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
