"""Input checks shared by the re-ID metrics.

The parameters (``max_rank``, ``k``, ``metric``, ...) are checked by
``validate_params``; the arrays by the helpers of
:mod:`sklearn_ecluster.utils._validation`, so a bad input gives the same
message whichever function it reached.
"""

import torch

from ..utils._validation import check_label_vector, check_matrix

# the constraints of the five label / distance arguments of every metric
REID_CONSTRAINTS = {
    "distmat": ["array-like"],
    "q_pids": ["array-like"],
    "g_pids": ["array-like"],
    "q_camids": ["array-like"],
    "g_camids": ["array-like"],
}


def check_reid_inputs(distmat, q_pids, g_pids, q_camids, g_camids):
    """Validate a query x gallery distance matrix and its four label vectors.

    Returns
    -------
    distmat : torch.Tensor of shape (n_query, n_gallery)
    q_pids, g_pids, q_camids, g_camids : torch.Tensor of int64
        On the device of ``distmat``.
    """
    D = check_matrix(distmat, "distmat")
    nq, ng = D.shape
    where_q = f"distmat (shape {tuple(D.shape)}) along axis 0"
    where_g = f"distmat (shape {tuple(D.shape)}) along axis 1"
    labels = (
        check_label_vector(q_pids, "q_pids", nq, what=where_q),
        check_label_vector(g_pids, "g_pids", ng, what=where_g),
        check_label_vector(q_camids, "q_camids", nq, what=where_q),
        check_label_vector(g_camids, "g_camids", ng, what=where_g),
    )
    return (D, *(torch.from_numpy(a).to(D.device) for a in labels))
