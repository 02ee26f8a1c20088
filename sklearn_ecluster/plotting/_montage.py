"""What the pseudo labels contain: clusters as image montages, as the paper's Figure 4."""

import os
from numbers import Integral

import numpy as np
from sklearn.utils import check_random_state

from ..utils._sklearn import HasMethods, Interval, StrOptions, validate_params
from ..utils._validation import check_int_pair, check_label_vector

# frame colours: a member of the cluster's majority person, of another person,
# and of a cluster drawn without true ids
MAJORITY_COLOR = "tab:green"
OTHER_COLOR = "tab:red"
NEUTRAL_COLOR = "0.75"
_GAP = 4  # pixels between thumbnails, at the thumbnail size


def _check_images(images):
    """``images`` checked without reading a file: a uint8 array or a sequence."""
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise TypeError(f"images must be a uint8 array (N, H, W, 3) or a list of "
                            f"image paths, got an array of dtype {images.dtype}.")
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be a uint8 array of shape (N, H, W, 3), got "
                             f"shape {images.shape}.")
        return images
    from PIL import Image

    for i, item in enumerate(images):
        if isinstance(item, str | os.PathLike | Image.Image):
            continue
        if isinstance(item, np.ndarray) and item.dtype == np.uint8 and item.ndim == 3 \
                and item.shape[-1] == 3:
            continue
        raise TypeError(f"images must be image paths (str or path-like), PIL images "
                        f"or uint8 arrays (H, W, 3); item {i} is {item!r:.80}.")
    return list(images)


def _thumbnail(image, size):
    """One image as a uint8 array of ``size`` (height, width); ``size`` None keeps it."""
    from PIL import Image

    from ..datasets import read_image

    if isinstance(image, str | os.PathLike):
        image = read_image(image)
    elif isinstance(image, Image.Image):
        image = image.convert("RGB")
    else:
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if size is not None and image.size != (size[1], size[0]):
        image = image.resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def _chosen_clusters(labels, n_clusters, order, random_state):
    """Ids of the clusters to draw (outliers -1 never), in drawing order, and sizes."""
    ids, sizes = np.unique(labels[labels >= 0], return_counts=True)
    if order == "largest":
        ranked = np.argsort(-sizes, kind="stable")  # ties: smaller cluster id first
    else:
        ranked = check_random_state(random_state).permutation(len(ids))
    ranked = ranked[:n_clusters]
    return ids[ranked], sizes[ranked]


@validate_params(
    {
        "images": [list, tuple, np.ndarray],
        "labels": ["array-like"],
        "y": ["array-like", None],
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "max_members": [Interval(Integral, 1, None, closed="left")],
        "order": [StrOptions({"largest", "random"})],
        "random_state": ["random_state"],
        "image_size": [tuple, list, None],
        "fig": [HasMethods(["subplots", "savefig"]), None],
    },
    prefer_skip_nested_validation=True,
)
def plot_cluster_montage(images, labels, y=None, *, n_clusters=6, max_members=8,
                         order="largest", random_state=None, image_size=None, fig=None):
    """Draw a few clusters of pseudo labels as rows of image thumbnails.

    The package's answer to the paper's Figure 4: what the pseudo labels of
    a round of :class:`~sklearn_ecluster.self_training.SelfTrainingReID`
    contain. One row per cluster; with the true person ids ``y``, each
    cluster's majority person counts as its identity, and every member is
    framed green (that person) or red (another person).

    Parameters
    ----------
    images : list of str or path-like, or uint8 array of shape (n_images, H, W, 3)
        The images that were clustered: file paths (read with
        :func:`~sklearn_ecluster.datasets.read_image`, only those drawn),
        or the images themselves (a list may also hold PIL images or uint8
        arrays of shape ``(H, W, 3)``).
    labels : array-like of int, shape (n_images,)
        The pseudo labels (``labels_`` of a clusterer, or the labels a round
        trained on); ``-1`` marks outliers, which are never drawn as a cluster.
    y : array-like of shape (n_images,), default=None
        True person ids, to frame the members and give each cluster's purity
        (the share of its majority person; ties go to the smaller id).
        None: neutral grey frames, no purity.
    n_clusters : int, default=6
        At most this many clusters (rows); fewer when the labels have fewer.
    max_members : int, default=8
        At most this many members of a cluster are drawn: the first ones in
        the order of ``images``. The size and purity in the row's title are
        those of the whole cluster.
    order : {"largest", "random"}, default="largest"
        Which clusters, top to bottom: the largest first (ties: the smaller
        cluster id first), or a random choice.
    random_state : int, RandomState instance or None, default=None
        Seeds the choice of ``order="random"``; unused otherwise.
    image_size : (int, int), default=None
        ``(height, width)`` of the thumbnails; None: the size of the first
        image drawn (every image is resized to it).
    fig : matplotlib Figure, default=None
        An empty figure to draw on; None creates one, sized to the montage.

    Returns
    -------
    fig : matplotlib Figure
        One Axes per cluster, its title ``"cluster <id>: <size> images"``
        (with ``y``: ``", purity <p> (person <id>)"``). Each drawn member is
        one image and one frame, a :class:`~matplotlib.patches.Rectangle`
        whose ``gid`` is ``"image <index>"`` (its index in ``images``).

    See Also
    --------
    sklearn_ecluster.self_training.pseudo_label_scores : pair precision and recall of the labels.
    plot_history : the scores per round.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn_ecluster.plotting import plot_cluster_montage
    >>> images = np.random.default_rng(0).integers(0, 256, size=(7, 16, 8, 3),
    ...                                              dtype=np.uint8)
    >>> labels = [0, 0, 0, 1, 1, -1, 2]
    >>> persons = [5, 5, 6, 7, 7, 8, 9]
    >>> fig = plot_cluster_montage(images, labels, persons, n_clusters=2)
    >>> for ax in fig.axes:
    ...     print(ax.get_title())
    cluster 0: 3 images, purity 0.67 (person 5)
    cluster 1: 2 images, purity 1.00 (person 7)
    >>> [patch.get_gid() for patch in fig.axes[0].patches]
    ['image 0', 'image 1', 'image 2']
    """
    images = _check_images(images)
    n = len(images)
    labels = check_label_vector(labels, "labels", n, what="images")
    if y is not None:
        y = check_label_vector(y, "y", n, what="images", integer=False)
    if image_size is not None:
        image_size = check_int_pair(image_size, "image_size")
    if (labels < -1).any():
        raise ValueError(f"labels must be cluster ids >= 0, or -1 for outliers; got "
                         f"{int(labels.min())}.")
    if not (labels >= 0).any():
        raise ValueError(f"labels has no cluster to draw: all {n} images are outliers "
                         "(-1)." if n else "images and labels are empty.")
    try:
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle
    except ImportError as exc:  # an optional dependency
        raise ImportError(
            "plot_cluster_montage needs matplotlib: pip install 'sklearn-ecluster[plots]'"
        ) from exc

    clusters, sizes = _chosen_clusters(labels, n_clusters, order, random_state)
    rows = [np.flatnonzero(labels == c)[:max_members] for c in clusters]
    if image_size is None:
        image_size = _thumbnail(images[rows[0][0]], None).shape[:2]
    h, w = image_size
    n_slots = max(len(members) for members in rows)
    width = n_slots * w + (n_slots - 1) * _GAP
    if fig is None:
        row_inches = 1.6
        fig = plt.figure(figsize=(max(3.0, row_inches * width / h + 0.4),
                                  (row_inches + 0.35) * len(rows)),
                         layout="constrained")
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, cluster, size, members in zip(axes, clusters, sizes, rows):
        canvas = np.full((h, width, 3), 255, dtype=np.uint8)
        title = f"cluster {cluster}: {size} images"
        colors = [NEUTRAL_COLOR] * len(members)
        if y is not None:
            persons, counts = np.unique(y[labels == cluster], return_counts=True)
            major = persons[np.argmax(counts)]  # first maximum: the smaller id
            title += f", purity {counts.max() / size:.2f} (person {major})"
            colors = [MAJORITY_COLOR if y[i] == major else OTHER_COLOR for i in members]
        for slot, index in enumerate(members):
            x0 = slot * (w + _GAP)
            canvas[:, x0:x0 + w] = _thumbnail(images[index], image_size)
        ax.imshow(canvas, interpolation="nearest")
        for slot, (index, color) in enumerate(zip(members, colors)):
            # inside the thumbnail, one pixel in (pixel edges are at -0.5)
            frame = Rectangle((slot * (w + _GAP) + 0.5, 0.5), w - 2, h - 2, fill=False,
                              edgecolor=color, linewidth=1 if y is None else 2.5)
            frame.set_gid(f"image {int(index)}")
            ax.add_patch(frame)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    return fig
