"""Float tolerances that follow from the dtype and the operation, not from one CPU.

A float32 convolution or matrix product sums K products; its rounding error is
about ``sqrt(K) * eps * max|term|`` (eps = 1.2e-7) and depends on the order of
the summation, which the CPU's instruction set (AVX2, AVX-512, ...), the BLAS /
oneDNN kernel chosen, the thread count and the batch composition all change.
The error is relative to the size of the terms, not of the result: an output
near zero (cancellation) may differ by a large *relative* amount. Hence the
comparisons here scale the absolute tolerance with the largest value of the
expected tensor, and use ``FLOAT32_RTOL = 1e-4`` (K up to ~10^4 terms of order
one, with a margin) for values of order 1.

On CUDA, cuDNN convolutions use TF32 by default (``torch.backends.cudnn.allow_tf32``):
a 10-bit mantissa, unit roundoff 4.9e-4, hence ``TF32_RTOL``.
"""

import numpy as np
import torch

FLOAT32_RTOL = 1e-4
TF32_RTOL = 5e-3


def _numpy(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def assert_allclose_float32(actual, expected, *, rtol=FLOAT32_RTOL, err_msg=""):
    """``|actual - expected| <= rtol * (|expected| + max|expected|)``, elementwise.

    For outputs of float32 kernels (convolutions, GEMMs, reductions) whose
    summation order is not fixed across machines. The absolute part,
    ``rtol * max|expected|``, is the error a float32 sum makes on entries of
    that size, whatever the value of the entry itself.
    """
    actual, expected = _numpy(actual), _numpy(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape, err_msg)
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale,
                               err_msg=err_msg)
