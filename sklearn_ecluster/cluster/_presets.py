"""Named parameter sets: the paper's method and its two baselines.

Keeping them here means the command line, the self-training loop and the
benchmarks compare exactly the same configurations.
"""

from copy import deepcopy

METHOD_PRESETS = {
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
    """An :class:`EnergyAgglomerative` configured as E-cluster, BUC or DBC.

    Parameters
    ----------
    method : {"ecluster", "ecluster_noreg", "buc", "buc_noreg", "dbc"}, default="ecluster"
        The preset (see ``METHOD_PRESETS``).
    **params
        Further parameters of :class:`EnergyAgglomerative`; they override the preset.

    Returns
    -------
    clusterer : EnergyAgglomerative

    Examples
    --------
    >>> from sklearn_ecluster.cluster import make_clusterer
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
