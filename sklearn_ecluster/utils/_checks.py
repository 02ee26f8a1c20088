"""Scalar argument checks shared by functions (estimators use _parameter_constraints)."""

from numbers import Integral


def check_int(name, value, low, high=None):
    """``value`` as an int in ``[low, high]``; TypeError / ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an int {bounds}, got {value!r}.")
    return int(value)
