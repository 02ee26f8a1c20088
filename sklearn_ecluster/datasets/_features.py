"""Synthetic person re-identification features: :func:`make_reid_features`.

A stand-in for the L2-normalised CNN features of a re-ID training set such as
Market-1501 (12,936 images of 751 identities seen by 6 cameras), for tests,
examples and benchmarks that must run without images or a network.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state

from ..utils._sklearn import Interval, validate_params

__all__ = ["make_reid_features"]


def _group_sizes(n_samples, n_identities, min_size, max_size, sigma, rng):
    """Long-tailed sizes in ``[min_size, max_size]`` that sum to ``n_samples``.

    Lognormal draws are scaled (by bisection) so that, once clipped to the
    bounds, they sum to ``n_samples``; rounding leftovers are then given to
    (or taken from) random identities that stay within the bounds.
    """
    raw = rng.lognormal(mean=0.0, sigma=sigma, size=n_identities)

    def total(scale):
        return np.clip(raw * scale, min_size, max_size).sum()

    lo, hi = 0.0, 1.0
    while total(hi) < n_samples:
        hi *= 2.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if total(mid) < n_samples else (lo, mid)
    sizes = np.clip(np.round(raw * hi), min_size, max_size).astype(np.int64)
    diff = n_samples - int(sizes.sum())
    while diff != 0:
        step = 1 if diff > 0 else -1
        room = sizes < max_size if step > 0 else sizes > min_size
        candidates = np.flatnonzero(room)
        pick = rng.choice(candidates, size=min(abs(diff), candidates.size), replace=False)
        sizes[pick] += step
        diff -= step * pick.size
    return sizes


def _unit_rows(rng, n, dim):
    """``n`` random directions, uniform on the unit sphere of ``R^dim``."""
    v = rng.standard_normal((n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


_COUNT = [Interval(Integral, 1, None, closed="left")]
_LENGTH = [Interval(Real, 0, None, closed="left")]  # inf and NaN are outside


@validate_params(
    {
        "n_samples": _COUNT,
        "n_identities": _COUNT,
        "n_features": _COUNT,
        "n_cameras": _COUNT,
        "n_informative": [*_COUNT, None],
        "min_size": _COUNT,
        "max_size": _COUNT,
        "size_sigma": _LENGTH,
        "camera_shift": _LENGTH,
        "view_shift": _LENGTH,
        "noise": _LENGTH,
        "shuffle": ["boolean"],
        "dtype": "no_validation",  # any form np.dtype takes; checked below
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def make_reid_features(
    n_samples=12936,
    n_identities=751,
    n_features=2048,
    *,
    n_cameras=6,
    n_informative=None,
    min_size=2,
    max_size=72,
    size_sigma=0.6,
    camera_shift=0.6,
    view_shift=0.6,
    noise=1.3,
    shuffle=True,
    dtype=np.float32,
    random_state=None,
):
    """Generate L2-normalised features that look like a re-ID training set.

    Each identity has a centre on the unit sphere. Every sample of identity
    ``i`` seen by camera ``c`` is

    .. math::

        x = \\operatorname{normalise}\\big(\\mu_i + s_{cam}\\, u_c
            + s_{view}\\, v_{i,c} + \\sigma\\, \\varepsilon\\big),

    with ``u_c`` a camera offset shared by all identities (the cross-camera
    shift that makes re-identification hard), ``v_{i,c}`` an offset of the
    identity under that camera (viewpoint, pose), and ``epsilon`` per-sample
    noise. Directions are drawn in an ``n_informative``-dimensional subspace
    (CNN features have a low effective rank) and embedded in ``n_features``
    dimensions by a random orthonormal map. Group sizes are long-tailed like
    Market-1501's (clipped lognormal, 2 to 72 images per identity, 17 on
    average with the defaults); each identity is seen by 2 or more cameras
    when it has enough samples.

    With the defaults the identities are clear but not trivially separated:
    the nearest neighbour of a sample shares its identity for about 86 % of
    the samples (almost always a neighbour from the same camera), and Ward's
    method recovers the 751 identities of the default set with an adjusted
    Rand index of about 0.5.

    Parameters
    ----------
    n_samples : int, default=12936
        Number of samples (Market-1501's training set: 12,936 images).
    n_identities : int, default=751
        Number of identities (classes); ``n_identities * min_size <=
        n_samples <= n_identities * max_size`` must hold.
    n_features : int, default=2048
        Dimension of the features (ResNet-50's pool5: 2048).
    n_cameras : int, default=6
        Number of cameras.
    n_informative : int, default=None
        Dimension of the subspace the directions are drawn in; None uses
        ``min(64, n_features)``. Must be ``<= n_features``. Smaller values
        give heavier overlap between identities.
    min_size, max_size : int, default=2, 72
        Bounds of the number of samples per identity.
    size_sigma : float >= 0, default=0.6
        Spread (lognormal sigma) of the group sizes; 0 gives near-equal sizes.
    camera_shift : float >= 0, default=0.6
        Length of the camera offsets ``u_c`` relative to the identity centres.
    view_shift : float >= 0, default=0.6
        Length of the identity-under-camera offsets ``v_{i,c}``.
    noise : float >= 0, default=1.3
        Expected length of the per-sample noise.
    shuffle : bool, default=True
        Shuffle the samples; otherwise they are ordered by identity.
    dtype : {np.float32, np.float64}, default=np.float32
        Dtype of ``X``.
    random_state : int, RandomState instance or None, default=None
        Seed of the local generator (the global NumPy state is not used);
        an int gives the same data on every call.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Features, each row of unit Euclidean norm.
    y : ndarray of shape (n_samples,), dtype int64
        Identity of each sample, ``0..n_identities - 1``.
    camids : ndarray of shape (n_samples,), dtype int64
        Camera of each sample, ``0..n_cameras - 1``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ecluster.datasets import make_reid_features
    >>> X, y, camids = make_reid_features(60, 5, 16, n_cameras=3, random_state=0)
    >>> X.shape, X.dtype, np.unique(y).size
    ((60, 16), dtype('float32'), 5)
    >>> np.allclose(np.linalg.norm(X, axis=1), 1.0)
    True
    >>> int(np.bincount(y).sum()), int(camids.max()) < 3
    (60, True)
    """
    n_samples, n_identities, n_features = int(n_samples), int(n_identities), int(n_features)
    n_cameras, min_size, max_size = int(n_cameras), int(min_size), int(max_size)
    n_informative = min(64, n_features) if n_informative is None else int(n_informative)
    if n_informative > n_features:
        raise ValueError(
            f"n_informative={n_informative} must be <= n_features={n_features}."
        )
    if max_size < min_size:
        raise ValueError(f"max_size={max_size} must be >= min_size={min_size}.")
    if not n_identities * min_size <= n_samples <= n_identities * max_size:
        raise ValueError(
            f"n_samples={n_samples} cannot be split into n_identities={n_identities} "
            f"groups of min_size={min_size} to max_size={max_size} samples: it must "
            f"lie in [{n_identities * min_size}, {n_identities * max_size}]."
        )
    size_sigma, camera_shift = float(size_sigma), float(camera_shift)
    view_shift, noise = float(view_shift), float(noise)
    try:
        dtype = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}.") from exc
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dtype!r}.")
    rng = check_random_state(random_state)

    sizes = _group_sizes(n_samples, n_identities, min_size, max_size, size_sigma, rng)
    y = np.repeat(np.arange(n_identities, dtype=np.int64), sizes)

    # cameras: identity i is seen by a random subset of n_cam_i >= 2 cameras
    # (fewer when it has fewer samples); each camera of the subset sees it once
    # at least, the rest of its samples fall in the subset at random
    camids = np.empty(n_samples, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for s, size in zip(starts, sizes, strict=True):
        low = min(2, n_cameras, size)
        n_cam = rng.randint(low, min(n_cameras, size) + 1)
        subset = rng.permutation(n_cameras)[:n_cam]
        cams = np.concatenate([subset, rng.choice(subset, size=size - n_cam)])
        camids[s : s + size] = rng.permutation(cams)

    r = n_informative
    centres = _unit_rows(rng, n_identities, r)
    cam_dirs = _unit_rows(rng, n_cameras, r)
    view_dirs = _unit_rows(rng, n_identities * n_cameras, r)
    Z = centres[y]
    Z += camera_shift * cam_dirs[camids]
    Z += view_shift * view_dirs[y * n_cameras + camids]
    Z += (noise / np.sqrt(r)) * rng.standard_normal((n_samples, r))

    if r < n_features:  # random orthonormal embedding R^r -> R^d
        basis, _ = np.linalg.qr(rng.standard_normal((n_features, r)))
        X = Z @ basis.T
    else:
        X = Z @ np.linalg.qr(rng.standard_normal((r, r)))[0]
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    X = X.astype(dtype, copy=False)

    if shuffle:
        order = rng.permutation(n_samples)
        X, y, camids = X[order], y[order], camids[order]
    return np.ascontiguousarray(X), y, camids
