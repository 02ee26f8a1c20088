"""The candidate graph of the graph mode, from what the user passes as ``connectivity``.

scikit-learn's meaning (:class:`sklearn.cluster.AgglomerativeClustering`): a
sparse (or dense) n_samples x n_samples matrix whose non-zero entries are the
sample pairs that may be joined, a callable ``connectivity(X)`` returning one,
and here also an integer k: the exact k-nearest-neighbour graph of X built by
:func:`~._knn_graph.knn_graph`. The graph is symmetrised (an edge either way
counts), its diagonal ignored; the values stored are not used.
"""

from numbers import Integral

import numpy as np
import scipy.sparse as sp

from ._graph_state import symmetric_edges


def resolve_connectivity(connectivity, X, n_samples, *, metric, device,
                         working_memory):
    """Undirected sample edges ``(u, v)``, ``u < v``, of ``connectivity``.

    Returns two sorted int64 arrays.
    """
    if isinstance(connectivity, bool):
        raise TypeError(f"connectivity must be a sparse matrix, an array, a callable "
                        f"or an int, got {connectivity!r}.")
    if isinstance(connectivity, Integral):
        k = int(connectivity)
        if k < 1:
            raise ValueError(f"connectivity={k} (neighbours per sample) must be >= 1.")
        # more neighbours than other samples: all of them (the complete graph),
        # so a recipe's k works on a small set too
        k = min(k, n_samples - 1)
        from ._knn_graph import knn_graph

        graph = knn_graph(X, k, metric="euclidean" if metric == "euclidean"
                          else "sqeuclidean", device=device,
                          working_memory=working_memory)
    elif callable(connectivity):
        graph = connectivity(X)
    else:
        graph = connectivity
    if not sp.issparse(graph):
        try:
            graph = sp.csr_matrix(np.asarray(graph))
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"connectivity must be a sparse matrix, an array, a callable or an "
                f"int; got {type(graph).__name__}."
            ) from exc
    if graph.shape != (n_samples, n_samples):
        raise ValueError(
            f"connectivity must be of shape (n_samples, n_samples) = "
            f"({n_samples}, {n_samples}), got {graph.shape}."
        )
    return symmetric_edges(graph, n_samples)
