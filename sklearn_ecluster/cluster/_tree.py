"""The recorded merge sequence: cuts, relabelling and the scipy linkage matrix."""

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def relabel_by_first_occurrence(labels):
    """Map labels to 0..K-1 in the order of each cluster's smallest sample index.

    Examples
    --------
    >>> relabel_by_first_occurrence(np.array([7, 7, 3, 9, 3]))
    array([0, 0, 1, 2, 1])
    """
    labels = np.asarray(labels)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.ravel()]


def labels_at_cuts(children, leaf_labels, n_leaves, cuts):
    """Sample labels after the first ``q`` merges, for each ``q`` in ``cuts``.

    Parameters
    ----------
    children : ndarray (n_merges, 2)
        Merges in scikit-learn's ``children_`` format.
    leaf_labels : ndarray (n_samples,)
        Leaf of each sample (``arange`` when the leaves are the samples).
    n_leaves : int
    cuts : iterable of int
        Numbers of merges, each in ``0..n_merges``.

    Returns
    -------
    dict q -> labels (int64, relabelled 0..K-1 by first occurrence)
    """
    cuts = sorted(set(int(q) for q in cuts))
    children = np.asarray(children, dtype=np.int64).reshape(-1, 2)
    out = {}
    for q in cuts:
        # the first q merges as a graph over the tree's nodes: each new node
        # joined to its two children; a leaf's cluster is its component
        n_nodes = n_leaves + q
        src = np.repeat(np.arange(n_leaves, n_nodes), 2)
        graph = coo_matrix((np.ones(2 * q, dtype=np.int8), (src, children[:q].ravel())),
                           shape=(n_nodes, n_nodes))
        _, comp = connected_components(graph, directed=False)
        out[q] = relabel_by_first_occurrence(comp[:n_leaves][leaf_labels])
    return out


def linkage_matrix(children, distances, n_leaves):
    """scipy's linkage matrix ``Z`` of a complete merge sequence.

    ``Z[t] = [child_1, child_2, distance, size]``, node ``n_leaves + t`` being
    created by merge t, which is exactly scikit-learn's ``children_``
    numbering. The heights of a non-reducible criterion need not be monotone;
    :func:`scipy.cluster.hierarchy.dendrogram` still draws them.
    """
    children = np.asarray(children, dtype=np.int64)
    n_merges = len(children)
    if n_merges != n_leaves - 1:
        raise ValueError(
            f"The merge sequence has {n_merges} merges but a complete tree over "
            f"{n_leaves} leaves needs {n_leaves - 1}; fit with n_clusters=None and "
            "distance_threshold=None (and max_steps=None) to build the full tree."
        )
    sizes = np.ones(n_leaves + n_merges, dtype=np.float64)
    for t, (a, b) in enumerate(children):
        sizes[n_leaves + t] = sizes[a] + sizes[b]
    Z = np.empty((n_merges, 4), dtype=np.float64)
    Z[:, :2] = children
    Z[:, 2] = distances
    Z[:, 3] = sizes[n_leaves:]
    return Z
