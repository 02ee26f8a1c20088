"""Plots of the self-training loop (matplotlib, imported lazily)."""

from ._history import plot_history
from ._montage import plot_cluster_montage

__all__ = ["plot_cluster_montage", "plot_history"]
