"""A torch ``Dataset`` over person images: :class:`ReIDImageDataset`.

Images are read lazily, one per ``__getitem__``, as RGB PIL images and passed
through a transform (:func:`build_transforms`). Items carry their index so
that a training loop can update per-sample state (pseudo labels, memories)
whatever order the sampler draws.
"""

import os
from operator import index as as_index

import numpy as np
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import functional as F

from ..utils._sklearn import StrOptions, validate_params
from ..utils._validation import check_label_vector
from ._image_files import to_rgb
from ._transforms import build_transforms

__all__ = ["ReIDImageDataset", "read_image"]


def read_image(path):
    """Read an image file as an RGB PIL image.

    Parameters
    ----------
    path : str or path-like
        The image file.

    Returns
    -------
    image : PIL.Image.Image
        The decoded image in mode ``"RGB"``; the file is closed. Grayscale,
        palette, RGBA (alpha dropped), CMYK and 16-bit images (high byte kept)
        are converted.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    OSError
        If the file cannot be decoded; the message names the file.

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> from sklearn_ecluster.datasets import read_image
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "0001_c1s1_000001_00.png")
    ...     Image.new("L", (8, 16)).save(path)
    ...     image = read_image(path)
    >>> image.mode, image.size
    ('RGB', (8, 16))
    """
    # not validate_params: it would cost 2/3 of the decoding time of a
    # 128 x 64 JPEG, and this runs once per image of every epoch
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or path-like, got {path!r}.")
    try:
        with Image.open(path) as image:
            # a copy either way, so the image outlives the file
            return image.convert("RGB") if image.mode == "RGB" else to_rgb(image)
    except FileNotFoundError:
        raise  # already names the file
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ...
        raise OSError(
            f"Cannot read image file {os.fspath(path)!r} ({type(exc).__name__}: {exc})."
        ) from exc


class ReIDImageDataset(Dataset):
    """Person images as a torch map-style dataset of ``(image, label, index)``.

    Read more in the :ref:`User Guide <datasets>`.

    Parameters
    ----------
    paths : sequence of str or path-like
        Image files, read lazily (one per item) as RGB.
    labels : array-like of int of shape (n_images,), default=None
        Person ids or pseudo labels. ``None`` gives the label -1 to every
        image (unlabelled data).
    camids : array-like of int of shape (n_images,), default=None
        Camera ids, kept for samplers and evaluation; not part of the items.
    transform : callable, default=None
        Turns a PIL image into a tensor, e.g. :func:`build_transforms`.
        ``None`` converts to a float tensor in ``[0, 1]`` at the image's own
        size (no resizing, no normalisation).

    Attributes
    ----------
    paths : list of str
        The image files.
    labels : ndarray of shape (n_images,), dtype int64
        The labels (-1 when none were given).
    camids : ndarray of shape (n_images,), dtype int64, or None
        The camera ids.

    See Also
    --------
    build_transforms : The transforms of the training recipe.
    load_market1501 : A loader whose parts feed :meth:`from_bunch`.

    Notes
    -----
    An image that cannot be read raises :class:`OSError` naming the file; the
    loaders' ``on_corrupt="raise"`` finds such files before training starts.
    The dataset pickles, so it works with ``DataLoader(num_workers > 0)``.

    Examples
    --------
    >>> import os, tempfile
    >>> from PIL import Image
    >>> from torch.utils.data import DataLoader
    >>> from sklearn_ecluster.datasets import ReIDImageDataset, build_transforms
    >>> tmp = tempfile.TemporaryDirectory()
    >>> paths = [os.path.join(tmp.name, f"{i:04d}_c1s1_000001_00.png") for i in range(4)]
    >>> for path in paths:
    ...     Image.new("RGB", (64, 128)).save(path)
    >>> dataset = ReIDImageDataset(paths, labels=[3, 3, 5, 5],
    ...                            transform=build_transforms((32, 16)))
    >>> image, label, index = dataset[2]
    >>> image.shape, label, index
    (torch.Size([3, 32, 16]), 5, 2)
    >>> images, labels, indices = next(iter(DataLoader(dataset, batch_size=4)))
    >>> images.shape, labels.tolist()
    (torch.Size([4, 3, 32, 16]), [3, 3, 5, 5])
    >>> tmp.cleanup()
    """

    def __init__(self, paths, labels=None, camids=None, transform=None):
        if isinstance(paths, str | os.PathLike):
            raise TypeError("paths must be a sequence of image paths, not one path.")
        self.paths = [os.fspath(p) for p in paths]
        n = len(self.paths)
        self.labels = (np.full(n, -1, dtype=np.int64) if labels is None
                       else check_label_vector(labels, "labels", n, what="paths"))
        self.camids = (None if camids is None
                       else check_label_vector(camids, "camids", n, what="paths"))
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {transform!r}.")
        self.transform = transform

    @classmethod
    @validate_params(
        {
            "part": [dict],
            "image_size": [tuple, list],
            "train": ["boolean"],
            "labels": [StrOptions({"pids"}), "array-like", None],
        },
        prefer_skip_nested_validation=True,
    )
    def from_bunch(cls, part, *, image_size=(256, 128), train=False, labels="pids"):
        """Build the dataset of one part of a loader's Bunch.

        Parameters
        ----------
        part : Bunch
            A part of a ``load_*`` result (``data.train``, ``data.query``,
            ``data.gallery``), with ``paths``, ``pids`` and ``camids``.
        image_size : tuple of (int, int), default=(256, 128)
            Output (height, width), passed to :func:`build_transforms`.
        train : bool, default=False
            Whether to use the training augmentation (random crop, flip).
        labels : "pids", array-like of int or None, default="pids"
            ``"pids"`` labels each image with its person id; an array (such
            as pseudo labels) replaces them; ``None`` labels all -1.

        Returns
        -------
        dataset : ReIDImageDataset

        Examples
        --------
        >>> import os, tempfile
        >>> from PIL import Image
        >>> from sklearn.utils import Bunch
        >>> from sklearn_ecluster.datasets import ReIDImageDataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = os.path.join(tmp.name, "0002_c1s1_000451_03.jpg")
        >>> Image.new("RGB", (64, 128)).save(path)
        >>> part = Bunch(paths=[path], pids=[2], camids=[0])
        >>> image, label, index = ReIDImageDataset.from_bunch(
        ...     part, image_size=(64, 32), train=True)[0]
        >>> image.shape, label
        (torch.Size([3, 64, 32]), 2)
        >>> tmp.cleanup()
        """
        if isinstance(labels, str):
            labels = part.pids
        return cls(
            part.paths,
            labels=labels,
            camids=part.camids,
            transform=build_transforms(image_size, train=train),
        )

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        index = as_index(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images.")
        index %= len(self)
        image = read_image(self.paths[index])
        image = F.to_tensor(image) if self.transform is None else self.transform(image)
        return image, int(self.labels[index]), index

    def __repr__(self):
        n_labelled = int((self.labels >= 0).sum())
        return (
            f"{type(self).__name__}(n_images={len(self)}, n_labelled={n_labelled}, "
            f"transform={'None' if self.transform is None else 'set'})"
        )
