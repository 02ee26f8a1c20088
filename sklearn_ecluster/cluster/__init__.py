"""Energy clustering (E-cluster) and its baselines BUC and DBC."""

from ._agglomerative import EnergyAgglomerative
from ._knn_graph import knn_graph
from ._linkage import LinkageTree, energy_linkage_tree
from ._presets import METHOD_PRESETS, make_clusterer
from ._tree import linkage_matrix

__all__ = [
    "METHOD_PRESETS",
    "EnergyAgglomerative",
    "LinkageTree",
    "energy_linkage_tree",
    "knn_graph",
    "linkage_matrix",
    "make_clusterer",
]
