"""Person images to features: :class:`ReIDFeatureExtractor` (backbone, head, fine-tuning)."""

from ._convert import convert_tonylins_mobilenet_v2
from ._extractor import ReIDFeatureExtractor
from ._memory_loss import init_memory, memory_loss, update_memory
from ._network import EmbeddingHead, ReIDNetwork, build_network

__all__ = [
    "EmbeddingHead",
    "ReIDFeatureExtractor",
    "ReIDNetwork",
    "build_network",
    "convert_tonylins_mobilenet_v2",
    "init_memory",
    "memory_loss",
    "update_memory",
]
