"""Query x gallery distances for re-ID evaluation."""

import torch

from ..utils import get_device, pairwise_distances, to_numpy
from ..utils._distances import METRICS
from ..utils._sklearn import StrOptions, validate_params
from ..utils._validation import check_matrix

# the constraints of the arguments shared by reid_distances and evaluate_features
FEATURE_CONSTRAINTS = {
    "query_features": ["array-like"],
    "gallery_features": ["array-like"],
    "metric": [StrOptions(set(METRICS))],
    "device": [str, torch.device],
}


def _check_features(query_features, gallery_features, metric, device):
    """Validated query and gallery feature tensors on one resolved device."""
    Q = check_matrix(query_features, "query_features")
    G = check_matrix(gallery_features, "gallery_features")
    if Q.shape[1] != G.shape[1]:
        raise ValueError(
            f"query_features has {Q.shape[1]} features per row but "
            f"gallery_features has {G.shape[1]} (shapes {tuple(Q.shape)} and "
            f"{tuple(G.shape)})."
        )
    tensor_in = next((x for x in (query_features, gallery_features)
                      if isinstance(x, torch.Tensor)), None)
    dev = get_device(device, tensor_in)
    # float64 only when both inputs are float64 (as torch type promotion).
    dtype = torch.promote_types(Q.dtype, G.dtype)
    return Q.to(dev, dtype), G.to(dev, dtype)


def _distance_tensor(query_features, gallery_features, metric, device):
    Q, G = _check_features(query_features, gallery_features, metric, device)
    return pairwise_distances(Q, G, metric)


@validate_params(FEATURE_CONSTRAINTS, prefer_skip_nested_validation=True)
def reid_distances(query_features, gallery_features, *, metric="euclidean",
                   device="auto"):
    """Distances between query and gallery features, blocked on torch.

    Parameters
    ----------
    query_features : array-like or torch.Tensor of shape (n_query, n_features)
    gallery_features : array-like or torch.Tensor of shape (n_gallery, n_features)
    metric : {"euclidean", "sqeuclidean", "cosine"}, default="euclidean"
        ``"cosine"`` is ``1 - cos(q, g)``; features need not be normalised.
    device : str or torch.device, default="auto"
        Where to compute: ``"auto"`` follows a tensor ``query_features``,
        else CUDA when available, else the CPU.

    Returns
    -------
    distmat : ndarray of shape (n_query, n_gallery)
        float64 when both inputs are float64 (integers count as float64),
        else float32.

    See Also
    --------
    sklearn_ecluster.utils.pairwise_distances : the tensor kernel used here.
    evaluate_features : distances and the Market-1501 evaluation in one call.

    Notes
    -----
    The matrix is computed in row blocks sized from scikit-learn's
    ``working_memory`` (or the free GPU memory), so the output is the only
    large allocation. Euclidean distances use the expansion
    :math:`\\|q\\|^2 - 2 q \\cdot g + \\|g\\|^2` (clipped at zero), fast but
    imprecise, in float32, for near-duplicate features (distances near
    zero); pass float64 features when that matters.

    Examples
    --------
    >>> from sklearn_ecluster.metrics import reid_distances
    >>> reid_distances([[0.0, 0.0]], [[3.0, 4.0], [0.0, 1.0]], device="cpu")
    array([[5., 1.]])
    >>> reid_distances([[1.0, 0.0]], [[0.0, 2.0]], metric="cosine", device="cpu")
    array([[1.]])
    """
    return to_numpy(_distance_tensor(query_features, gallery_features, metric, device))
