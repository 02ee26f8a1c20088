"""Per-camera feature centring: the camera ids, which every re-ID set has, without labels.

Pretrained features of two cameras with different colour and light often
group by camera before they group by person. Subtracting each camera's mean
feature (estimated on unlabelled images of that camera) removes that shift;
the centred features are L2-normalised again, so that they stay unit vectors
as the loop's features are.
"""

import numpy as np

from ..utils._sklearn import validate_params


@validate_params(
    {"features": ["array-like"], "camids": ["array-like"], "normalize": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def center_per_camera(features, camids, *, normalize=True):
    """Subtract each camera's mean feature, then L2-normalise.

    The means are those of the rows of ``features`` from each camera (no
    labels are used).

    Parameters
    ----------
    features : array-like of shape (n_samples, n_features)
    camids : array-like of shape (n_samples,)
        Camera ids, any values.
    normalize : bool, default=True
        L2-normalise the centred rows (a zero row stays zero).

    Returns
    -------
    centred : ndarray of shape (n_samples, n_features), float32

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_ecluster.self_training import center_per_camera
    >>> X = np.array([[1.0, 2.0], [3.0, 2.0], [0.0, 5.0], [0.0, 7.0]])
    >>> center_per_camera(X, [0, 0, 1, 1], normalize=False)
    array([[-1.,  0.],
           [ 1.,  0.],
           [ 0., -1.],
           [ 0.,  1.]], dtype=float32)
    """
    X = np.asarray(features, dtype=np.float32)
    camids = np.asarray(camids)
    if X.ndim != 2 or X.shape[0] == 0 or camids.shape != (X.shape[0],):
        raise ValueError(
            f"features of shape {X.shape} and camids of shape {camids.shape}: one camera "
            "id per row (and at least one row) is needed."
        )
    _, inverse = np.unique(camids, return_inverse=True)
    inverse = inverse.ravel()
    sums = np.zeros((inverse.max() + 1, X.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, X)
    means = (sums / np.bincount(inverse)[:, None]).astype(np.float32)
    out = X - means[inverse]
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.where(norms > 0, norms, 1.0)
    return out
