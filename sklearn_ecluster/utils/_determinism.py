"""Torch's deterministic mode for one block of code, the caller's settings restored.

Three global switches decide whether torch may pick non-deterministic kernels:
``torch.use_deterministic_algorithms`` (CUDA atomics, scatter/index_add, ...),
``torch.backends.cudnn.deterministic`` and ``torch.backends.cudnn.benchmark``
(cuDNN's algorithm choice, timed at run time when benchmarking). cuBLAS needs
``CUBLAS_WORKSPACE_CONFIG`` too. :func:`deterministic_algorithms` sets them
for the duration of a ``with`` block only, so that an estimator with
``deterministic=True`` leaves the process as it found it.
"""

import contextlib
import os

import torch

#: cuBLAS' deterministic workspace setting (NVIDIA's documented value).
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def _settings():
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )


@contextlib.contextmanager
def deterministic_algorithms(enabled=True):
    """Run the block under torch's deterministic mode; restore the settings after.

    With ``enabled``: ``torch.use_deterministic_algorithms(True)`` (an
    operation with no deterministic implementation raises
    :class:`RuntimeError` naming it), ``torch.backends.cudnn.deterministic =
    True`` and ``torch.backends.cudnn.benchmark = False``; and, when it is not
    set, the environment variable ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` that
    deterministic cuBLAS needs (set it before starting Python to be sure that
    it applies: cuBLAS may read it once, at its first use). On exit, even on an
    error, the previous values are put back. With ``enabled=False`` nothing is
    changed.

    Parameters
    ----------
    enabled : bool, default=True
        Whether to switch the deterministic mode on.

    Examples
    --------
    >>> import torch
    >>> from sklearn_ecluster.utils._determinism import deterministic_algorithms
    >>> before = torch.are_deterministic_algorithms_enabled()
    >>> with deterministic_algorithms():
    ...     torch.are_deterministic_algorithms_enabled()
    True
    >>> torch.are_deterministic_algorithms_enabled() == before
    True
    """
    if not enabled:
        yield
        return
    previous = _settings()
    env_was_set = "CUBLAS_WORKSPACE_CONFIG" in os.environ
    try:
        if not env_was_set:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE_CONFIG
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        yield
    finally:
        mode, warn_only, cudnn_deterministic, cudnn_benchmark = previous
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        torch.backends.cudnn.deterministic = cudnn_deterministic
        torch.backends.cudnn.benchmark = cudnn_benchmark
        if not env_was_set:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
