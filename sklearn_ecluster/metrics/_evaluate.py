"""From features to the Market-1501 report: distances, optional re-ranking, ranking."""

from numbers import Integral

from ..utils import check_memory, pairwise_distances, self_distances
from ..utils._sklearn import Interval, validate_params
from ..utils._validation import check_label_vector
from ._distances import FEATURE_CONSTRAINTS, _check_features
from ._ranking import evaluate_reid
from ._rerank import _rerank_tensor, rerank_nbytes
from ._validation import REID_CONSTRAINTS


@validate_params(
    {
        **FEATURE_CONSTRAINTS,
        **{k: v for k, v in REID_CONSTRAINTS.items() if k != "distmat"},
        "max_rank": [Interval(Integral, 1, None, closed="left")],
        "rerank": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def evaluate_features(query_features, gallery_features, q_pids, g_pids, q_camids,
                      g_camids, *, metric="euclidean", max_rank=50, device="auto",
                      rerank=False):
    """Evaluate re-ID features with the Market-1501 protocol.

    Computes the query x gallery distances (as :func:`reid_distances`),
    optionally re-ranks them (:func:`k_reciprocal_rerank` with its default
    parameters), and evaluates them (as :func:`evaluate_reid`), all on one
    device.

    Parameters
    ----------
    query_features : array-like or torch.Tensor of shape (n_query, n_features)
    gallery_features : array-like or torch.Tensor of shape (n_gallery, n_features)
    q_pids : array-like of shape (n_query,)
        Person ids of the queries.
    g_pids : array-like of shape (n_gallery,)
        Person ids of the gallery.
    q_camids : array-like of shape (n_query,)
        Camera ids of the queries.
    g_camids : array-like of shape (n_gallery,)
        Camera ids of the gallery.
    metric : {"euclidean", "sqeuclidean", "cosine"}, default="euclidean"
        Distance between features.
    max_rank : int, default=50
        Length of the CMC curve.
    device : str or torch.device, default="auto"
        ``"auto"`` follows a tensor input, else CUDA when available, else
        the CPU.
    rerank : bool, default=False
        Apply k-reciprocal re-ranking (``k1=20, k2=6, lambda_value=0.3``)
        first; it needs memory for about :math:`(n_q + n_g)^2` distances
        (checked first: ``MemoryError``). Call
        :func:`k_reciprocal_rerank` and :func:`evaluate_reid` for other
        parameters.

    Returns
    -------
    results : dict
        As :func:`evaluate_reid`: ``"rank1"``, ``"rank5"``, ``"rank10"``,
        ``"mAP"``, ``"mINP"``, ``"cmc"`` and ``"n_valid_queries"``.

    See Also
    --------
    evaluate_reid : the same report from a distance matrix.

    Examples
    --------
    >>> from sklearn_ecluster.metrics import evaluate_features
    >>> qf = [[1.0, 0.0], [0.0, 1.0]]
    >>> gf = [[0.9, 0.1], [0.1, 0.9], [0.7, 0.7], [0.0, -1.0], [0.0, 1.05]]
    >>> g_pids, g_camids = [1, 2, 1, 2, 2], [1, 1, 1, 1, 0]
    >>> res = evaluate_features(qf, gf, [1, 2], g_pids, [0, 0], g_camids,
    ...                         max_rank=3, device="cpu")
    >>> res["rank1"], res["mAP"], res["mINP"]  # AP: 1 and (1/1 + 2/4) / 2
    (1.0, 0.875, 0.75)
    """
    Q, G = _check_features(query_features, gallery_features, metric, device)
    # Labels checked before the expensive part.
    for name, y, n, what in (
        ("q_pids", q_pids, Q.shape[0], "query_features"),
        ("g_pids", g_pids, G.shape[0], "gallery_features"),
        ("q_camids", q_camids, Q.shape[0], "query_features"),
        ("g_camids", g_camids, G.shape[0], "gallery_features"),
    ):
        check_label_vector(y, name, n, what=what)
    if rerank:
        nq, ng = Q.shape[0], G.shape[0]
        # The query-query and gallery-gallery distances, then the re-ranking.
        check_memory((nq * nq + ng * ng + nq * ng) * Q.element_size()
                     + rerank_nbytes(nq, ng, Q.element_size()), Q.device,
                     f"evaluate_features(rerank=True) on {nq} queries + {ng} "
                     "gallery items")
        distmat = _rerank_tensor(pairwise_distances(Q, G, metric),
                                 self_distances(Q, metric),
                                 self_distances(G, metric), 20, 6, 0.3)
    else:
        distmat = pairwise_distances(Q, G, metric)
    return evaluate_reid(distmat, q_pids, g_pids, q_camids, g_camids,
                         max_rank=max_rank)
