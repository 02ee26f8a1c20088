"""Dataset loaders and the torch Dataset, on tiny layouts written by the tests."""

import io
import os
import pickle
import re
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.utils import Bunch
from torch.utils.data import DataLoader

from sklearn_ecluster.datasets import (
    ReIDImageDataset,
    build_transforms,
    load_dukemtmc_reid,
    load_market1501,
    load_msmt17,
    load_prid450s,
    load_reid_folder,
    read_image,
)

MARKET = {
    "bounding_box_train": [
        "0002_c1s1_000451_03.jpg",
        "0002_c2s1_000301_01.jpg",
        "0007_c6s1_000776_02.jpg",
        "0011_c3s1_001001_01.jpg",
    ],
    "query": ["0003_c1s1_000851_00.jpg", "0005_c4s1_000101_00.jpg"],
    "bounding_box_test": [
        "0003_c2s1_001251_02.jpg",
        "0005_c5s1_000201_01.jpg",
        "0000_c3s1_000001_01.jpg",
        "0000_c1s1_000002_02.jpg",
        "-1_c1s1_000401_03.jpg",
    ],
}

DUKE = {
    "bounding_box_train": ["0001_c2_f0046182.jpg", "0001_c8_f0030883.jpg"],
    "query": ["0005_c1_f0017723.jpg"],
    "bounding_box_test": ["0005_c7_f0096011.jpg", "0009_c4_f0000001.jpg"],
}


def write_image(path, size=(16, 32), color=(200, 30, 30)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, color).save(path)


def write_layout(folder, files):
    for subset, names in files.items():
        os.makedirs(folder / subset, exist_ok=True)
        for name in names:
            write_image(str(folder / subset / name))
    return folder


def basenames(part):
    return [os.path.basename(p) for p in part.paths]


@pytest.fixture
def market(tmp_path):
    return write_layout(tmp_path / "Market-1501-v15.09.15", MARKET)


# ---------------------------------------------------------------- Market-1501


def test_market_parsing(market):
    data = load_market1501(market)
    assert set(data) == {"train", "query", "gallery", "root", "name", "DESCR"}
    assert data.name == "Market-1501"
    assert data.root == str(market)
    assert basenames(data.train) == sorted(MARKET["bounding_box_train"])
    assert data.train.pids.tolist() == [2, 2, 7, 11]
    assert data.train.camids.tolist() == [0, 1, 5, 2]  # 0-based
    assert data.query.pids.tolist() == [3, 5]
    # junk (-1) dropped, distractors (0) kept in the gallery
    assert data.gallery.pids.tolist() == [0, 0, 3, 5]
    assert data.gallery.camids.tolist() == [0, 2, 1, 4]
    for part in (data.train, data.query, data.gallery):
        assert isinstance(part.paths, list) and all(
            isinstance(p, str) for p in part.paths
        )
        assert part.paths == sorted(part.paths)
        assert all(os.path.isabs(p) and os.path.isfile(p) for p in part.paths)
        assert part.pids.dtype == np.int64 and part.camids.dtype == np.int64
        assert len(part.paths) == len(part.pids) == len(part.camids)
    assert "Junk images (person id -1) are dropped: 1." in data.DESCR
    assert "Distractors (person id 0) kept in the gallery: 2." in data.DESCR
    assert re.search(r"train\s+4\s+3\s+4", data.DESCR)


def test_market_relabel_train(market):
    data = load_market1501(market, relabel_train=True)
    assert data.train.pids.tolist() == [0, 0, 1, 2]  # 2, 7, 11 in sorted order
    assert data.train.pids.dtype == np.int64
    assert data.query.pids.tolist() == [3, 5]  # test ids untouched
    assert "relabelled" in data.DESCR


@pytest.mark.parametrize(
    "nesting",
    [
        (),
        ("Market-1501-v15.09.15",),
        ("Market-1501",),
        ("market-1501",),  # names match case-insensitively
        ("market1501", "Market-1501-v15.09.15"),  # torchreid's layout
        ("my_copy",),  # any folder that holds the three sub-folders, given directly
    ],
)
def test_market_root_or_parent(tmp_path, nesting):
    dataset = tmp_path.joinpath(*nesting) if nesting else tmp_path
    write_layout(dataset, MARKET)
    root = tmp_path if nesting and nesting[0] != "my_copy" else dataset
    data = load_market1501(root)
    assert data.root == str(dataset)
    assert len(data.train.paths) == 4
    # path-like and str roots alike
    assert load_market1501(str(root), on_corrupt="ignore").root == str(dataset)


def test_missing_root(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"does not exist[\s\S]*bounding_box_train"
    ):
        load_market1501(tmp_path / "nowhere")


def test_root_is_a_file(tmp_path):
    (tmp_path / "market.zip").write_bytes(b"PK")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        load_market1501(tmp_path / "market.zip")


def test_wrong_root_lists_what_was_found(tmp_path):
    (tmp_path / "Downloads").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError) as info:
        load_market1501(tmp_path)
    message = str(info.value)
    assert "No Market-1501 dataset found" in message
    assert "'Downloads/', 'notes.txt'" in message
    assert "bounding_box_train/" in message and "Market-1501-v15.09.15/" in message
    assert "Nothing is downloaded" in message


def test_incomplete_layout_names_what_is_missing(tmp_path):
    files = {k: v for k, v in MARKET.items() if k != "query"}
    write_layout(tmp_path / "Market-1501", files)
    with pytest.raises(FileNotFoundError, match=r"Market-1501' lacks: query/"):
        load_market1501(tmp_path)


def test_empty_subset(tmp_path):
    root = write_layout(tmp_path, {**MARKET, "query": []})
    (root / "query" / "Thumbs.db").write_bytes(b"")
    with pytest.raises(ValueError, match=r"No image files .* in .*query.*Thumbs\.db"):
        load_market1501(root)


def test_other_files_are_ignored(market):
    (market / "bounding_box_test" / "Thumbs.db").write_bytes(b"\0\1")
    (market / "query" / "readme.txt").write_text("x")
    (market / "query" / "._0003_c1s1_000851_00.jpg").write_bytes(b"\0\5\x16\7")  # macOS
    data = load_market1501(market)
    assert len(data.query.paths) == 2 and len(data.gallery.paths) == 4


def test_unparsable_name(market):
    write_image(str(market / "query" / "holiday.jpg"))
    with pytest.raises(
        ValueError, match=r"1 file name\(s\) in .*query.*'holiday\.jpg'"
    ):
        load_market1501(market)
    with pytest.warns(UserWarning, match="holiday.jpg"):
        data = load_market1501(market, on_mismatch="skip")
    assert basenames(data.query) == sorted(MARKET["query"])


def test_camera_out_of_range(market):
    write_image(str(market / "query" / "0003_c7s1_000001_00.jpg"))
    with pytest.raises(
        ValueError, match=r"outside 1\.\.6: '0003_c7s1_000001_00\.jpg' \(camera 7\)"
    ):
        load_market1501(market)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"on_corrupt": "warn"}, "'on_corrupt' parameter of load_market1501 must be a str among"),
        ({"on_mismatch": "ignore"}, "'on_mismatch' parameter of load_market1501 must be a str among"),
    ],
)
def test_invalid_options(market, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_market1501(market, **kwargs)


# ------------------------------------------------------------- corrupt images


def test_corrupt_images_raise_listing_all(market):
    bad = [
        market / "query" / MARKET["query"][0],
        market / "bounding_box_test" / "0003_c2s1_001251_02.jpg",
    ]
    for path in bad:
        path.write_bytes(b"this is not a JPEG file" * 4)
    with pytest.raises(OSError, match="2 unreadable or corrupt image file") as info:
        load_market1501(market)
    for path in bad:
        assert str(path) in str(info.value)


def test_truncated_jpeg_is_corrupt(market):
    path = market / "query" / MARKET["query"][0]
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)).save(
        buffer, "JPEG"
    )
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(OSError, match=re.escape(str(path))):
        load_market1501(market)


def test_corrupt_images_skip_and_ignore(market):
    path = market / "bounding_box_train" / MARKET["bounding_box_train"][2]
    path.write_bytes(b"\xff\xd8garbage")
    with pytest.warns(UserWarning, match=re.escape(str(path))):
        data = load_market1501(market, on_corrupt="skip")
    assert str(path) not in data.train.paths
    assert data.train.pids.tolist() == [2, 2, 11]
    assert data.train.camids.tolist() == [0, 1, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = load_market1501(market, on_corrupt="ignore")  # no file is opened
    assert str(path) in data.train.paths
    # the Dataset then names the file when it reaches it
    dataset = ReIDImageDataset.from_bunch(data.train, image_size=(32, 16))
    with pytest.raises(OSError, match=re.escape(str(path))):
        dataset[data.train.paths.index(str(path))]


# -------------------------------------------------------------- DukeMTMC-reID


def test_duke(tmp_path):
    write_layout(tmp_path / "DukeMTMC-reID", DUKE)
    data = load_dukemtmc_reid(tmp_path)
    assert data.name == "DukeMTMC-reID"
    assert data.train.pids.tolist() == [1, 1]
    assert data.train.camids.tolist() == [1, 7]  # camera 8 is valid for Duke
    assert data.gallery.camids.tolist() == [6, 3]
    assert data.gallery.pids.tolist() == [5, 9]


def test_duke_read_as_market_fails_on_cameras(tmp_path):
    root = write_layout(tmp_path / "Market-1501", DUKE)
    with pytest.raises(ValueError, match=r"camera 8.*another dataset"):
        load_market1501(root)


def test_duke_root_names(tmp_path):
    write_layout(tmp_path / "dukemtmc-reid" / "DukeMTMC-reID", DUKE)
    assert load_dukemtmc_reid(tmp_path).root.endswith(
        os.path.join("dukemtmc-reid", "DukeMTMC-reID")
    )
    with pytest.raises(FileNotFoundError, match="No DukeMTMC-reID dataset"):
        load_dukemtmc_reid(tmp_path / "dukemtmc-reid" / "DukeMTMC-reID" / "query")


# --------------------------------------------------------------------- MSMT17

MSMT_LISTS = {
    "list_train.txt": (
        "train",
        [
            ("0000/0000_000_01_0303morning_0015_0.jpg", 0),
            ("0000/0000_001_05_0303morning_0020_1.jpg", 0),
            ("0001/0001_000_15_0303noon_0001_0.jpg", 1),
        ],
    ),
    "list_val.txt": ("train", [("0001/0001_001_02_0303noon_0002_0.jpg", 1)]),
    "list_query.txt": ("test", [("0000/0000_000_03_0304morning_0001_0.jpg", 0)]),
    "list_gallery.txt": (
        "test",
        [
            ("0000/0000_001_09_0304morning_0009_0.jpg", 0),
            ("0002/0002_000_11_0304noon_0102_1.jpg", 2),
        ],
    ),
}


def write_msmt(folder, lists=MSMT_LISTS, dirs=("train", "test")):
    rename = dict(zip(("train", "test"), dirs))
    for list_name, (subdir, entries) in lists.items():
        for rel, _ in entries:
            write_image(str(folder / rename[subdir] / rel))
        lines = "".join(f"{rel} {pid}\n" for rel, pid in entries)
        (folder / list_name).write_text(lines)
    return folder


@pytest.mark.parametrize(
    "name, dirs",
    [
        ("MSMT17_V1", ("train", "test")),
        ("MSMT17_V2", ("mask_train_v2", "mask_test_v2")),
    ],
)
def test_msmt17(tmp_path, name, dirs):
    folder = write_msmt(tmp_path / name, dirs=dirs)
    data = load_msmt17(tmp_path)
    assert data.root == str(folder) and data.name == "MSMT17"
    assert data.train.pids.tolist() == [0, 0, 1]
    assert data.train.camids.tolist() == [0, 4, 14]
    assert data.query.camids.tolist() == [2]
    assert data.gallery.pids.tolist() == [0, 2]
    assert data.gallery.camids.tolist() == [8, 10]
    assert all(p.startswith(str(folder / dirs[1])) for p in data.gallery.paths)
    with_val = load_msmt17(folder, include_val=True, relabel_train=True)
    assert len(with_val.train.paths) == 4
    assert with_val.train.pids.tolist() == [0, 0, 1, 1]
    assert with_val.train.paths == sorted(with_val.train.paths)


def test_msmt17_val_list_is_optional(tmp_path):
    lists = {k: v for k, v in MSMT_LISTS.items() if k != "list_val.txt"}
    folder = write_msmt(tmp_path / "MSMT17_V1", lists)
    assert len(load_msmt17(folder).train.paths) == 3
    with pytest.raises(FileNotFoundError, match="include_val=True but .*list_val.txt"):
        load_msmt17(folder, include_val=True)


def test_msmt17_malformed_line(tmp_path):
    folder = write_msmt(tmp_path / "MSMT17_V1")
    with open(folder / "list_query.txt", "a") as f:
        f.write("0000/0000_000_03_0304morning_0001_0.jpg\n")  # no pid
        f.write("0000/badname.jpg 0\n")  # no camera field
    with pytest.raises(
        ValueError, match=r"2 malformed line\(s\) in .*list_query\.txt.*line 2"
    ):
        load_msmt17(folder)


def test_msmt17_missing_listed_file(tmp_path):
    folder = write_msmt(tmp_path / "MSMT17_V1")
    os.remove(folder / "test" / "0002/0002_000_11_0304noon_0102_1.jpg")
    with pytest.raises(
        FileNotFoundError, match=r"1 image\(s\) listed in .*list_gallery.*0102_1\.jpg"
    ):
        load_msmt17(folder, on_corrupt="ignore")


def test_msmt17_camera_out_of_range(tmp_path):
    lists = dict(MSMT_LISTS)
    lists["list_query.txt"] = ("test", [("0000/0000_000_16_0304morning_0001_0.jpg", 0)])
    folder = write_msmt(tmp_path / "MSMT17_V1", lists)
    with pytest.raises(
        ValueError,
        match=r"1\.\.15: '0000_000_16_0304morning_0001_0\.jpg' \(camera 16\)",
    ):
        load_msmt17(folder)


def test_msmt17_missing_layout(tmp_path):
    (tmp_path / "MSMT17_V1" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"lacks: test/, list_train\.txt"):
        load_msmt17(tmp_path)


# ------------------------------------------------------------ generic folders


def test_reid_folder_custom_pattern(tmp_path):
    for name in ["id12-cam0.png", "id12-cam1.png", "id3-cam1.png"]:
        write_image(str(tmp_path / "gallery" / name))
    for name in ["id3-cam0.png"]:
        write_image(str(tmp_path / "probe" / name))
    data = load_reid_folder(
        tmp_path,
        pattern=r"id(?P<pid>\d+)-cam(?P<camid>\d)",
        subsets=(None, "probe", "gallery"),
        first_camera=0,
        n_cameras=2,
        name="toy",
    )
    assert data.name == "toy" and data.train.paths == []
    assert data.train.pids.dtype == np.int64 and data.train.pids.shape == (0,)
    assert data.query.pids.tolist() == [3] and data.query.camids.tolist() == [0]
    assert data.gallery.pids.tolist() == [12, 12, 3]
    assert data.gallery.camids.tolist() == [0, 1, 1]


def test_reid_folder_defaults_read_market(market):
    data = load_reid_folder(market)
    expected = load_market1501(market)
    assert data.name == "Market-1501-v15.09.15"
    for part in ("train", "query", "gallery"):
        assert data[part].paths == expected[part].paths
        np.testing.assert_array_equal(data[part].pids, expected[part].pids)
    with pytest.raises(FileNotFoundError, match=r"No .* dataset found[\s\S]*<root>/"):
        load_reid_folder(market.parent)  # the parent is not searched


def test_reid_folder_camera_bounds(tmp_path):
    for name in ["0001_c0_a.jpg", "0001_c3_b.jpg"]:
        write_image(str(tmp_path / name))
    with pytest.raises(ValueError, match=r">= 1: '0001_c0_a\.jpg' \(camera 0\)"):
        load_reid_folder(tmp_path, subsets=(".", None, None))
    with pytest.raises(ValueError, match=r"0\.\.1: '0001_c3_b\.jpg' \(camera 3\)"):
        load_reid_folder(
            tmp_path, subsets=(".", None, None), first_camera=0, n_cameras=2
        )
    data = load_reid_folder(tmp_path, subsets=(".", None, None), first_camera=0)
    assert data.train.camids.tolist() == [0, 3]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (
            {"pattern": r"(\d+)_c\d"},
            ValueError,
            "must capture the person id and the camera",
        ),
        ({"pattern": "(["}, ValueError, "not a regular expression"),
        ({"subsets": ("a", "b")}, ValueError, "subsets must be a tuple of 3"),
        ({"subsets": (None, None, None)}, ValueError, "not all None"),
        ({"n_cameras": 0}, ValueError, r"'n_cameras' parameter of load_reid_folder must be an int in the range \[1, inf\)"),
        ({"first_camera": 1.0}, TypeError, "'first_camera' parameter of load_reid_folder must be an int"),
    ],
)
def test_reid_folder_invalid_parameters(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_reid_folder(tmp_path, **kwargs)


# ------------------------------------------------------------------- PRID450S


def write_prid(folder, n_persons=10):
    for person in range(1, n_persons + 1):
        for camera in (1, 2):
            write_image(str(folder / "images" / f"{person:04d}{camera:03d}.png"))
    return folder


def test_prid450s_split(tmp_path):
    folder = write_prid(tmp_path / "PRID450S")
    state = np.random.get_state()  # noqa: NPY002 (checks the legacy global state)
    data = load_prid450s(tmp_path, n_train_ids=4)
    assert np.all(np.random.get_state()[1] == state[1])  # noqa: NPY002
    assert data.root == str(folder) and data.name == "PRID450S"
    train_ids, test_ids = set(data.train.pids), set(data.query.pids)
    assert len(train_ids) == 4 and len(test_ids) == 6 and not train_ids & test_ids
    assert len(data.train.paths) == 8 and sorted(set(data.train.camids)) == [0, 1]
    assert set(data.query.camids) == {0} and set(data.gallery.camids) == {1}
    np.testing.assert_array_equal(data.query.pids, data.gallery.pids)
    # deterministic: same split, same persons; another split or seed, others
    again = load_prid450s(folder, n_train_ids=4, on_corrupt="ignore")
    assert again.train.paths == data.train.paths
    splits = {
        tuple(
            load_prid450s(
                folder, n_train_ids=4, split=k, on_corrupt="ignore"
            ).query.pids
        )
        for k in range(5)
    }
    assert len(splits) > 1
    seeded = load_prid450s(folder, n_train_ids=4, random_state=7, on_corrupt="ignore")
    assert (
        seeded.train.paths
        == load_prid450s(folder, n_train_ids=4, random_state=7).train.paths
    )
    relabelled = load_prid450s(
        folder, n_train_ids=4, relabel_train=True, on_corrupt="ignore"
    )
    assert sorted(set(relabelled.train.pids)) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_train_ids": 10}, ValueError, "n_train_ids == 10, must be <= 9"),
        ({"n_train_ids": 0}, ValueError, "n_train_ids"),
        ({"split": -1}, ValueError, r"'split' parameter of load_prid450s must be an int in the range \[0, inf\)"),
        (
            {"random_state": np.random.RandomState(0)},
            TypeError,
            "'random_state' parameter of load_prid450s must be an int",
        ),
    ],
)
def test_prid450s_invalid_parameters(tmp_path, kwargs, error, match):
    write_prid(tmp_path)
    with pytest.raises(error, match=match):
        load_prid450s(tmp_path, on_corrupt="ignore", **kwargs)


def test_prid450s_bad_names(tmp_path):
    write_prid(tmp_path)
    write_image(str(tmp_path / "images" / "0001003.png"))
    with pytest.raises(ValueError, match=r"'0001003\.png' \(camera 3\)"):
        load_prid450s(tmp_path)
    os.remove(tmp_path / "images" / "0001003.png")
    write_image(str(tmp_path / "images" / "img_0001.png"))
    with pytest.raises(ValueError, match="img_0001.png"):
        load_prid450s(tmp_path)


@pytest.mark.data
def test_prid450s_real_images(shared_data):
    root = shared_data / "PRID450S"
    if not (root / "images").is_dir():
        pytest.skip(f"{root / 'images'} not present")
    data = load_prid450s(shared_data, on_corrupt="ignore")  # the parent works
    assert data.root == str(root)
    assert (len(data.train.paths), len(data.query.paths), len(data.gallery.paths)) == (
        450,
        225,
        225,
    )
    assert len(set(data.train.pids)) == 225
    assert not set(data.train.pids) & set(data.query.pids)
    dataset = ReIDImageDataset.from_bunch(data.query, image_size=(64, 32))
    images, labels, indices = next(iter(DataLoader(dataset, batch_size=4)))
    assert images.shape == (4, 3, 64, 32)
    assert labels.tolist() == data.query.pids[:4].tolist()


# ------------------------------------------------------------- torch Dataset


def test_dataset_items_and_transforms(market):
    data = load_market1501(market)
    for train in (False, True):
        dataset = ReIDImageDataset.from_bunch(
            data.train, image_size=(32, 16), train=train
        )
        assert len(dataset) == 4
        image, label, index = dataset[3]
        assert isinstance(image, torch.Tensor) and image.dtype == torch.float32
        assert image.shape == (3, 32, 16)
        assert (label, index) == (11, 3)
    np.testing.assert_array_equal(dataset.camids, data.train.camids)
    # the test transform is deterministic, and normalised with ImageNet statistics
    dataset = ReIDImageDataset.from_bunch(data.train, image_size=(32, 16))
    torch.testing.assert_close(dataset[0][0], dataset[0][0])
    expected = (200 / 255 - 0.485) / 0.229
    assert abs(dataset[0][0][0].mean().item() - expected) < 0.05


def test_dataset_labels(market):
    data = load_market1501(market)
    unlabelled = ReIDImageDataset(data.train.paths)
    assert [unlabelled[i][1] for i in range(4)] == [-1] * 4
    pseudo = ReIDImageDataset.from_bunch(
        data.train, image_size=(32, 16), labels=[5, 5, 6, 6]
    )
    assert pseudo[2][1] == 6
    hidden = ReIDImageDataset.from_bunch(data.train, image_size=(32, 16), labels=None)
    assert hidden.labels.tolist() == [-1] * 4
    assert (
        ReIDImageDataset(
            data.train.paths, labels=np.arange(4, dtype=np.int32)
        ).labels.dtype
        == np.int64
    )


def test_dataset_without_transform(market):
    data = load_market1501(market)
    image, label, index = ReIDImageDataset(data.query.paths)[-1]
    assert image.shape == (3, 32, 16)  # the image's own size (16 x 32)
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert index == 1  # negative indices are normalised


def test_dataloader(market):
    data = load_market1501(market, relabel_train=True)
    dataset = ReIDImageDataset.from_bunch(data.train, image_size=(32, 16), train=True)
    generator = torch.Generator().manual_seed(0)
    loader = DataLoader(
        dataset, batch_size=3, shuffle=True, num_workers=0, generator=generator
    )
    seen = []
    for images, labels, indices in loader:
        assert images.shape[1:] == (3, 32, 16) and images.dtype == torch.float32
        assert labels.dtype == torch.int64 and indices.dtype == torch.int64
        assert labels.tolist() == data.train.pids[indices.numpy()].tolist()
        seen += indices.tolist()
    assert sorted(seen) == [0, 1, 2, 3]


def test_dataset_pickles(market):
    data = load_market1501(market)
    dataset = ReIDImageDataset.from_bunch(data.gallery, image_size=(32, 16))
    clone = pickle.loads(pickle.dumps(dataset))
    torch.testing.assert_close(clone[1][0], dataset[1][0])
    assert "n_images=4" in repr(clone)


def test_dataset_errors(tmp_path):
    path = tmp_path / "0001_c1_broken.jpg"
    path.write_bytes(b"garbage")
    dataset = ReIDImageDataset([path])
    with pytest.raises(OSError, match=r"Cannot read image file .*0001_c1_broken\.jpg"):
        dataset[0]
    with pytest.raises(FileNotFoundError, match="missing.png"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(IndexError, match="out of range"):
        dataset[1]
    with pytest.raises(ValueError, match="labels has 2 entries but paths has 1"):
        ReIDImageDataset([path], labels=[1, 2])
    with pytest.raises(TypeError, match="camids must hold integers"):
        ReIDImageDataset([path], camids=[0.5])
    with pytest.raises(TypeError, match="sequence of image paths"):
        ReIDImageDataset(str(path))
    with pytest.raises(TypeError, match="transform must be callable"):
        ReIDImageDataset([path], transform="train")
    with pytest.raises(ValueError, match="'labels' parameter of ReIDImageDataset.from_bunch"):
        ReIDImageDataset.from_bunch(Bunch(paths=[], pids=[], camids=[]), labels="pid")


def test_read_image_converts_to_rgb(tmp_path):
    Image.new("L", (5, 7), 128).save(tmp_path / "grey.png")
    Image.new("RGBA", (5, 7)).save(tmp_path / "alpha.png")
    for name in ("grey.png", "alpha.png"):
        image = read_image(tmp_path / name)
        assert image.mode == "RGB" and image.size == (5, 7)
    assert build_transforms((8, 4))(read_image(tmp_path / "grey.png")).shape == (
        3,
        8,
        4,
    )


def test_random_erasing_sets_a_rectangle_to_the_mean():
    import torch

    from sklearn_ecluster.datasets import build_transforms

    image = Image.new("RGB", (16, 32), (200, 30, 90))  # one colour: no pixel is the mean
    plain = build_transforms((32, 16), train=True, pad=0, flip_prob=0.0)
    erased = build_transforms((32, 16), train=True, pad=0, flip_prob=0.0, erasing_prob=1.0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        a, b = plain(image), erased(image)
    assert not (a == 0).all(0).any()
    zero = (b == 0).all(0)  # the erased pixels: 0 in every channel (ImageNet mean)
    rows, cols = np.nonzero(zero.numpy())
    assert 0.02 * 32 * 16 <= zero.sum() <= 0.4 * 32 * 16
    # one axis-aligned rectangle, the rest untouched
    assert zero[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
    torch.testing.assert_close(b[:, ~zero], a[:, ~zero], rtol=0, atol=0)
    with pytest.raises(ValueError, match="erasing_prob"):
        build_transforms((32, 16), train=True, erasing_prob=1.5)
