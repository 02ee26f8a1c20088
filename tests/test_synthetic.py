"""Tests of the synthetic Market-1501-like image dataset."""

import math
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from sklearn_ecluster.datasets import make_synthetic_reid

SPLITS = ("bounding_box_train", "query", "bounding_box_test")
NAME = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
PID_CAM = re.compile(r"([-\d]+)_c(\d)")  # what Market-1501 loaders use

TINY = dict(n_identities=12, n_cameras=4, images_per_identity=(3, 8),
            image_size=(32, 16))


def parse(folder):
    """``(pids, cams, names)`` of the JPEG files of ``folder`` (cams 1-based)."""
    names = sorted(p.name for p in folder.iterdir())
    pairs = [tuple(map(int, PID_CAM.match(n).groups())) for n in names]
    pids = np.array([p for p, _ in pairs], dtype=int)
    cams = np.array([c for _, c in pairs], dtype=int)
    return pids, cams, names


def read(folder):
    pids, cams, names = parse(folder)
    images = [np.asarray(Image.open(folder / n).convert("RGB")) for n in names]
    return images, pids, cams


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    path = make_synthetic_reid(root, n_junk=3, random_state=0, **TINY)
    return root, path


def test_layout_and_file_names(tiny):
    root, path = tiny
    assert path == root / "Market-1501-v15.09.15"
    assert sorted(p.name for p in path.iterdir()) == sorted(SPLITS)
    assert [p.name for p in root.iterdir()] == [path.name]  # no staging left
    for split in SPLITS:
        names = [p.name for p in (path / split).iterdir()]
        assert names and all(NAME.match(n) for n in names)
        assert len(set(names)) == len(names)
    train, _, _ = parse(path / "bounding_box_train")
    query, q_cams, _ = parse(path / "query")
    gallery, g_cams, _ = parse(path / "bounding_box_test")
    for cams in (q_cams, g_cams, parse(path / "bounding_box_train")[1]):
        assert cams.min() >= 1 and cams.max() <= 4
    # identities 1..12, half for training, disjoint from the test identities
    train_ids = set(train.tolist())
    test_ids = set(gallery[gallery > 0].tolist())
    assert train_ids | test_ids == set(range(1, 13))
    assert len(train_ids) == 6 and not train_ids & test_ids
    assert set(query.tolist()) == test_ids
    # distractors (0) and junk (-1) only in the gallery; 3 junk as asked
    assert (gallery == 0).sum() > 0 and (gallery == -1).sum() == 3
    assert train.min() >= 1 and query.min() >= 1
    # Market's query protocol: at most one query per identity and camera,
    # each with a match in the gallery seen by another camera
    assert len(set(zip(query, q_cams, strict=True))) == len(query)
    for pid, cam in zip(query, q_cams, strict=True):
        assert np.any((gallery == pid) & (g_cams != cam))


def test_junk_names_and_default_distractors(tiny):
    _, path = tiny
    _, _, names = parse(path / "bounding_box_test")
    assert any(n.startswith("-1_c") for n in names)
    gallery, _, _ = parse(path / "bounding_box_test")
    n_test = (gallery > 0).sum()
    assert (gallery == 0).sum() == n_test // 5


def test_image_size_mode_and_format(tmp_path):
    path = make_synthetic_reid(tmp_path, n_identities=4, images_per_identity=(3, 4),
                               image_size=(40, 24), random_state=0)
    files = [p for s in SPLITS for p in (path / s).iterdir()]
    for f in files:
        with Image.open(f) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            assert im.size == (24, 40)  # PIL's (width, height)
    # drawn, not blank: colour varies within images
    with Image.open(files[0]) as im:
        assert np.asarray(im).std() > 10


def test_deterministic_bytes_and_global_rng(tmp_path):
    state = np.random.get_state()  # noqa: NPY002 (the legacy global state)
    a = make_synthetic_reid(tmp_path / "a", random_state=7, **TINY)
    b = make_synthetic_reid(tmp_path / "b", random_state=7, **TINY)
    c = make_synthetic_reid(tmp_path / "c", random_state=8, **TINY)
    after = np.random.get_state()  # noqa: NPY002
    assert state[0] == after[0] and np.array_equal(state[1], after[1])

    def files(path):
        return {f"{s}/{p.name}": p.read_bytes() for s in SPLITS
                for p in (path / s).iterdir()}

    assert files(a) == files(b)
    fa, fc = files(a), files(c)
    assert fa.keys() != fc.keys()
    common = fa.keys() & fc.keys()
    assert all(fa[k] != fc[k] for k in common)
    # a Generator works too and is used, not copied
    rng = np.random.default_rng(7)
    d = make_synthetic_reid(tmp_path / "d", random_state=rng, **TINY)
    assert files(d) == fa
    e = make_synthetic_reid(tmp_path / "e", random_state=rng, **TINY)
    assert files(e) != fa


def test_uneven_counts(tmp_path):
    path = make_synthetic_reid(tmp_path, n_identities=60, n_cameras=6,
                               images_per_identity=(3, 30), image_size=(16, 8),
                               n_distractors=0, random_state=0)
    pids, cams = [], []
    for split in SPLITS:
        p, c, _ = parse(path / split)
        pids.append(p)
        cams.append(c)
    pids, cams = np.concatenate(pids), np.concatenate(cams)
    per_id = np.bincount(pids)[1:]
    assert per_id.size == 60
    assert per_id.min() >= 3 and per_id.max() <= 30
    assert per_id.std() > 3 and np.median(per_id) < per_id.mean()  # long tail
    n_cams = np.array([np.unique(cams[pids == i]).size for i in range(1, 61)])
    assert n_cams.min() == 2 and n_cams.max() >= 4  # some seen by only 2
    per_cam = np.bincount(cams, minlength=7)[1:]
    assert per_cam.max() > 1.5 * per_cam.min()  # some cameras see more people
    # per identity and camera, the counts are uneven too
    pairs = np.array(list(Counter(zip(pids, cams, strict=True)).values()))
    assert pairs.min() == 1 and pairs.max() >= 5


def test_n_train_identities(tmp_path):
    path = make_synthetic_reid(tmp_path, n_train_identities=3, random_state=0, **TINY)
    train, _, _ = parse(path / "bounding_box_train")
    query, _, _ = parse(path / "query")
    assert np.unique(train).size == 3 and np.unique(query).size == 9


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"n_identities": 1}, ValueError, r"n_identities.*1"),
        ({"n_identities": 10_000}, ValueError, r"n_identities.*10000"),
        ({"n_identities": 5.0}, TypeError, r"n_identities.*5\.0"),
        ({"n_cameras": 1}, ValueError, r"n_cameras.*1"),
        ({"n_cameras": 10}, ValueError, r"n_cameras.*10"),
        ({"n_train_identities": 12}, ValueError, r"n_train_identities.*12"),
        ({"n_train_identities": 0}, ValueError, r"n_train_identities.*0"),
        ({"images_per_identity": (2, 5)}, ValueError, r"images_per_identity.*\(2, 5\)"),
        ({"images_per_identity": (6, 5)}, ValueError, r"images_per_identity.*\(6, 5\)"),
        ({"images_per_identity": 5}, TypeError, r"images_per_identity.*5"),
        ({"image_size": (32,)}, ValueError, r"image_size.*\(32,\)"),
        ({"image_size": (32, 0)}, ValueError, r"image_size.*\(32, 0\)"),
        ({"image_size": (32.0, 16)}, TypeError, r"image_size.*\(32\.0, 16\)"),
        ({"image_size": "32x16"}, TypeError, r"image_size.*'32x16'"),
        ({"n_distractors": -1}, ValueError, r"n_distractors.*-1"),
        ({"n_junk": -2}, ValueError, r"n_junk.*-2"),
        ({"camera_shift": -0.5}, ValueError, r"camera_shift.*-0\.5"),
        ({"occlusion": float("nan")}, ValueError, r"occlusion.*nan"),
        ({"jpeg_quality": 0}, ValueError, r"jpeg_quality.*0"),
        ({"name": "a/b"}, ValueError, r"name.*'a/b'"),
        ({"name": ".."}, ValueError, r"name.*'\.\.'"),
        ({"overwrite": "yes"}, TypeError, r"overwrite.*'yes'"),
        ({"random_state": "seed"}, TypeError, r"random_state.*'seed'"),
        ({"random_state": -1}, ValueError, r"random_state.*-1"),
    ],
)
def test_bad_parameters(tmp_path, params, error, match):
    kwargs = {**TINY, **params}
    with pytest.raises(error, match=match):
        make_synthetic_reid(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())  # nothing written


def test_existing_folder(tmp_path):
    path = make_synthetic_reid(tmp_path, random_state=0, **TINY)
    first = {p.name for p in (path / "query").iterdir()}
    (path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_synthetic_reid(tmp_path, random_state=1, **TINY)
    assert {p.name for p in (path / "query").iterdir()} == first  # untouched

    # overwrite replaces the three splits (no mixing) and leaves other files
    again = make_synthetic_reid(tmp_path, random_state=1, overwrite=True, **TINY)
    fresh = make_synthetic_reid(tmp_path / "fresh", random_state=1, **TINY)
    assert again == path and (path / "notes.txt").read_text() == "mine"
    for split in SPLITS:
        assert ({p.name for p in (path / split).iterdir()}
                == {p.name for p in (fresh / split).iterdir()})
    assert {p.name for p in tmp_path.iterdir()} == {path.name, "fresh"}

    # an empty folder is not "existing data"; a file of that name is an error
    make_synthetic_reid(tmp_path / "empty", random_state=0, **TINY)
    (tmp_path / "e2" / "Market-1501-v15.09.15").mkdir(parents=True)
    make_synthetic_reid(tmp_path / "e2", random_state=0, **TINY)
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "x").write_text("")
    with pytest.raises(FileExistsError, match="not a folder"):
        make_synthetic_reid(tmp_path / "f", name="x", random_state=0, **TINY)


def hsv_stripe_histograms(images, stripes=6, bins=(8, 3, 3)):
    """Joint HSV histograms of horizontal stripes, square-rooted, L2-normalised."""
    feats = []
    for im in images:
        hsv = np.asarray(Image.fromarray(im).convert("HSV"), dtype=np.int64)
        q = [hsv[..., c] * b // 256 for c, b in enumerate(bins)]
        code = (q[0] * bins[1] + q[1]) * bins[2] + q[2]
        rows = np.array_split(np.arange(im.shape[0]), stripes)
        feats.append(np.concatenate(
            [np.bincount(code[r].ravel(), minlength=math.prod(bins)) for r in rows]))
    X = np.sqrt(np.array(feats, dtype=float))
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def cross_camera_rank1(qf, gf, q_pids, g_pids, q_cams, g_cams):
    """Rank-1 (Market protocol) and its chance level under a random ranking."""
    d = (qf**2).sum(1)[:, None] + (gf**2).sum(1)[None, :] - 2 * qf @ gf.T
    same = q_pids[:, None] == g_pids[None, :]
    ignored = same & (q_cams[:, None] == g_cams[None, :])
    d[ignored] = np.inf
    top = np.argsort(d, axis=1, kind="stable")[:, 0]
    rank1 = np.mean(g_pids[top] == q_pids)
    chance = np.mean((same & ~ignored).sum(1) / (~ignored).sum(1))
    return rank1, chance


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    path = make_synthetic_reid(root, n_identities=80, image_size=(64, 32),
                               images_per_identity=(4, 24), random_state=0)
    return [read(path / s) for s in SPLITS]


def test_learnable_but_not_trivial(small):
    """Hand-made colour features retrieve across cameras better than chance but
    far from perfectly; a metric learned on the training split does better."""
    train, query, gallery = small
    q_pids, g_pids = query[1], gallery[1]
    assert np.unique(q_pids).size == 40
    tf, qf, gf = (hsv_stripe_histograms(s[0]) for s in small)
    rank1, chance = cross_camera_rank1(qf, gf, q_pids, g_pids, query[2], gallery[2])
    assert chance < 0.02
    assert 4 * chance < rank1 < 0.6

    # identities differ in consistent attributes: LDA on the train ids helps
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=0.1)
    lda.fit(tf, train[1])
    qz, gz = lda.transform(qf), lda.transform(gf)
    qz /= np.linalg.norm(qz, axis=1, keepdims=True)
    gz /= np.linalg.norm(gz, axis=1, keepdims=True)
    learned, _ = cross_camera_rank1(qz, gz, q_pids, g_pids, query[2], gallery[2])
    assert learned > rank1 + 0.15


def test_raw_pixels_retrieve_poorly(small):
    _, query, gallery = small
    def pixels(images):
        X = np.stack(images).reshape(len(images), -1).astype(float)
        return X / np.linalg.norm(X, axis=1, keepdims=True)
    rank1, chance = cross_camera_rank1(pixels(query[0]), pixels(gallery[0]),
                                       query[1], gallery[1], query[2], gallery[2])
    assert chance < rank1 < 0.3
