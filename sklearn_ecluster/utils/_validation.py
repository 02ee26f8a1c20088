"""The checks that parameter constraints cannot express, one helper per kind.

Parameters of public functions are validated by ``validate_params`` and those
of estimators by ``_parameter_constraints`` (both through
:mod:`sklearn_ecluster.utils._sklearn`); a failed constraint raises
scikit-learn's ``InvalidParameterError``, which is both a ``TypeError`` and a
``ValueError``. What is left is checked here:

- :func:`check_scalar`: a number whose bounds depend on other arguments or on
  the data (``n_train_ids <= n_persons - 1``);
- :func:`check_int_pair`: an image size, or another ``(int, int)`` pair;
- :func:`check_label_vector`: person ids, camera ids, (pseudo) labels;
- :func:`check_tensor` and :func:`check_matrix`: tensors and real matrices.

The rule is the same everywhere: ``TypeError`` for a wrong type (``bool``
where a number is wanted included), ``ValueError`` for a wrong value, shape or
length; the message names the parameter and the offending value.
"""

import math
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.utils.validation import check_scalar as _sklearn_check_scalar

from ._device import to_numpy, to_tensor


def _is_bool(x):
    return isinstance(x, bool | np.bool_)


def check_scalar(x, name, target_type, *, min_val=None, max_val=None,
                 include_boundaries="both"):
    """:func:`sklearn.utils.check_scalar`, refusing ``bool`` for a number.

    scikit-learn's ``check_scalar`` takes ``True`` for an int (``bool`` is a
    subclass of ``int``); a flag given where a count is wanted is a mistake.

    Returns
    -------
    x : int or float
        ``x`` as a Python int (``target_type`` Integral) or float.
    """
    if _is_bool(x) and target_type is not bool:
        raise TypeError(f"{name} must be a number, not a bool; got {x!r}.")
    _sklearn_check_scalar(x, name, target_type, min_val=min_val, max_val=max_val,
                          include_boundaries=include_boundaries)
    if isinstance(target_type, type) and issubclass(target_type, Integral):
        return int(x)
    return float(x) if isinstance(x, Real) else x


def check_int_pair(value, name, *, min_val=1):
    """``value`` as a pair of Python ints ``>= min_val`` (an image size).

    A tuple or list of two ints (NumPy ints too) is accepted; ``bool`` items
    are refused.

    Raises
    ------
    TypeError
        If ``value`` is not a tuple or list, or an item is not an int.
    ValueError
        If ``value`` does not have two items, or one is below ``min_val``.
    """
    expected = f"a pair of ints >= {min_val}, e.g. (256, 128) for (height, width)"
    if not isinstance(value, tuple | list):
        raise TypeError(f"{name} must be {expected}; got {value!r}.")
    if len(value) != 2:
        raise ValueError(f"{name} must be {expected}; got {len(value)} items: {value!r}.")
    if any(_is_bool(v) or not isinstance(v, Integral) for v in value):
        raise TypeError(f"{name} must be {expected}; got {value!r}.")
    if min(value) < min_val:
        raise ValueError(f"{name} must be {expected}; got {value!r}.")
    return int(value[0]), int(value[1])


def check_label_vector(y, name, n=None, *, what="X", integer=True):
    """``y`` as a 1-D NumPy array of ``n`` labels.

    Parameters
    ----------
    y : array-like or torch.Tensor
        The labels.
    name : str
        Parameter name, for the messages.
    n : int, default=None
        The required length; None accepts any length.
    what : str, default="X"
        Where ``n`` comes from, for the messages.
    integer : bool, default=True
        True for person ids, camera ids and pseudo labels: the dtype must be
        an integer one, and the result is an int64 copy. Float arrays are
        refused even when their values are whole numbers (a float id array
        usually holds NaN-marked missing ids or a column parsed as text:
        cast it with ``.astype(int)`` first), and so are bool arrays. An
        empty array is accepted whatever its dtype (``np.asarray([])`` is
        float). False accepts labels of any dtype (strings, floats), as
        classification targets; float labels must then be finite.

    Returns
    -------
    y : ndarray of shape (n,)
        int64 (a writeable copy) when ``integer``, else as given.
    """
    arr = to_numpy(y) if isinstance(y, torch.Tensor) else np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}.")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} entries but {what} has {n}.")
    if integer:
        if arr.size and arr.dtype.kind not in "iu":
            raise TypeError(
                f"{name} must hold integers (person or camera ids), got dtype "
                f"{arr.dtype}."
            )
        return np.array(arr, dtype=np.int64)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    return arr


def _describe(x):
    return f"{type(x).__name__} of dtype {x.dtype}" if hasattr(x, "dtype") else (
        type(x).__name__)


def check_tensor(x, name, *, ndim, floating=None):
    """Check that ``x`` is a torch tensor of ``ndim`` dimensions; no data is read.

    Cheap enough for every training batch (no device synchronisation).

    Parameters
    ----------
    floating : bool, default=None
        True: a floating dtype is required; False: an integer dtype (not
        bool); None: any real dtype.

    Returns
    -------
    x : torch.Tensor
        ``x`` itself.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {_describe(x)}.")
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got {_describe(x)}.")
    if floating is True and not x.is_floating_point():
        raise TypeError(f"{name} must hold floating-point numbers, got {_describe(x)}.")
    if floating is False and x.is_floating_point():
        raise TypeError(f"{name} must hold integers, got {_describe(x)}.")
    if x.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {tuple(x.shape)}.")
    return x


def check_matrix(X, name, *, ndim=2):
    """``X`` as a floating torch tensor; refuse bad shapes, dtypes, NaN, inf.

    NumPy arrays and lists go to the CPU (sharing memory when possible); a
    tensor stays on its device. float32 and float64 are kept; integers and
    half precision become float64 and float32.
    """
    if isinstance(X, torch.Tensor):
        t = X.detach()
    else:
        try:
            arr = np.asarray(X)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise ValueError(f"{name} must be a rectangular array: {exc}") from exc
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"{name} must hold real numbers, got array of dtype {arr.dtype}.")
        t = to_tensor(arr, "cpu")
    check_tensor(t, name, ndim=ndim)
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
