"""Plots of the self-training history (matplotlib, imported lazily)."""

from ._history import plot_history

__all__ = ["plot_history"]
