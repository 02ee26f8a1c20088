"""Images in any accepted form -> batches of normalised tensors on a device.

Accepted ``X`` (for both ``fit`` and ``transform``):

- a sequence (list, tuple, 1-D array) whose elements are image paths (str or
  ``os.PathLike``), PIL images, uint8 arrays of shape ``(H, W, 3)`` or
  ``(H, W)``, or float tensors ``(3, H, W)``; types may be mixed;
- a uint8 array of shape ``(N, H, W, 3)``;
- a float tensor of shape ``(N, 3, H, W)``, already normalised (ImageNet
  mean/std), taken as is apart from resizing to ``image_size``;
- a :class:`~sklearn_ecluster.datasets.ReIDImageDataset`: its image files
  (its labels are not read; pass them as ``y``).

Images (paths, PIL, arrays) go through :func:`build_transforms`; tensors skip
its ``ToTensor`` and ``Normalize`` steps and keep the others (resizing, and for
training the random crop and flip).
"""

import functools
import os
import random

import numpy as np
import torch
from PIL import Image
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler
from torchvision import transforms as T
from torchvision.transforms import functional as TF

from ..datasets import ReIDImageDataset, read_image
from ..datasets._image_files import to_rgb
from ..utils._distributed import SINGLE, ShardedBatchSampler

_EXPECTED = (
    "expected an image path (str or os.PathLike), a PIL image, a uint8 array of "
    "shape (H, W, 3) or (H, W), or a float tensor of shape (3, H, W)"
)


def _check_tensor_batch(X):
    if not X.is_floating_point() or X.ndim != 4 or X.shape[1] != 3:
        raise ValueError(
            "A tensor X must be a float tensor of shape (N, 3, H, W), already "
            f"normalised; got dtype {X.dtype} and shape {tuple(X.shape)}. Pass uint8 "
            "images as a NumPy array of shape (N, H, W, 3) instead."
        )
    if X.shape[0] == 0:
        raise ValueError("X is empty: no images to process.")
    if not bool(torch.isfinite(X).all()):
        raise ValueError("The tensor X contains NaN or infinite values; images must be finite.")
    return X


def _check_item(i, x):
    """Validate one element of a sequence X; return it in a canonical form."""
    if isinstance(x, str | os.PathLike):
        path = os.fspath(x)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"X[{i}]: no image file at {path!r}.")
        return path
    if isinstance(x, Image.Image):
        return x
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8 or not (x.ndim == 2 or (x.ndim == 3 and x.shape[2] == 3)):
            raise ValueError(
                f"X[{i}] is an array of dtype {x.dtype} and shape {x.shape}; expected "
                "a uint8 array of shape (H, W, 3) or (H, W) (use .astype(np.uint8) "
                "for 0-255 values)."
            )
        return x
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point() or x.ndim != 3 or x.shape[0] != 3:
            raise ValueError(
                f"X[{i}] is a tensor of dtype {x.dtype} and shape {tuple(x.shape)}; "
                "expected a float tensor of shape (3, H, W), already normalised."
            )
        return x
    raise TypeError(f"X[{i}] has type {type(x).__name__}; {_EXPECTED}.")


def check_images(X):
    """Validate ``X``; return a float ``(N, 3, H, W)`` tensor or a list of images.

    Raises
    ------
    TypeError
        If ``X`` or one of its elements has a type that is not accepted (the
        message names the element's index and type).
    ValueError
        If ``X`` is empty or an array / tensor has the wrong dtype or shape.
    FileNotFoundError
        If a path does not name a file.
    """
    if isinstance(X, torch.Tensor):
        return _check_tensor_batch(X)
    if isinstance(X, ReIDImageDataset):
        # its images, read and transformed by the extractor at its own image_size
        X = X.paths
    if isinstance(X, str | os.PathLike | Image.Image | bytes):
        raise TypeError(
            f"X must be a sequence of images, got a single {type(X).__name__}; wrap "
            "it in a list."
        )
    if isinstance(X, np.ndarray):
        if X.dtype == np.uint8 and X.ndim == 4 and X.shape[3] == 3:
            items = list(X)
        elif X.ndim == 1:
            items = X.tolist() if X.dtype.kind in "US" else list(X)
        else:
            raise ValueError(
                f"An array X must be uint8 of shape (N, H, W, 3) or a 1-D array of "
                f"images or paths; got dtype {X.dtype} and shape {X.shape}. Pass "
                "normalised float images as a torch tensor of shape (N, 3, H, W)."
            )
    else:
        try:
            items = list(X)
        except TypeError:
            raise TypeError(
                f"X must be a sequence of images or a tensor, got {type(X).__name__}; "
                f"{_EXPECTED}."
            ) from None
    if not items:
        raise ValueError("X is empty: no images to process.")
    return [_check_item(i, x) for i, x in enumerate(items)]


def n_images(data):
    return int(data.shape[0]) if isinstance(data, torch.Tensor) else len(data)


def tensor_steps(transform):
    """The steps of ``transform`` that apply to an already normalised tensor."""
    return T.Compose([t for t in transform.transforms
                      if not isinstance(t, T.ToTensor | T.Normalize)])


def to_pil(x):
    """An RGB PIL image of a path, a PIL image or a uint8 array."""
    if isinstance(x, str):
        return read_image(x)
    if isinstance(x, np.ndarray):
        x = Image.fromarray(x)
    return to_rgb(x)


class ImageItems(Dataset):
    """A map-style dataset over checked images: ``image`` or ``(image, label)``."""

    def __init__(self, items, transform, labels=None):
        self.items = items
        self.transform = transform
        self.tensor_transform = tensor_steps(transform)
        self.labels = labels

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        x = self.items[index]
        if isinstance(x, torch.Tensor):
            image = self.tensor_transform(x.detach().to("cpu", torch.float32))
        else:
            image = self.transform(to_pil(x))
        if self.labels is None:
            return image
        return image, self.labels[index]


def eval_batches(data, transform, image_size, *, batch_size, device, num_workers=0):
    """Yield batches of normalised images on ``device``, in order.

    A tensor ``X`` is sliced (and resized on its own device when needed);
    other inputs are read and transformed by a :class:`~torch.utils.data.DataLoader`
    (pinned memory and non-blocking copies on CUDA).
    """
    if isinstance(data, torch.Tensor):
        size = list(image_size)
        for start in range(0, data.shape[0], batch_size):
            x = data[start:start + batch_size].to(device, torch.float32, non_blocking=True)
            if list(x.shape[2:]) != size:
                x = TF.resize(x, size, antialias=True)
            yield x
        return
    loader = DataLoader(
        ImageItems(data, transform), batch_size=batch_size, shuffle=False,
        num_workers=num_workers, pin_memory=device.type == "cuda",
        # a private generator: DataLoader otherwise draws a seed from the global RNG
        generator=torch.Generator(),
    )
    for x in loader:
        yield x.to(device, non_blocking=True)


def _offset_worker_seed(rank, worker_id):
    """Worker seeds of rank ``rank``: DataLoader's, moved by the rank (data-parallel)."""
    seed = (torch.initial_seed() + rank * 1_000_003) % 2**63
    torch.manual_seed(seed)
    random.seed(seed)


def train_loader(data, labels, transform, *, batch_size, generator, device, num_workers=0,
                 batch_sampler=None, world=SINGLE):
    """A shuffling DataLoader of ``(augmented image, label)`` for one fit.

    The order and the workers' seeds come from ``generator``: every epoch,
    DataLoader draws a base seed from it and seeds ``torch``, ``random`` and
    NumPy in worker ``i`` from ``base + i``, so a seeded ``generator`` makes the
    augmentations repeat with any ``num_workers``. A final batch of a single
    image is dropped: BatchNorm cannot train on one sample.
    A ``batch_sampler`` (the P x K sampler) replaces the shuffling.

    Data-parallel (``world.size > 1``): every rank builds the same global
    batches from the same ``generator`` and keeps its slice of each
    (:class:`~sklearn_ecluster.utils._distributed.ShardedBatchSampler`); the
    workers of rank ``r`` are seeded apart from those of the other ranks.
    """
    if isinstance(data, torch.Tensor):
        data = list(data.detach().cpu())
    n = len(data)
    items = ImageItems(data, transform, labels=torch.as_tensor(labels, dtype=torch.long))
    pin = device.type == "cuda"
    if world.size > 1:
        if batch_sampler is None:  # what DataLoader(shuffle=True) builds, drawn alike
            batch_sampler = BatchSampler(RandomSampler(items, generator=generator),
                                         batch_size, drop_last=n % batch_size == 1)
        init = functools.partial(_offset_worker_seed, world.rank) if num_workers else None
        return DataLoader(items, batch_sampler=ShardedBatchSampler(batch_sampler, world),
                          generator=generator, num_workers=num_workers, pin_memory=pin,
                          worker_init_fn=init)
    if batch_sampler is not None:
        return DataLoader(items, batch_sampler=batch_sampler, generator=generator,
                          num_workers=num_workers, pin_memory=pin)
    return DataLoader(items, batch_size=batch_size, shuffle=True, generator=generator,
                      num_workers=num_workers, pin_memory=pin,
                      drop_last=n % batch_size == 1)
