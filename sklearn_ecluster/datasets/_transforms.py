"""Image transforms of the training recipe (SPEC 7).

Training: resize to ``image_size``, pad and randomly crop back (small shifts),
random horizontal flip, ImageNet mean/std. Test: resize and normalise only.
Shared by the torch ``Dataset`` of :mod:`sklearn_ecluster.datasets` and by
:class:`~sklearn_ecluster.feature_extraction.ReIDFeatureExtractor`.
"""

from torchvision import transforms as T

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_size(image_size):
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or not all(isinstance(s, int) and s > 0 for s in image_size)
    ):
        raise ValueError(
            f"image_size={image_size!r} must be a (height, width) pair of positive ints."
        )
    return tuple(image_size)


def build_transforms(image_size=(256, 128), train=False, *, pad=10, flip_prob=0.5):
    """Return the torchvision transform that turns a PIL image into a tensor.

    Parameters
    ----------
    image_size : tuple of (int, int), default=(256, 128)
        Output (height, width).
    train : bool, default=False
        Whether to add the random augmentation (pad + random crop, flip).
    pad : int, default=10
        Padding in pixels before the random crop (scaled down for tiny images).
    flip_prob : float, default=0.5
        Probability of a horizontal flip when ``train``.

    Returns
    -------
    transform : torchvision.transforms.Compose

    Examples
    --------
    >>> from PIL import Image
    >>> from sklearn_ecluster.datasets import build_transforms
    >>> t = build_transforms((32, 16))
    >>> t(Image.new("RGB", (20, 40))).shape
    torch.Size([3, 32, 16])
    """
    h, w = _check_size(image_size)
    steps = [T.Resize((h, w))]
    if train:
        p = min(pad, max(1, min(h, w) // 8))
        steps += [
            T.Pad(p, padding_mode="edge"),
            T.RandomCrop((h, w)),
            T.RandomHorizontalFlip(flip_prob),
        ]
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return T.Compose(steps)
