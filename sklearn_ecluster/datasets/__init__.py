"""Re-ID dataset loaders, a synthetic person dataset and image transforms."""

from ._features import make_reid_features
from ._image_dataset import ReIDImageDataset, read_image
from ._loaders import (
    load_dukemtmc_reid,
    load_market1501,
    load_msmt17,
    load_prid450s,
    load_reid_folder,
)
from ._synthetic import make_synthetic_reid
from ._transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ReIDImageDataset",
    "build_transforms",
    "load_dukemtmc_reid",
    "load_market1501",
    "load_msmt17",
    "load_prid450s",
    "load_reid_folder",
    "make_reid_features",
    "make_synthetic_reid",
    "read_image",
]
