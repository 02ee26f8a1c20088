"""Shared helpers: device resolution, blocked torch kernels, validation, logging,
data-parallel runs (torch.distributed)."""

from ._device import get_device, resolve_device, to_numpy, to_tensor
from ._distances import pairwise_distances, self_distances
from ._distributed import World, get_world, init_distributed, launched_by_torchrun
from ._memory import available_memory, check_memory, rows_per_block

__all__ = [
    "World",
    "available_memory",
    "check_memory",
    "get_device",
    "get_world",
    "init_distributed",
    "launched_by_torchrun",
    "pairwise_distances",
    "resolve_device",
    "rows_per_block",
    "self_distances",
    "to_numpy",
    "to_tensor",
]
