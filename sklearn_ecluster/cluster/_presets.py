"""Named parameter sets: the paper's method and its two baselines.

Keeping them here means the command line, the self-training loop and the
benchmarks compare exactly the same configurations.
"""

from copy import deepcopy

METHOD_PRESETS = {
    # Standalone energy clustering (Szekely-Rizzo): the weighted energy
    # distance, no regulariser, exact (= R's energy.hclust, Ward on sqrt(d));
    # the configuration to cluster a data set on its own
    "standalone": {"linkage": "energy", "weighted": True, "regularizer": None,
                   "lam": 0.0, "merge_percent": None},
    # E-cluster (paper Eq. 8): energy distance + lam * (SSD(A) + SSD(B))
    "ecluster": {"linkage": "energy", "regularizer": "ssd", "lam": 0.9},
    # E-cluster without regulariser (paper's ablation)
    "ecluster_noreg": {"linkage": "energy", "regularizer": None, "lam": 0.0},
    # BUC: single linkage on squared Euclidean + lam * (|A| + |B|), lam of its code
    "buc": {"linkage": "single", "regularizer": "size", "lam": 0.005,
            "metric": "sqeuclidean"},
    "buc_noreg": {"linkage": "single", "regularizer": None, "lam": 0.0,
                  "metric": "sqeuclidean"},
    # DBC: average linkage on squared Euclidean + lam * (intra(A) + intra(B))
    "dbc": {"linkage": "average", "regularizer": "dispersion", "lam": 0.1,
            "metric": "sqeuclidean"},
}


def make_clusterer(method="ecluster", **params):
    """An :class:`EnergyAgglomerative` configured as a named method.

    ``"standalone"`` is the energy clustering to use on a data set by itself:
    the weighted energy distance without a regulariser, exact (one merge at a
    time), which is R's ``energy::energy.hclust`` and Ward's method on
    sqrt(d); it is built by the fast reducible engine. ``"ecluster"``,
    ``"buc"`` and ``"dbc"`` are the paper's criterion and its two baselines,
    made for one batched step per round of the self-training loop, on
    features that are re-learnt between steps (run alone to the end they chain
    or fragment; see the clustering guide's tables).

    Parameters
    ----------
    method : {"standalone", "ecluster", "ecluster_noreg", "buc", "buc_noreg", "dbc"}, \
default="ecluster"
        The preset (see ``METHOD_PRESETS``).
    **params
        Further parameters of :class:`EnergyAgglomerative`; they override the preset.

    Returns
    -------
    clusterer : EnergyAgglomerative

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.metrics import adjusted_rand_score
    >>> from sklearn_ecluster.cluster import make_clusterer
    >>> X, y = load_iris(return_X_y=True)
    >>> model = make_clusterer("standalone", n_clusters=3, device="cpu").fit(X)
    >>> round(adjusted_rand_score(y, model.labels_), 2) >= 0.7
    True
    >>> buc = make_clusterer("buc", merge_percent=0.05, device="cpu")
    >>> buc.linkage, buc.regularizer, buc.lam
    ('single', 'size', 0.005)
    """
    from ._agglomerative import EnergyAgglomerative

    if method not in METHOD_PRESETS:
        raise ValueError(
            f"method={method!r} is not a known preset; use one of "
            f"{sorted(METHOD_PRESETS)}."
        )
    return EnergyAgglomerative(**{**deepcopy(METHOD_PRESETS[method]), **params})
