"""Person images to features: :class:`ReIDFeatureExtractor` (backbone, head, fine-tuning)."""

from ._cluster_memory import (
    cluster_contrast_loss,
    init_cluster_memory,
    update_cluster_memory,
)
from ._convert import convert_tonylins_mobilenet_v2
from ._extractor import ReIDFeatureExtractor
from ._memory_loss import init_memory, memory_loss, update_memory
from ._network import EmbeddingHead, ReIDNetwork, build_network

__all__ = [
    "EmbeddingHead",
    "ReIDFeatureExtractor",
    "ReIDNetwork",
    "build_network",
    "cluster_contrast_loss",
    "convert_tonylins_mobilenet_v2",
    "init_cluster_memory",
    "init_memory",
    "memory_loss",
    "update_cluster_memory",
    "update_memory",
]
