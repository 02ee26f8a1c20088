"""How good are pseudo labels? Pairwise precision / recall, NMI, ARI against true ids."""

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import pair_confusion_matrix

from ..utils._sklearn import validate_params
from ..utils._validation import check_label_vector


@validate_params(
    {"labels_true": ["array-like"], "labels_pred": ["array-like"]},
    prefer_skip_nested_validation=True,
)
def pseudo_label_scores(labels_true, labels_pred):
    """Quality of pseudo labels against the true person ids.

    The pairwise measures of BUC's paper: of the pairs of images put in one
    cluster, the share that shows one person (precision); of the pairs of
    images of one person, the share put in one cluster (recall).

    Parameters
    ----------
    labels_true : array-like of shape (n_samples,)
        True person ids (used for diagnostics only, never for training).
    labels_pred : array-like of shape (n_samples,)
        Pseudo labels (cluster ids).

    Returns
    -------
    scores : dict
        ``"precision"`` and ``"recall"`` (None when undefined: no pair in
        one cluster, or no pair of one person), ``"nmi"``, ``"ari"`` and
        ``"n_clusters"``.

    Examples
    --------
    >>> from sklearn_ecluster.self_training import pseudo_label_scores
    >>> s = pseudo_label_scores([0, 0, 0, 1, 1], [0, 0, 1, 1, 1])
    >>> s["precision"], s["recall"]   # 2 of 4 pairs pure; 2 of 4 same-id pairs joined
    (0.5, 0.5)
    """
    labels_true = check_label_vector(labels_true, "labels_true", integer=False)
    labels_pred = check_label_vector(labels_pred, "labels_pred", len(labels_true),
                                     what="labels_true", integer=False)
    # pair_confusion_matrix counts ordered pairs: C[1, 1] together in both,
    # C[0, 1] together only in the prediction, C[1, 0] only in the truth.
    c = pair_confusion_matrix(labels_true, labels_pred).astype(np.float64)
    joined, same_id = c[1, 1] + c[0, 1], c[1, 1] + c[1, 0]
    return {
        "precision": float(c[1, 1] / joined) if joined > 0 else None,
        "recall": float(c[1, 1] / same_id) if same_id > 0 else None,
        "nmi": float(normalized_mutual_info_score(labels_true, labels_pred)),
        "ari": float(adjusted_rand_score(labels_true, labels_pred)),
        "n_clusters": int(len(np.unique(labels_pred))),
    }
