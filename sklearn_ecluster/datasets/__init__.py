"""Re-ID dataset loaders, a synthetic person dataset and image transforms."""

from ._transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "build_transforms"]
