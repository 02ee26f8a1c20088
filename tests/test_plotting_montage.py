"""plot_cluster_montage: rows, outliers, frames and purity on images whose answer is known."""

import re
import sys
from collections import Counter

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

from sklearn_ecluster.plotting import plot_cluster_montage  # noqa: E402

RED, GREEN = to_rgba("tab:red"), to_rgba("tab:green")
H, W = 12, 6

# 5 real clusters of sizes 5, 4, 3, 2, 1 and 6 outliers (more than any cluster)
LABELS = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, -1, -1, -1, -1, -1, -1])
# true persons: cluster 0 is 3 x person 7 + 2 others, cluster 1 pure, cluster 2 mixed
PERSONS = np.array([7, 8, 7, 9, 7, 3, 3, 3, 3, 1, 2, 2, 5, 6, 4, 0, 0, 0, 0, 0, 0])


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _images(n, seed=0):
    """Each image one solid colour, so a thumbnail shows which image it is."""
    colours = np.random.default_rng(seed).integers(0, 256, size=(n, 3), dtype=np.uint8)
    return np.broadcast_to(colours[:, None, None, :], (n, H, W, 3)).copy()


def _drawn(fig):
    """Image indices drawn, per row, from the frames' gids."""
    return [[int(p.get_gid().split()[1]) for p in ax.patches] for ax in fig.axes]


def _cluster_of(ax):
    return int(re.match(r"cluster (\d+): (\d+) images", ax.get_title()).group(1))


@pytest.mark.parametrize("n_clusters, expected", [(1, 1), (3, 3), (5, 5), (50, 5)])
def test_one_row_per_cluster_up_to_the_real_clusters(n_clusters, expected):
    fig = plot_cluster_montage(_images(len(LABELS)), LABELS, n_clusters=n_clusters)
    assert len(fig.axes) == expected
    # largest first; every row's frames are its cluster's members
    assert [_cluster_of(ax) for ax in fig.axes] == [0, 1, 2, 3, 4][:expected]
    for ax, members in zip(fig.axes, _drawn(fig)):
        assert members == np.flatnonzero(LABELS == _cluster_of(ax)).tolist()


@pytest.mark.parametrize("y", [None, PERSONS])
@pytest.mark.parametrize("order", ["largest", "random"])
def test_outliers_are_never_drawn(y, order):
    fig = plot_cluster_montage(_images(len(LABELS)), LABELS, y, n_clusters=10,
                               order=order, random_state=0)
    drawn = [i for row in _drawn(fig) for i in row]
    assert len(fig.axes) == 5 and len(drawn) == 15
    assert not set(drawn) & set(np.flatnonzero(LABELS == -1))
    assert not any("cluster -1" in ax.get_title() for ax in fig.axes)


def test_all_outliers_is_refused():
    with pytest.raises(ValueError, match="labels has no cluster"):
        plot_cluster_montage(_images(3), [-1, -1, -1])


@pytest.mark.parametrize("seed", range(4))
def test_frames_are_red_exactly_for_members_of_another_person(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=30)
    persons = rng.integers(0, 3, size=30)
    fig = plot_cluster_montage(_images(30, seed), labels, persons, n_clusters=4,
                               max_members=30)
    for ax in fig.axes:
        cluster = _cluster_of(ax)
        counts = Counter(persons[labels == cluster].tolist())
        top = max(counts.values())
        major = min(p for p, c in counts.items() if c == top)  # ties: the smaller id
        for patch in ax.patches:
            i = int(patch.get_gid().split()[1])
            assert labels[i] == cluster
            assert patch.get_edgecolor() == (RED if persons[i] != major else GREEN)
        n_red = sum(patch.get_edgecolor() == RED for patch in ax.patches)
        assert n_red == sum(c for p, c in counts.items() if p != major)


def test_purity_in_the_title_is_the_majority_share():
    fig = plot_cluster_montage(_images(len(LABELS)), LABELS, PERSONS, n_clusters=3)
    titles = [ax.get_title() for ax in fig.axes]
    # by hand: cluster 0 has 3 of 5 of person 7, cluster 1 4 of 4 of person 3,
    # cluster 2 2 of 3 of person 2
    assert titles == ["cluster 0: 5 images, purity 0.60 (person 7)",
                      "cluster 1: 4 images, purity 1.00 (person 3)",
                      "cluster 2: 3 images, purity 0.67 (person 2)"]
    colours = [p.get_edgecolor() for p in fig.axes[0].patches]
    assert colours == [GREEN, RED, GREEN, RED, GREEN]


def test_without_y_the_frames_are_neutral_and_no_purity():
    fig = plot_cluster_montage(_images(len(LABELS)), LABELS, n_clusters=2)
    assert [ax.get_title() for ax in fig.axes] == ["cluster 0: 5 images",
                                                  "cluster 1: 4 images"]
    assert {p.get_edgecolor() for ax in fig.axes for p in ax.patches} == {to_rgba("0.75")}


def test_max_members_draws_the_first_members_the_title_counts_all():
    fig = plot_cluster_montage(_images(len(LABELS)), LABELS, PERSONS, n_clusters=2,
                               max_members=2)
    assert _drawn(fig) == [[0, 1], [5, 6]]
    assert fig.axes[0].get_title().startswith("cluster 0: 5 images, purity 0.60")


def test_thumbnails_are_the_images():
    images = _images(len(LABELS))
    fig = plot_cluster_montage(images, LABELS, n_clusters=1)
    canvas = np.asarray(fig.axes[0].get_images()[0].get_array())
    for slot in range(5):  # cluster 0: images 0..4, a gap of white between them
        x0 = slot * (W + 4)
        np.testing.assert_array_equal(canvas[:, x0:x0 + W], images[slot])


def test_random_order_is_seeded():
    def rows(seed):
        fig = plot_cluster_montage(_images(len(LABELS)), LABELS, n_clusters=3,
                                   order="random", random_state=seed)
        return [_cluster_of(ax) for ax in fig.axes]

    assert rows(0) == rows(0)
    assert len(set(rows(0))) == 3 and set(rows(0)) <= {0, 1, 2, 3, 4}
    assert len({tuple(rows(seed)) for seed in range(10)}) > 1


def test_image_paths_are_read_and_resized(tmp_path):
    from PIL import Image

    images = _images(6)
    paths = []
    for i, image in enumerate(images):
        path = tmp_path / f"{i:04d}_c1s1_000001_00.png"
        # different sizes on disk: all drawn at image_size
        Image.fromarray(image).resize((W * (1 + i % 2), H * (1 + i % 2))).save(path)
        paths.append(str(path))
    labels = [0, 0, 1, 1, 1, -1]
    fig = plot_cluster_montage(paths, labels, [1, 1, 2, 3, 2, 4], image_size=(H, W))
    assert _drawn(fig) == [[2, 3, 4], [0, 1]]
    canvas = np.asarray(fig.axes[0].get_images()[0].get_array())
    assert canvas.shape == (H, 3 * W + 2 * 4, 3)
    np.testing.assert_array_equal(canvas[:, :W], images[2])
    # and the same figure from the arrays
    fig2 = plot_cluster_montage(images, labels, image_size=(H, W))
    np.testing.assert_array_equal(fig2.axes[0].get_images()[0].get_array(), canvas)


def test_draws_on_a_given_figure():
    fig = plt.figure()
    assert plot_cluster_montage(_images(len(LABELS)), LABELS, n_clusters=2, fig=fig) is fig
    assert len(fig.axes) == 2


@pytest.mark.parametrize("kwargs, error, match", [
    ({"images": "images/"}, TypeError, "images"),
    ({"images": np.zeros((21, H, W, 3))}, TypeError, "images must be a uint8 array"),
    ({"images": np.zeros((21, H, W), np.uint8)}, ValueError, r"images.*shape \(21, 12, 6\)"),
    ({"images": [1] * 21}, TypeError, "images must be image paths.*item 0"),
    ({"labels": LABELS[:-1]}, ValueError, "labels has 20 entries but images has 21"),
    ({"labels": LABELS.astype(float)}, TypeError, "labels must hold integers"),
    ({"labels": np.where(LABELS < 0, -2, LABELS)}, ValueError, "labels.*-2"),
    ({"y": PERSONS[:3]}, ValueError, "y has 3 entries but images has 21"),
    ({"n_clusters": 0}, ValueError, r"n_clusters.*Got 0"),
    ({"n_clusters": True}, TypeError, r"n_clusters.*Got True"),
    ({"max_members": 2.5}, TypeError, r"max_members.*Got 2.5"),
    ({"order": "smallest"}, ValueError, r"order.*'smallest'"),
    ({"image_size": (12, 0)}, ValueError, r"image_size.*\(12, 0\)"),
    ({"image_size": (12, True)}, TypeError, r"image_size.*\(12, True\)"),
    ({"fig": "figure"}, TypeError, r"fig.*'figure'"),
])
def test_bad_inputs_name_the_parameter(kwargs, error, match):
    args = {"images": _images(len(LABELS)), "labels": LABELS, **kwargs}
    with pytest.raises(error, match=match):
        plot_cluster_montage(args.pop("images"), args.pop("labels"), **args)


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'sklearn-ecluster\[plots\]'"):
        plot_cluster_montage(_images(len(LABELS)), LABELS)
