"""Image transforms of the training recipe (SPEC 7).

Training: resize to ``image_size``, pad and randomly crop back (small shifts),
random horizontal flip, ImageNet mean/std. Test: resize and normalise only.
Shared by the torch ``Dataset`` of :mod:`sklearn_ecluster.datasets` and by
:class:`~sklearn_ecluster.feature_extraction.ReIDFeatureExtractor`.
"""

from numbers import Integral, Real

from torchvision import transforms as T

from ..utils._sklearn import Interval, validate_params
from ..utils._validation import check_int_pair

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@validate_params(
    {
        "image_size": [tuple, list],
        "train": ["boolean"],
        "pad": [Interval(Integral, 0, None, closed="left")],
        "flip_prob": [Interval(Real, 0, 1, closed="both")],
        "erasing_prob": [Interval(Real, 0, 1, closed="both")],
    },
    prefer_skip_nested_validation=True,
)
def build_transforms(image_size=(256, 128), train=False, *, pad=10, flip_prob=0.5,
                     erasing_prob=0.0):
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
    erasing_prob : float, default=0.0
        Probability of random erasing when ``train`` (Zhong et al. 2020, as in
        Cluster-Contrast and torchreid: a rectangle of 2-40 % of the image,
        aspect ratio 0.3-3.3, set to the ImageNet mean, i.e. 0 after the
        normalisation).

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
    h, w = check_int_pair(image_size, "image_size")
    steps = [T.Resize((h, w))]
    if train:
        p = min(pad, max(1, min(h, w) // 8))
        steps += [
            T.Pad(p, padding_mode="edge"),
            T.RandomCrop((h, w)),
            T.RandomHorizontalFlip(flip_prob),
        ]
    steps += [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train and erasing_prob > 0:
        steps.append(T.RandomErasing(erasing_prob, scale=(0.02, 0.4), ratio=(0.3, 3.3),
                                     value=0))
    return T.Compose(steps)
