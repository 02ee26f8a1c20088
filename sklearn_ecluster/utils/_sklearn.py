"""The one module that imports scikit-learn's private helpers.

scikit-learn may rename them; keeping every such import here means a rename
touches one file.

A failed constraint (``_parameter_constraints`` of an estimator,
``validate_params`` of a function) raises ``InvalidParameterError``, a
subclass of both ``TypeError`` and ``ValueError``: catching either works
whatever the mistake. The checks constraints cannot express are in
:mod:`sklearn_ecluster.utils._validation`.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import (
    HasMethods,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_params,
)
from sklearn.utils._param_validation import Interval as _Interval
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "HasMethods",
    "Interval",
    "InvalidParameterError",
    "Options",
    "StrOptions",
    "_fit_context",
    "check_is_fitted",
    "validate_data",
    "validate_params",
]


class Interval(_Interval):
    """scikit-learn's ``Interval``, except that no interval holds a ``bool``.

    ``bool`` is a subclass of ``int``, so scikit-learn takes ``n_rounds=True``
    for ``n_rounds=1``; here a flag where a number is wanted is refused as a
    wrong type.
    """

    def is_satisfied_by(self, val):
        if isinstance(val, bool):
            return False
        return super().is_satisfied_by(val)
