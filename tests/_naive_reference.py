"""A deliberately naive reference of the clustering method, in plain NumPy.

Written from the definitions of SPEC sections 2-4 and 6 only; it shares no code
with the package. Every cluster distance is recomputed from the member points
at the start of every step, pair by pair (about O(N^4) per fit: fine for
N <= 40) or, with ``vectorized=True``, for all pairs at once by NumPy matrix
algebra (N of a few hundred). Sample distances come from coordinate
differences, not from the Gram expansion the package uses. The tests compare
:class:`EnergyAgglomerative` against it.

Conventions (SPEC 6):

- clusters are indexed 0..K-1 in order of their smallest sample index;
- one step evaluates D for all pairs (i < j) once, sorts them by (D, i, j),
  walks them with a union-find (a pair whose sides were already joined in this
  step is skipped) and stops after m merges, at ``n_clusters``, or at the
  first pair with ``D >= distance_threshold``;
- a merge of the groups rooted at a < b is recorded as
  ``(node(a), node(b))`` in scikit-learn's ``children_`` numbering (leaves
  ``0..n_leaves-1``, merge t creates node ``n_leaves + t``);
- ``merge_percent=None`` (exact mode) is the same walk with one merge per step.
"""

import numpy as np

# ----------------------------------------------------------------------------
# sample distances and cluster statistics, straight from the definitions


def euclidean_brute(a, b):
    """||a - b|| by an explicit sum over the coordinates."""
    total = 0.0
    for u, v in zip(a, b):
        total += (float(u) - float(v)) ** 2
    return total**0.5


def energy_distance_brute(A, B):
    """Eq. 6 with V-statistics, by explicit double loops over the points."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    n, m = len(A), len(B)
    between = sum(euclidean_brute(a, b) for a in A for b in B)
    within_a = sum(euclidean_brute(a, c) for a in A for c in A)
    within_b = sum(euclidean_brute(b, c) for b in B for c in B)
    return 2.0 * between / (n * m) - within_a / n**2 - within_b / m**2


def ssd_brute(C):
    """Sum of squared deviations from the mean (Eq. 7), by a loop over points."""
    C = np.asarray(C, dtype=np.float64)
    mu = C.sum(axis=0) / len(C)
    return float(sum(((x - mu) ** 2).sum() for x in C))


def sample_distances(X, metric):
    """All pairwise sample distances by broadcasting (metric of the linkage)."""
    X = np.asarray(X, dtype=np.float64)
    diff = X[:, None, :] - X[None, :, :]
    sq = (diff**2).sum(axis=-1)
    if metric == "euclidean":
        return np.sqrt(sq)
    if metric == "sqeuclidean":
        return sq
    raise ValueError(metric)


def resolve_metric(metric, linkage):
    if metric == "auto":
        return "euclidean" if linkage == "energy" else "sqeuclidean"
    return metric


def _ssd(X, idx):
    C = X[idx]
    return float(((C - C.sum(axis=0) / len(C)) ** 2).sum())


def _intra(Dsq, idx):
    """DBC's intra(C): mean squared distance over all ordered pairs (self incl.)."""
    return float(Dsq[np.ix_(idx, idx)].mean())


def cluster_summary(X, Dm, Dsq, idx):
    """What the criterion needs of one cluster alone, from its member points."""
    return {
        "idx": idx,
        "within": float(Dm[np.ix_(idx, idx)].mean()),  # V-statistic, n^2 terms
        "ssd": _ssd(X, idx),
        "intra": _intra(Dsq, idx),
    }


def pair_criterion(X, Dm, Dsq, A, B, *, linkage, regularizer, lam, weighted):
    """D(A, B) of SPEC 4 for two clusters.

    ``A`` and ``B`` are member index arrays or summaries from
    :func:`cluster_summary`. ``Dm`` holds the sample distances of the
    linkage's metric, ``Dsq`` the squared Euclidean ones (DBC's dispersion).
    """
    if not isinstance(A, dict):
        A = cluster_summary(X, Dm, Dsq, A)
    if not isinstance(B, dict):
        B = cluster_summary(X, Dm, Dsq, B)
    a, b = A["idx"], B["idx"]
    n, m = len(a), len(b)
    cross = Dm[a][:, b]
    if linkage == "energy":
        base = 2.0 * cross.sum() / (n * m) - A["within"] - B["within"]
        if weighted:
            base *= n * m / (n + m)
    elif linkage == "average":
        base = cross.sum() / (n * m)
    elif linkage == "single":
        base = cross.min()
    else:
        raise ValueError(linkage)
    if regularizer is None:
        reg = 0.0
    elif regularizer == "ssd":
        reg = A["ssd"] + B["ssd"]
    elif regularizer == "ssd_merged":
        reg = _ssd(X, np.concatenate([a, b]))
    elif regularizer == "size":
        reg = float(n + m)
    elif regularizer == "dispersion":
        reg = A["intra"] + B["intra"]
    else:
        raise ValueError(regularizer)
    return float(base) + lam * reg


def criterion_matrix(X, Dm, Dsq, clusters, *, linkage, regularizer, lam, weighted):
    """D for all cluster pairs at once, by NumPy matrix algebra.

    The same definitions as :func:`pair_criterion`, evaluated with a one-hot
    membership matrix P (cross sums P^T D P) so that N of a few hundred stays
    fast. SSD(A u B) uses the pairwise form of SPEC 3,
    (1/(2|C|)) sum_{x, y in C} ||x - y||^2, not the centroid update.
    Returns a (K, K) array; only the entries i < j are meaningful.
    """
    n_samples, k = len(X), len(clusters)
    P = np.zeros((n_samples, k))
    for c, idx in enumerate(clusters):
        P[idx, c] = 1.0
    sizes = P.sum(axis=0)
    nm = np.outer(sizes, sizes)
    if linkage == "single":
        order = np.concatenate(clusters)
        starts = np.cumsum([0] + [len(c) for c in clusters[:-1]])
        M = Dm[np.ix_(order, order)]
        base = np.minimum.reduceat(np.minimum.reduceat(M, starts, axis=0), starts, axis=1)
    else:
        S = P.T @ Dm @ P
        if linkage == "average":
            base = S / nm
        elif linkage == "energy":
            within = np.diag(S) / sizes**2
            base = 2.0 * S / nm - within[:, None] - within[None, :]
            if weighted:
                base = base * nm / (sizes[:, None] + sizes[None, :])
        else:
            raise ValueError(linkage)
    Q = P.T @ Dsq @ P  # sums of squared distances
    ssd = np.diag(Q) / (2.0 * sizes)
    if regularizer is None:
        reg = 0.0
    elif regularizer == "ssd":
        reg = ssd[:, None] + ssd[None, :]
    elif regularizer == "ssd_merged":
        qd = np.diag(Q)
        reg = (qd[:, None] + qd[None, :] + 2.0 * Q) / (
            2.0 * (sizes[:, None] + sizes[None, :])
        )
    elif regularizer == "size":
        reg = sizes[:, None] + sizes[None, :]
    elif regularizer == "dispersion":
        intra = np.diag(Q) / sizes**2
        reg = intra[:, None] + intra[None, :]
    else:
        raise ValueError(regularizer)
    return base + lam * reg


# ----------------------------------------------------------------------------
# the schedule


def relabel_first_occurrence(labels):
    """0..K-1 in order of first occurrence (a plain loop)."""
    mapping = {}
    out = np.empty(len(labels), dtype=np.int64)
    for i, lab in enumerate(np.asarray(labels).tolist()):
        if lab not in mapping:
            mapping[lab] = len(mapping)
        out[i] = mapping[lab]
    return out


def naive_agglomerate(
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
    vectorized=False,
    adjacency=None,
):
    """The schedule of SPEC 6, naively. Returns a dict of NumPy results.

    ``adjacency``: a dense boolean (n, n) sample graph (the graph mode): only
    clusters with a sample edge between them are candidate pairs.

    ``vectorized=False`` evaluates every pair with :func:`pair_criterion`
    (N <= 40); ``vectorized=True`` with :func:`criterion_matrix` (N of a few
    hundred). Keys: ``labels``, ``children``, ``distances``, ``n_leaves``,
    ``n_steps``, ``history_n_clusters``, ``history_n_merges``.
    """
    if weighted and linkage != "energy":
        raise ValueError("the weighted form is defined for the energy linkage")
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    metric = resolve_metric(metric, linkage)
    if metric == "precomputed":  # X is the distance matrix (no features: no SSD)
        Dm = (X + X.T) / 2
        np.fill_diagonal(Dm, 0.0)
        Dsq = np.zeros_like(Dm)  # only the SSD / dispersion regularisers read it
    else:
        Dm = sample_distances(X, metric)
        Dsq = sample_distances(X, "sqeuclidean")
    leaf = (
        np.arange(n) if init_labels is None else relabel_first_occurrence(init_labels)
    )
    n_leaves = int(leaf.max()) + 1
    # clusters in order of their smallest sample index (= leaf order)
    clusters = [np.flatnonzero(leaf == c) for c in range(n_leaves)]
    node = list(range(n_leaves))
    target = 1 if n_clusters is None else n_clusters
    children, distances = [], []
    hist_k, hist_m = [], []
    n_steps = 0
    while len(clusters) > target and (max_steps is None or n_steps < max_steps):
        k = len(clusters)
        if merge_percent is None:
            quota = 1
        else:
            base = n if merge_schedule == "constant" else k
            quota = max(1, int(merge_percent * base))
        quota = min(quota, k - target)
        crit = dict(linkage=linkage, regularizer=regularizer, lam=lam, weighted=weighted)
        if vectorized:
            Dk = criterion_matrix(X, Dm, Dsq, clusters, **crit)
            ii, jj = np.triu_indices(k, 1)
            if adjacency is not None:
                P = np.zeros((k, n), dtype=np.int64)
                for c, members in enumerate(clusters):
                    P[c, members] = 1
                linked = (P @ np.asarray(adjacency, dtype=np.int64) @ P.T) > 0
                ok = linked[ii, jj]
                ii, jj = ii[ok], jj[ok]
            vals = Dk[ii, jj]
            order = np.lexsort((jj, ii, vals))
            pairs = zip(vals[order].tolist(), ii[order].tolist(), jj[order].tolist())
        else:
            summaries = [cluster_summary(X, Dm, Dsq, c) for c in clusters]
            pairs = []
            for i in range(k):
                for j in range(i + 1, k):
                    if adjacency is not None and not np.asarray(adjacency)[
                            np.ix_(clusters[i], clusters[j])].any():
                        continue
                    d = pair_criterion(X, Dm, Dsq, summaries[i], summaries[j], **crit)
                    pairs.append((d, i, j))
            pairs.sort()
        parent = list(range(k))

        def find(a, parent=parent):
            while parent[a] != a:
                a = parent[a]
            return a

        n_merged = 0
        stopped = False
        for d, i, j in pairs:
            if n_merged >= quota:
                break
            if distance_threshold is not None and d >= distance_threshold:
                stopped = True
                break
            a, b = find(i), find(j)
            if a == b:
                continue
            a, b = min(a, b), max(a, b)
            children.append((node[a], node[b]))
            distances.append(d)
            node[a] = n_leaves + len(children) - 1
            parent[b] = a
            n_merged += 1
        if n_merged == 0:
            break  # a step counts only when it merges (both modes)
        n_steps += 1
        # the groups, each under its smallest cluster index (its root)
        roots = [find(c) for c in range(k)]
        groups = {}
        for c, r in enumerate(roots):
            groups.setdefault(r, []).append(clusters[c])
        order = sorted(groups)
        clusters = [np.sort(np.concatenate(groups[r])) for r in order]
        node = [node[r] for r in order]
        hist_k.append(len(clusters))
        hist_m.append(n_merged)
        if stopped:
            break
    labels = np.empty(n, dtype=np.int64)
    for c, members in enumerate(clusters):
        labels[members] = c
    return {
        "labels": labels,
        "children": np.asarray(children, dtype=np.int64).reshape(-1, 2),
        "distances": np.asarray(distances, dtype=np.float64),
        "n_leaves": n_leaves,
        "n_steps": n_steps,
        "history_n_clusters": hist_k,
        "history_n_merges": hist_m,
    }


# ----------------------------------------------------------------------------
# trees: leaf sets of the nodes, partitions at cuts (independent of the package)


def node_members(children, n_leaves):
    """Frozenset of the leaves under each merge node, in merge order."""
    members = [frozenset([i]) for i in range(n_leaves)]
    out = []
    for a, b in np.asarray(children, dtype=np.int64).tolist():
        s = members[a] | members[b]
        members.append(s)
        out.append(s)
    return out


def merge_sets(children, n_leaves):
    """Each merge as the unordered pair of the leaf sets it joins."""
    members = [frozenset([i]) for i in range(n_leaves)]
    out = []
    for a, b in np.asarray(children, dtype=np.int64).tolist():
        out.append(frozenset([members[a], members[b]]))
        members.append(members[a] | members[b])
    return out


def partitions_from_children(children, n_leaves):
    """Leaf labels (relabelled by first occurrence) after 0, 1, ... merges."""
    parent = list(range(n_leaves))
    rep = list(range(n_leaves))

    def find(a):
        while parent[a] != a:
            a = parent[a]
        return a

    def current():
        return relabel_first_occurrence([find(i) for i in range(n_leaves)])

    out = [current()]
    for a, b in np.asarray(children, dtype=np.int64).tolist():
        ra, rb = find(rep[a]), find(rep[b])
        parent[max(ra, rb)] = min(ra, rb)
        rep.append(min(ra, rb))
        out.append(current())
    return out


def scipy_z_to_children(Z):
    """The first two columns of a scipy linkage matrix as ``children_``."""
    return np.asarray(Z[:, :2], dtype=np.int64)


def r_merge_to_children(merge):
    """R's hclust ``merge`` (negative: singleton -i, positive: step s, 1-based)."""
    merge = np.asarray(merge, dtype=np.int64)
    n_leaves = len(merge) + 1
    out = np.empty_like(merge)
    for t, row in enumerate(merge):
        for c, v in enumerate(row):
            out[t, c] = -v - 1 if v < 0 else n_leaves + v - 1
    return out
