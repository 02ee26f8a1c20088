"""Functional core: :func:`energy_linkage_tree`, a short dispatcher over engines.

One engine per mode, each in its own module, all writing to one
:class:`~._recorder.MergeRecorder` and working on one
:class:`~._state.ClusterState` (pair matrix + statistics + criterion):

- ``"batched"`` (:mod:`._engine_batched`): the paper's schedule, many merges
  per evaluation of the criterion;
- ``"exact_reducible"`` (:mod:`._engine_reducible`): the exact greedy tree of a
  reducible criterion by the nearest-neighbour chain (compiled, CPU;
  :mod:`._reducible_chain`) and rounds of reciprocal nearest neighbours;
- ``"exact_mst"`` (:mod:`._engine_mst`): single linkage from a minimum
  spanning tree (the reducible engine when tree weights tie);
- ``"exact_cached"`` (:mod:`._engine_exact`): the exact greedy tree of any
  criterion with a nearest-neighbour cache;
- the graph mode (``connectivity`` given, or a sparse precomputed X;
  :mod:`._graph_state`): the same three modes on the edges of a candidate
  graph, with no N x N object: ``"graph_batched"``
  (:mod:`._engine_graph_batched`), ``"graph_reducible"`` and
  ``"graph_greedy"`` (:mod:`._engine_graph_exact`). Its sample distances
  come from a source: the features (:mod:`._sample_distances`, :mod:`._dask`)
  or a sparse precomputed matrix (:mod:`._sparse_distances`).

The automatic choice of the number of clusters is separate (:mod:`._cut`), as
in scikit-learn's ``_TREE_BUILDERS`` / ``_hc_cut`` split.
"""

import time
import warnings
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
import torch
from sklearn import get_config

from ..utils import get_device, to_tensor
from ..utils._sklearn import Interval, StrOptions, validate_params
from ._connectivity import resolve_connectivity
from ._criterion import LINKAGES, REGULARIZERS, Criterion
from ._cut import choose_cut
from ._dask import DaskSampleDistances, is_dask_array
from ._engine_batched import build_batched
from ._engine_exact import build_exact_cached
from ._engine_graph_batched import build_graph_batched
from ._engine_graph_exact import build_graph_greedy, build_graph_rounds
from ._engine_mst import build_exact_mst
from ._engine_reducible import build_exact_reducible
from ._graph_state import GraphState
from ._recorder import MergeRecorder
from ._sample_distances import TensorSampleDistances
from ._sparse_distances import SparsePrecomputedDistances
from ._state import ClusterState
from ._tree import labels_at_cuts, relabel_by_first_occurrence

#: the engines, by mode (see :func:`select_engine`)
ENGINES = {
    "batched": build_batched,
    "exact_reducible": build_exact_reducible,
    "exact_mst": build_exact_mst,
    "exact_cached": build_exact_cached,
    "graph_batched": build_graph_batched,
    "graph_reducible": build_graph_rounds,
    "graph_greedy": build_graph_greedy,
}

#: the graph engine of each dense engine (the same mode, on the edges)
GRAPH_ENGINES = {
    "batched": "graph_batched",
    "exact_reducible": "graph_reducible",
    "exact_mst": "graph_reducible",
    "exact_cached": "graph_greedy",
}

#: above this many samples the graph mode's automatic cut scores the
#: silhouette on a fixed random subsample of this size (O(s^2), not O(N^2))
SILHOUETTE_SAMPLE = 20_000

#: the hierarchy built and cut when no stopping rule is given and the fitted
#: criterion is not an exact reducible one: the weighted energy distance
#: without regulariser (Ward on sqrt(d)), reducible, so its cuts are nested
#: partitions at monotone heights that the silhouette can compare
CUT_CRITERION = Criterion(linkage="energy", regularizer=None, lam=0.0, weighted=True)


@dataclass(frozen=True)
class StopRule:
    """When an engine stops: ``target`` clusters, ``max_steps`` steps, or the
    first criterion value ``>= distance_threshold``."""

    target: int = 1
    max_steps: int | None = None
    distance_threshold: float | None = None

    def max_merges(self, k):
        """Merges of an exact engine from ``k`` clusters (one merge a step)."""
        q = k - self.target
        return q if self.max_steps is None else min(q, self.max_steps)


def select_engine(merge_percent, criterion, graph=False):
    """The engine of a mode: batched, else exact (MST, reducible or cached);
    with ``graph``, the graph engine of that mode."""
    if merge_percent is not None:
        engine = "batched"
    elif criterion.reducible and criterion.linkage == "single":
        engine = "exact_mst"
    else:
        engine = "exact_reducible" if criterion.reducible else "exact_cached"
    return GRAPH_ENGINES[engine] if graph else engine


PARAMETER_CONSTRAINTS = {
    "n_clusters": [Interval(Integral, 1, None, closed="left"), None],
    "merge_percent": [Interval(Real, 0, 1, closed="neither"), None],
    "lam": [Interval(Real, 0, None, closed="left")],
    "linkage": [StrOptions(set(LINKAGES))],
    "regularizer": [StrOptions(set(REGULARIZERS)), None],
    "metric": [StrOptions({"auto", "euclidean", "sqeuclidean", "precomputed"})],
    "weighted": ["boolean"],
    "merge_schedule": [StrOptions({"constant", "geometric"})],
    "distance_threshold": [Interval(Real, None, None, closed="neither"), None],
    "max_steps": [Interval(Integral, 1, None, closed="left"), None],
    "device": [str, torch.device],
    "working_memory": [Interval(Real, 0, None, closed="neither"), None],
    "verbose": ["verbose"],
    "connectivity": ["array-like", "sparse matrix", callable, Integral, None],
    "missing_distance": [Interval(Real, 0, None, closed="left"), None],
}


@dataclass
class LinkageTree:
    """Result of :func:`energy_linkage_tree`.

    Attributes
    ----------
    labels : ndarray (n_samples,)
        Cluster of each sample, 0..K-1 in order of first occurrence.
    children : ndarray (n_merges, 2)
        Merges in scikit-learn's ``children_`` format (leaf ids < ``n_leaves``,
        node ``n_leaves + t`` created by merge t).
    distances : ndarray (n_merges,)
        Criterion value of each merge (batched mode: as computed at the start
        of its step).
    n_leaves : int
        Number of leaves: samples, or initial clusters with ``init_labels``.
    leaf_labels : ndarray (n_samples,)
        Leaf of each sample.
    n_steps : int
        Steps that merged at least one pair.
    history : dict of lists
        Per step: ``n_clusters`` after it, ``n_merges``, ``max_distance``,
        ``seconds``.
    metric : str
        The sample metric used.
    criterion : Criterion
        The criterion of the hierarchy built (the standalone one when no
        stopping rule was given and the fitted one is not exact reducible).
    engine : str
        The engine that built it (a key of :data:`ENGINES`).
    cut_score : float or None
        Silhouette of the automatically chosen cut; None when no cut was
        scored (not automatic, or no cut with 2 <= K <= n_samples - 1, e.g.
        two samples).
    """

    labels: np.ndarray
    children: np.ndarray
    distances: np.ndarray
    n_leaves: int
    leaf_labels: np.ndarray
    n_steps: int
    history: dict = field(default_factory=dict)
    metric: str = "euclidean"
    criterion: Criterion = field(default_factory=Criterion)
    engine: str = "batched"
    cut_score: float | None = None


def resolve_metric(metric, linkage):
    """``"auto"`` -> Euclidean for energy, squared Euclidean for single/average."""
    if metric == "auto":
        return "euclidean" if linkage == "energy" else "sqeuclidean"
    if linkage == "energy" and metric == "sqeuclidean":
        raise ValueError(
            "metric='sqeuclidean' cannot be used with linkage='energy': with squared "
            "distances the energy distance collapses to 2 ||mu_A - mu_B||^2, a plain "
            "centroid distance (SPEC 2). Use metric='euclidean' (or 'auto')."
        )
    return metric


def _validate_init_labels(init_labels, n_samples):
    if isinstance(init_labels, torch.Tensor):
        init_labels = init_labels.detach().cpu().numpy()
    arr = np.asarray(init_labels)
    if arr.ndim != 1 or arr.shape[0] != n_samples:
        raise ValueError(
            f"init_labels must be a 1-D array of length n_samples={n_samples}, "
            f"got shape {arr.shape}."
        )
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(
                f"init_labels must hold integers, got dtype {arr.dtype}."
            )
    return relabel_by_first_occurrence(arr)


def _block_budget(working_memory, n, itemsize):
    """MiB for temporaries: the user's choice, else bounded by the pair matrix.

    scikit-learn's default working memory (1 GiB) would let one block of
    criterion values be as large as the N x N matrix itself; an eighth of it
    (at least 32 MiB) keeps the peak near one N x N buffer.
    """
    if working_memory is not None:
        return working_memory
    cap = get_config()["working_memory"]
    return float(min(cap, max(32.0, n * n * itemsize / 8 / 2**20)))


@validate_params(
    {"X": ["array-like", "sparse matrix", torch.Tensor],
     "init_labels": ["array-like", torch.Tensor, None],
     **PARAMETER_CONSTRAINTS},
    prefer_skip_nested_validation=True,
)
def energy_linkage_tree(
    X,
    *,
    n_clusters=None,
    merge_percent=0.05,
    lam=0.9,
    linkage="energy",
    regularizer="ssd",
    metric="auto",
    weighted=False,
    merge_schedule="constant",
    distance_threshold=None,
    max_steps=None,
    init_labels=None,
    connectivity=None,
    missing_distance=None,
    device="auto",
    working_memory=None,
    verbose=0,
):
    """Bottom-up clustering with the energy (or BUC / DBC) criterion.

    See :class:`~sklearn_ecluster.cluster.EnergyAgglomerative` for the
    parameters; this is its functional core and takes already validated,
    finite 2-D data (NumPy or a torch tensor).

    Returns
    -------
    tree : LinkageTree

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ecluster.cluster import energy_linkage_tree
    >>> X = np.array([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0], [5.0, 5.5]])
    >>> tree = energy_linkage_tree(X, n_clusters=2, merge_percent=None, device="cpu")
    >>> tree.labels
    array([0, 0, 1, 1])
    >>> tree.children
    array([[0, 1],
           [2, 3]])
    """
    on_dask = is_dask_array(X)
    if sp.issparse(X) and metric != "precomputed":
        raise TypeError(
            f"A sparse X is taken as a distance matrix only: use metric='precomputed' "
            f"(with missing_distance), got metric={metric!r}. Sparse features are not "
            "supported; pass them dense."
        )
    sparse_distances = metric == "precomputed" and sp.issparse(X)
    if sparse_distances:
        _check_sparse_precomputed(X, missing_distance)
        dev = get_device(device, None)
        dtype = torch.float64 if X.dtype == np.float64 and dev.type == "cpu" \
            else torch.float32
        Xt = SparsePrecomputedDistances(X, missing_distance, dtype, dev)
        itemsize = torch.empty((), dtype=dtype).element_size()
    elif on_dask:
        if connectivity is None:
            raise ValueError(
                "A Dask array X needs the graph mode (connectivity=...): the dense "
                "path holds an n_samples x n_samples matrix on one machine."
            )
        dev, Xt = torch.device("cpu"), X  # the merge loop runs on the client
        itemsize = X.dtype.itemsize
    else:
        dev = get_device(device, X)
        Xt = to_tensor(X, dev).detach()  # values only: nothing here is differentiable
        if not Xt.is_floating_point():
            Xt = Xt.to(torch.float64)
        if dev.type == "cuda" and Xt.dtype != torch.float32:
            Xt = Xt.to(torch.float32)  # float32 on GPU (documented)
        itemsize = Xt.element_size()
    n = Xt.shape[0]
    metric = resolve_metric(metric, linkage)
    if weighted and linkage != "energy":
        raise ValueError(
            f"weighted=True is defined for linkage='energy' only (the Szekely-Rizzo "
            f"weight n m / (n + m) of the energy distance, SPEC 2), got "
            f"linkage={linkage!r}. Use weighted=False with single or average linkage."
        )
    if n_clusters is not None and n_clusters > n:
        raise ValueError(f"n_clusters={n_clusters} must be <= n_samples={n}.")
    if init_labels is None:
        leaf_labels = np.arange(n, dtype=np.int64)
        k0 = n
    else:
        leaf_labels = _validate_init_labels(init_labels, n)
        k0 = int(leaf_labels.max()) + 1
        if n_clusters is not None and n_clusters > k0:
            raise ValueError(
                f"n_clusters={n_clusters} is larger than the number of initial clusters "
                f"({k0}) given by init_labels: merging can only reduce it. Use "
                f"n_clusters <= {k0}."
            )
    auto_cut = n_clusters is None and distance_threshold is None and max_steps is None
    criterion = Criterion(linkage=linkage, regularizer=regularizer, lam=float(lam),
                          weighted=bool(weighted))
    working_memory = _block_budget(working_memory, k0, itemsize)
    stop = StopRule(target=1 if n_clusters is None else n_clusters, max_steps=max_steps,
                    distance_threshold=distance_threshold)
    t_start = time.perf_counter()
    leaf_t = torch.as_tensor(leaf_labels, device=dev)
    graph = connectivity is not None or sparse_distances
    engine = select_engine(merge_percent, criterion, graph)
    if auto_cut and engine not in ("exact_reducible", "exact_mst", "graph_reducible"):
        # no stopping rule: the hierarchy cut is the standalone one (see
        # :data:`CUT_CRITERION`); batched and non-reducible hierarchies chain or
        # fragment when run to the end, and their cuts are poor (SPEC 6b)
        criterion = CUT_CRITERION
        engine = select_engine(None, criterion, graph)
        if metric == "sqeuclidean":
            metric = "euclidean"
    _check_precomputed(Xt, metric, criterion, graph and not sparse_distances)
    schedule = dict(merge_percent=merge_percent, merge_schedule=merge_schedule,
                    n_samples=n)
    if sparse_distances:
        source = Xt
        edges = _sparse_graph(source, connectivity, X)
    elif graph:
        edges = resolve_connectivity(connectivity, X if not isinstance(X, torch.Tensor)
                                     else Xt, n, metric=metric, device=dev,
                                     working_memory=working_memory)
        source = (DaskSampleDistances if on_dask else TensorSampleDistances)(
            Xt, metric, working_memory)
    if graph:
        children, distances, recorder = _build_graph(
            source, edges, leaf_labels, k0, criterion, engine, stop, verbose=verbose,
            schedule=schedule, warn_components=n_clusters is not None,
        )
    else:
        children, distances, recorder = _build(
            Xt, leaf_t, k0, criterion, engine, stop, metric=metric,
            working_memory=working_memory, singletons=init_labels is None,
            verbose=verbose, schedule=schedule,
        )
    cut_score = None
    q = len(children)
    if auto_cut and len(children) > 0:
        q, cut_score = choose_cut(
            Xt, children, leaf_labels, k0, metric, working_memory=working_memory,
            sample_size=min(n, SILHOUETTE_SAMPLE) if on_dask else (
                SILHOUETTE_SAMPLE if graph and n > SILHOUETTE_SAMPLE else None),
        )
    labels = labels_at_cuts(children, leaf_labels, k0, [q])[q]
    if verbose:
        print(
            f"[EnergyAgglomerative] {recorder.n_steps} steps, {len(children)} merges, "
            f"{int(labels.max()) + 1} clusters in {time.perf_counter() - t_start:.2f} s"
            + ("" if cut_score is None else f" (auto cut, silhouette {cut_score:.3f})")
        )
    return LinkageTree(
        labels=labels, children=children, distances=distances, n_leaves=k0,
        leaf_labels=leaf_labels, n_steps=recorder.n_steps, history=recorder.history,
        metric=metric, criterion=criterion, engine=engine, cut_score=cut_score,
    )


def _build(X, leaf_t, k0, criterion, engine, stop, *, metric, working_memory, singletons,
           verbose, schedule=None):
    """Run one engine on fresh state; returns ``(children, distances, recorder)``.

    The state (the one N x N buffer) is freed before returning.
    """
    state = ClusterState.from_samples(X, leaf_t, k0, criterion, metric=metric,
                                      working_memory=working_memory,
                                      singletons=singletons,
                                      read_only=engine == "exact_mst")
    recorder = MergeRecorder(k0, verbose, total=k0 - stop.target)
    kwargs = schedule if engine == "batched" else {}
    ENGINES[engine](state, recorder, stop, **kwargs)
    del state
    children, distances = recorder.close()
    return children, distances, recorder


def _build_graph(source, edges, leaf_labels, k0, criterion, engine, stop, *, verbose,
                 schedule, warn_components=True):
    """Run one graph engine; returns ``(children, distances, recorder)``.

    Warns when the graph runs out of edges before the stopping rule (its
    connected components cannot merge).
    """
    state = GraphState.from_graph(source, edges, leaf_labels, k0, criterion)
    recorder = MergeRecorder(k0, verbose, total=k0 - stop.target)
    kwargs = schedule if engine == "graph_batched" else {}
    ENGINES[engine](state, recorder, stop, **kwargs)
    if warn_components and state.n_edges == 0 and state.k > stop.target:
        warnings.warn(
            f"The connectivity graph has {state.k} connected components (between the "
            f"initial clusters): merging stopped at {state.k} clusters, above the "
            f"{stop.target} asked for. Use more neighbours or a connected graph.",
            UserWarning, stacklevel=4,
        )
    del state
    children, distances = recorder.close()
    return children, distances, recorder


def _check_sparse_precomputed(X, missing_distance):
    if X.shape[0] != X.shape[1]:
        raise ValueError(
            f"metric='precomputed' needs a square distance matrix, got X of shape "
            f"{tuple(X.shape)}."
        )
    if missing_distance is None:
        raise ValueError(
            "A sparse precomputed X needs missing_distance: the distance of the pairs it "
            "does not store (1.0 for jaccard_distance(..., sparse=True)). The energy "
            "criterion sums the distances of all sample pairs, stored or not."
        )


def _sparse_graph(source, connectivity, X):
    """The candidate graph of a sparse precomputed X: its stored pairs, or a subgraph."""
    if connectivity is None:
        return source.support_edges()
    if isinstance(connectivity, Integral) and not isinstance(connectivity, bool):
        k = int(connectivity)
        if k < 1:
            raise ValueError(f"connectivity={k} (neighbours per sample) must be >= 1.")
        # the k nearest stored pairs of each sample (the precomputed distance's kNN)
        connectivity = source.nearest_stored(k)
    return resolve_connectivity(connectivity, X, source.n_samples, metric="precomputed",
                                device=source.device, working_memory=None)


def _check_precomputed(X, metric, criterion, graph=False):
    if metric != "precomputed":
        return
    if graph:
        raise ValueError(
            "metric='precomputed' with connectivity needs a sparse X (its stored pairs "
            "and missing_distance for the others): the graph mode holds no N x N "
            "matrix. Pass a sparse distance matrix, or the features."
        )
    if X.shape[0] != X.shape[1]:
        raise ValueError(
            f"metric='precomputed' needs a square distance matrix, got X of shape "
            f"{tuple(X.shape)}."
        )
    if criterion.needs_moments:
        raise ValueError(
            f"regularizer={criterion.regularizer!r} needs the features (cluster means "
            "and sums of squares), which metric='precomputed' does not give; use "
            "regularizer=None or 'size', or pass the features."
        )
