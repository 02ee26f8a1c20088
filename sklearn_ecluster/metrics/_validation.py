"""Input checks shared by the re-ID metrics.

Every public function of :mod:`sklearn_ecluster.metrics` validates here, so a
bad input gives the same message whichever function it reached: the message
names the parameter and the offending shape, dtype or value.
"""

import math
import numbers

import numpy as np
import torch

from ..utils import to_numpy, to_tensor


def _describe(x):
    if isinstance(x, torch.Tensor):
        return f"torch.Tensor of dtype {x.dtype}"
    return f"array of dtype {np.asarray(x).dtype}"


def check_scores_matrix(X, name, *, ndim=2):
    """Return ``X`` as a floating torch tensor; reject bad shapes, dtypes, NaN, inf.

    NumPy arrays and lists go to the CPU (sharing memory when possible); a
    tensor stays on its device. float32 and float64 are kept; integers and
    half precision become float64 and float32.
    """
    if isinstance(X, torch.Tensor):
        t = X.detach()
        if t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got {_describe(t)}.")
    else:
        try:
            arr = np.asarray(X)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise ValueError(f"{name} must be a rectangular array: {exc}") from exc
        if arr.dtype.kind not in "iuf":
            raise TypeError(
                f"{name} must hold real numbers, got {_describe(arr)}."
            )
        t = to_tensor(arr, "cpu")
    if t.ndim != ndim:
        raise ValueError(
            f"{name} must be a {ndim}-D array, got shape {tuple(t.shape)}."
        )
    if min(t.shape) == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(t.shape)}.")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    elif t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    # min and max propagate NaN and show infinities: one pass, no temporary
    # (torch.isfinite builds three full-size ones).
    lo, hi = torch.aminmax(t)
    if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        bad = "NaN" if bool(torch.isnan(t).any()) else "infinity"
        raise ValueError(f"{name} contains {bad}; all values must be finite.")
    return t


def check_labels(y, name, n, what):
    """Return ``y`` as a 1-D int64 NumPy array of length ``n``.

    ``what`` says where ``n`` comes from, for the error message.
    """
    arr = to_numpy(y) if isinstance(y, torch.Tensor) else np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}.")
    if arr.dtype.kind not in "iub":
        raise TypeError(
            f"{name} must hold integers (person or camera ids), got dtype "
            f"{arr.dtype}."
        )
    if arr.shape[0] != n:
        raise ValueError(
            f"{name} has {arr.shape[0]} entries but {what} has {n}."
        )
    return np.array(arr, dtype=np.int64)  # a small, writeable copy


def check_positive_int(value, name):
    """Reject anything but an integer >= 1 (``bool`` included)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}.")
    return int(value)


def check_reid_inputs(distmat, q_pids, g_pids, q_camids, g_camids):
    """Validate a query x gallery distance matrix and its four label vectors.

    Returns
    -------
    distmat : torch.Tensor of shape (n_query, n_gallery)
    q_pids, g_pids, q_camids, g_camids : torch.Tensor of int64
        On the device of ``distmat``.
    """
    D = check_scores_matrix(distmat, "distmat")
    nq, ng = D.shape
    where_q = f"distmat (shape {tuple(D.shape)}) along axis 0"
    where_g = f"distmat (shape {tuple(D.shape)}) along axis 1"
    labels = (
        check_labels(q_pids, "q_pids", nq, where_q),
        check_labels(g_pids, "g_pids", ng, where_g),
        check_labels(q_camids, "q_camids", nq, where_q),
        check_labels(g_camids, "g_camids", ng, where_g),
    )
    return (D, *(torch.from_numpy(a).to(D.device) for a in labels))
