"""Device resolution and NumPy <-> torch conversion.

Convention (as in skorch and TorchDR): ``device="auto"`` follows a torch tensor
input, else CUDA when available, else CPU. NumPy in, NumPy out.
"""

import numpy as np
import torch


def get_device(device="auto", X=None):
    """Resolve a device specification into a :class:`torch.device`.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"} or str or torch.device, default="auto"
        ``"auto"`` follows ``X`` when it is a tensor, else picks CUDA when
        available, else the CPU. Any string torch understands (``"cuda:1"``)
        is accepted.
    X : object, default=None
        Input data; only its device is looked at when it is a tensor.

    Returns
    -------
    device : torch.device

    Raises
    ------
    ValueError
        If the string is not a device, or CUDA is asked for but not available.

    Examples
    --------
    >>> from sklearn_ecluster.utils import get_device
    >>> get_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        dev = device
    elif device is None or (isinstance(device, str) and device == "auto"):
        if isinstance(X, torch.Tensor):
            return X.device
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif isinstance(device, str):
        try:
            dev = torch.device(device)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(
                f"device={device!r} is not a valid torch device; use 'auto', "
                "'cpu', 'cuda' or 'cuda:N'."
            ) from exc
    else:
        raise TypeError(
            f"device must be a string or torch.device, got {type(device).__name__}."
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} was requested but CUDA is not available on this "
            "machine; use device='cpu' or device='auto'."
        )
    return dev


# Alias kept short for call sites that read better with a verb.
resolve_device = get_device


def to_tensor(X, device, dtype=None):
    """Move NumPy data or a tensor to ``device`` without touching the caller's array.

    Read-only arrays (memmaps) are copied first, since ``torch.from_numpy``
    needs a writeable buffer.
    """
    if isinstance(X, torch.Tensor):
        return X.to(device=device, dtype=dtype or X.dtype)
    X = np.asarray(X)
    if not X.flags.writeable or not X.flags.c_contiguous:
        X = np.ascontiguousarray(X).copy()
    t = torch.from_numpy(X)
    return t.to(device=device, dtype=dtype or t.dtype)


def to_numpy(t):
    """Return a NumPy array of ``t`` (gathered on the CPU, detached)."""
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().numpy()
    return np.asarray(t)
