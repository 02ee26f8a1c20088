"""The k-reciprocal encoding of the published re-ranking code, one sample at a time.

Zhong et al., CVPR 2017 (github.com/zhunzhong07/person-re-ranking), written from
the published algorithm and sharing no code with the package; only the argsort
is made stable (ties by index), as the package documents. Used by the tests of
``k_reciprocal_rerank`` and of ``jaccard_distance``.
"""

import numpy as np


def k_reciprocal_weights(dist, k1, k2):
    """The rows V of the k-reciprocal encoding of a (scaled) distance matrix."""
    n = dist.shape[0]
    rank = np.argsort(dist, axis=1, kind="stable")

    def reciprocal(i, k):
        forward = rank[i, : k + 1]
        return [j for j in forward if i in rank[j, : k + 1]]

    V = np.zeros((n, n))
    for i in range(n):
        r_i = reciprocal(i, k1)
        expanded = set(r_i)
        for j in r_i:
            r_j = reciprocal(j, int(np.around(k1 / 2)))
            if len(set(r_j) & set(r_i)) > 2 / 3 * len(r_j):
                expanded |= set(r_j)
        cols = sorted(expanded)
        w = np.exp(-dist[i, cols])
        V[i, cols] = w / w.sum()
    if k2 != 1:
        V = np.array([V[rank[i, :k2]].mean(axis=0) for i in range(n)])
    return V
