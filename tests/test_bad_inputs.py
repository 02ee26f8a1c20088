"""Every bad input, end to end: one table of cases for the command line, the
loaders, the extractor and the loop.

Each case builds its files in ``tmp_path`` (tiny images written by PIL), runs
one call and expects either one clear error (the command line: exit status 2,
one message on stderr, no traceback) or the documented handling (images
converted to RGB, corrupt files left out with ``on_corrupt="skip"``, ...).
"""

import io
import os
import re
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from sklearn.base import BaseEstimator, TransformerMixin
from test_datasets import MARKET, MSMT_LISTS, write_layout, write_msmt
from torch import nn

from sklearn_ecluster.cli import main
from sklearn_ecluster.cluster import EnergyAgglomerative
from sklearn_ecluster.datasets import (
    ReIDImageDataset,
    load_market1501,
    load_msmt17,
    load_reid_folder,
    read_image,
)
from sklearn_ecluster.feature_extraction import ReIDFeatureExtractor
from sklearn_ecluster.metrics import evaluate_features
from sklearn_ecluster.self_training import SelfTrainingReID
from sklearn_ecluster.self_training._checkpoint import checkpoint_path, write_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = ["--backbone", "resnet18", "--image-size", "32", "16", "--embedding-dim", "16",
        "--device", "cpu", "--eval-batch-size", "16"]
TRAIN_FILE = "bounding_box_train/" + MARKET["bounding_box_train"][1]


# ------------------------------------------------------------------ builders
def market(tmp_path):
    return write_layout(tmp_path / "Market-1501-v15.09.15", MARKET)


def jpeg_bytes(seed=0, size=(32, 64)):
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
        buffer, "JPEG")
    return buffer.getvalue()


def png_rgb16(path, rgb, size=(4, 6)):
    """A 16-bit-per-channel RGB PNG (PIL cannot write one), every pixel ``rgb``."""
    w, h = size
    row = b"\x00" + struct.pack(">3H", *rgb) * w  # filter byte 0, big-endian samples

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n"
                           + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(row * h))
                           + chunk(b"IEND", b""))


def market_with(damage):
    """A Market tree whose train file ``TRAIN_FILE`` is damaged by ``damage(path)``."""
    def build(tmp_path):
        root = market(tmp_path)
        damage(root / TRAIN_FILE)
        return {"root": tmp_path, "bad": str(root / TRAIN_FILE)}
    return build


def truncate_jpeg(path):
    path.write_bytes(jpeg_bytes()[:len(jpeg_bytes()) // 2])


def zero_bytes(path):
    path.write_bytes(b"")


def not_an_image(path):
    path.write_text("a text file named like an image\n" * 10)


def market_of_pngs(mode_writer):
    """A Market tree of PNG files, each written by ``mode_writer(path)``."""
    def build(tmp_path):
        root = tmp_path / "Market-1501-v15.09.15"
        for folder, names in MARKET.items():
            (root / folder).mkdir(parents=True)
            for name in names:
                mode_writer(root / folder / name.replace(".jpg", ".png"))
        return {"root": tmp_path, "first": str(root / "bounding_box_train"
                                               / MARKET["bounding_box_train"][0])
                .replace(".jpg", ".png")}
    return build


def gray(path):
    Image.new("L", (16, 32), 77).save(path)


def rgba(path):
    Image.new("RGBA", (16, 32), (10, 20, 30, 0)).save(path)


def gray16(path):
    Image.fromarray(np.full((32, 16), 40000, np.uint16)).save(path)


def rgb16(path):
    png_rgb16(path, (65535, 32768, 255), size=(16, 32))


def palette(path):
    Image.new("RGB", (16, 32), (200, 30, 30)).convert("P").save(path)


def tiny(path):  # 3 x 2 pixels: far smaller than any crop
    Image.new("RGB", (2, 3), (90, 160, 40)).save(path)


def empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    return {"root": tmp_path / "empty"}


def market_without_query(tmp_path):
    files = {k: v for k, v in MARKET.items() if k != "query"}
    write_layout(tmp_path / "Market-1501-v15.09.15", files)
    return {"root": tmp_path}


def market_unparsable(tmp_path):
    root = market(tmp_path)
    Image.new("RGB", (16, 32)).save(root / "bounding_box_train" / "person_a_cam1.jpg")
    return {"root": tmp_path, "bad": "person_a_cam1.jpg"}


def msmt_absent_file(tmp_path):
    root = write_msmt(tmp_path / "MSMT17_V1", MSMT_LISTS)
    missing = root / "test" / MSMT_LISTS["list_gallery.txt"][1][1][0]
    missing.unlink()
    return {"root": tmp_path, "bad": missing.name}


def weights_file(content):
    def build(tmp_path):
        root = market(tmp_path)
        path = tmp_path / "weights.pt"
        content(path)
        return {"root": root, "weights": str(path)}
    return build


def text_weights(path):
    path.write_text("not a state_dict")


def other_architecture(path):  # SqueezeNet keys for a ResNet-18
    torch.save(torchvision.models.squeezenet1_1().state_dict(), path)


def pickled_module(path):
    torch.save(nn.Linear(3, 2), path)


def truncated_state_dict(path):
    buffer = io.BytesIO()
    torch.save(nn.Linear(64, 64).state_dict(), buffer)
    path.write_bytes(buffer.getvalue()[:300])


def foreign_checkpoint(tmp_path):
    root = market(tmp_path)
    write_checkpoint(tmp_path / "ckpt", {"fingerprint": "another run", "round": 3})
    return {"root": root, "ckpt": str(tmp_path / "ckpt")}


def truncated_checkpoint(tmp_path):
    root = market(tmp_path)
    write_checkpoint(tmp_path / "ckpt", {"fingerprint": "x", "labels": np.arange(1000)})
    path = checkpoint_path(tmp_path / "ckpt")
    path.write_bytes(path.read_bytes()[:100])
    return {"root": root, "ckpt": str(tmp_path / "ckpt"), "bytes": path.read_bytes()}


def nan_features(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 4))
    X[5, 2] = np.nan
    q, g = rng.normal(size=(3, 4)), rng.normal(size=(6, 4))
    g[4, 0] = np.inf
    np.savez(tmp_path / "f.npz", train_features=X, query_features=q, gallery_features=g,
             query_pids=np.arange(3), gallery_pids=np.arange(6) % 3,
             query_camids=np.zeros(3, int), gallery_camids=np.ones(6, int))
    np.save(tmp_path / "X.npy", X)
    return {"npz": str(tmp_path / "f.npz"), "npy": str(tmp_path / "X.npy"), "X": X,
            "q": q, "g": g}


def finite_features(tmp_path):
    np.save(tmp_path / "X.npy", np.random.default_rng(0).normal(size=(10, 3)))
    return {"npy": str(tmp_path / "X.npy")}


def output_under_a_file(tmp_path):
    market(tmp_path)
    (tmp_path / "a_file").write_text("")
    return {"root": tmp_path, "out": str(tmp_path / "a_file" / "f.npz")}


# ------------------------------------------------------- checks of handled cases
def check_rgb(value):
    """The train images load and read as RGB with the pixel ``value``."""
    def check(ctx, result):
        assert len(result.train.paths) == len(MARKET["bounding_box_train"])
        image = read_image(ctx["first"])
        assert image.mode == "RGB"
        assert np.asarray(image)[0, 0].tolist() == list(value)
    return check


def check_extracted(n_train):
    def check(ctx, result):
        with np.load(ctx["out"]) as data:
            assert data["train_features"].shape == (n_train, 512)
            assert np.isfinite(data["train_features"]).all()
            if "bad" in ctx:
                assert ctx["bad"] not in data["train_paths"].tolist()
    return check


def check_skipped(ctx, result):
    assert ctx["bad"] not in result.train.paths
    assert len(result.train.paths) == len(MARKET["bounding_box_train"]) - 1


def load_skipping(ctx):
    with pytest.warns(UserWarning, match="(?s)1 unreadable.*They are left out"):
        return load_market1501(ctx["root"], on_corrupt="skip")


def check_tiny_image_dataset(ctx, result):
    dataset = ReIDImageDataset.from_bunch(result.train, image_size=(64, 32), train=True)
    image, _, _ = dataset[0]
    assert image.shape == (3, 64, 32) and torch.isfinite(image).all()


def check_checkpoint_untouched(ctx, result):
    assert checkpoint_path(ctx["ckpt"]).read_bytes() == ctx["bytes"]


# ------------------------------------------------------------ python callables
def tiny_extractor(**params):
    return ReIDFeatureExtractor(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()),
                                image_size=(16, 8), embedding_dim=4, epochs=1,
                                device="cpu", **params)


def tiny_loop(**params):
    return SelfTrainingReID(tiny_extractor(), EnergyAgglomerative(device="cpu"),
                            merge_percent=0.25, n_rounds=2, random_state=0, **params)


class NaNExtractor(TransformerMixin, BaseEstimator):
    """Features that went NaN (a diverged fine-tuning)."""

    def __init__(self, warm_start=False, epochs=1, lr=0.1):
        self.warm_start, self.epochs, self.lr = warm_start, epochs, lr

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.full((len(X), 4), np.nan)


def train_paths(ctx):
    return sorted(str(p) for p in (Path(ctx["root"]) / "Market-1501-v15.09.15"
                                   / "bounding_box_train").iterdir())


def other_shape_weights(tmp_path):
    path = tmp_path / "w.pt"
    torch.save(nn.Sequential(nn.Conv2d(3, 6, 3)).state_dict(), path)  # 6 != 4 channels
    return {"weights": str(path)}


def image_arrays(tmp_path):
    return {"images": np.random.default_rng(0).integers(0, 256, (6, 16, 8, 3), np.uint8)}


def sixteen_bit_pil(tmp_path):
    values = np.random.default_rng(0).integers(0, 65536, (16, 8), dtype=np.uint16)
    return {"wide": Image.fromarray(values), "narrow": Image.fromarray(
        (values >> 8).astype(np.uint8), "L").convert("RGB")}


def check_same_features(ctx, result):
    wide, narrow = result
    np.testing.assert_array_equal(wide, narrow)


# ------------------------------------------------------------------ the table
@dataclass
class Case:
    id: str
    build: object
    run: object  # a CLI argv (list, "{key}" filled from the context) or a callable(ctx)
    error: object = None  # expected exception type (API), or 2 (CLI exit status)
    match: str = ""  # regular expression the message must match
    check: object = None  # for handled cases: check(ctx, result)
    marks: list = field(default_factory=list)


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")

CASES = [
    # ---- the command line: exit 2, one message, no traceback
    Case("cli-missing-folder", lambda t: {"root": t / "nowhere"},
         ["train", "{root}"], 2, "does not exist"),
    Case("cli-empty-folder", empty_folder, ["extract", "{root}", *TINY], 2,
         "bounding_box_train"),
    Case("cli-market-without-query", market_without_query,
         ["extract", "{root}", *TINY], 2, "query"),
    Case("cli-msmt17-list-names-absent-file", msmt_absent_file,
         ["extract", "{root}", "--layout", "msmt17", *TINY], 2, "are not in .*{bad}"),
    Case("cli-unparsable-name", market_unparsable, ["extract", "{root}", *TINY], 2,
         "{bad}.*--on-mismatch skip"),
    Case("cli-truncated-jpeg-extract", market_with(truncate_jpeg),
         ["extract", "{root}", *TINY], 2, "1 unreadable.*{bad}.*--on-corrupt skip"),
    Case("cli-truncated-jpeg-train", market_with(truncate_jpeg),
         ["train", "{root}", "--output-dir", "{root}/run", *TINY], 2,
         "{bad}.*--on-corrupt skip"),
    Case("cli-zero-byte-file", market_with(zero_bytes),
         ["train", "{root}", "--output-dir", "{root}/run", *TINY], 2,
         "{bad}.*--on-corrupt skip"),
    Case("cli-non-image-file", market_with(not_an_image), ["extract", "{root}", *TINY],
         2, "{bad}.*cannot identify image file"),
    Case("cli-weights-not-a-state-dict", weights_file(text_weights),
         ["extract", "{root}", "--weights", "{weights}", *TINY], 2,
         "is not a state_dict file"),
    Case("cli-weights-whole-pickled-model", weights_file(pickled_module),
         ["extract", "{root}", "--weights", "{weights}", *TINY], 2,
         "is not a state_dict file.*pickled"),
    Case("cli-weights-truncated", weights_file(truncated_state_dict),
         ["extract", "{root}", "--weights", "{weights}", *TINY], 2,
         "is not a state_dict file"),
    Case("cli-weights-of-another-architecture", weights_file(other_architecture),
         ["extract", "{root}", "--weights", "{weights}", *TINY], 2,
         "missing keys.*another backbone"),
    Case("cli-checkpoint-of-another-run", foreign_checkpoint,
         ["train", "{root}", "--checkpoint-dir", "{ckpt}", "--output-dir", "{ckpt}/../run",
          *TINY], 2, "another run"),
    Case("cli-truncated-checkpoint", truncated_checkpoint,
         ["train", "{root}", "--checkpoint-dir", "{ckpt}", "--output-dir", "{ckpt}/../run",
          *TINY], 2, "cannot be read.*not overwritten", check_checkpoint_untouched),
    Case("cli-nan-features-cluster", nan_features, ["cluster", "{npz}", "--device", "cpu"],
         2, "'train_features' holds NaN or infinite values in 1 row.*\\[5\\]"),
    Case("cli-nan-features-cluster-npy", nan_features,
         ["cluster", "{npy}", "--device", "cpu"], 2, "NaN or infinite"),
    Case("cli-nan-features-evaluate", nan_features, ["evaluate", "{npz}", "--device", "cpu"],
         2, "'gallery_features' holds NaN or infinite values.*\\[4\\]"),
    Case("cli-output-folder-is-a-file", output_under_a_file,
         ["extract", "{root}", "-o", "{out}", *TINY], 2, "cannot be created"),
    Case("cli-device-cuda-without-gpu", finite_features,
         ["cluster", "{npy}", "--device", "cuda"], 2, "(?i)cuda", marks=[NO_CUDA]),
    # ---- the command line: handled as documented (exit 0)
    Case("cli-corrupt-skip", lambda t: {**market_with(truncate_jpeg)(t),
                                        "out": str(t / "f.npz")},
         ["extract", "{root}", "--on-corrupt", "skip", "-o", "{out}", *TINY], 0,
         "warning: 1 unreadable.*They are left out", check_extracted(3)),
    Case("cli-unparsable-skip", lambda t: {**market_unparsable(t), "out": str(t / "f.npz")},
         ["extract", "{root}", "--on-mismatch", "skip", "-o", "{out}", *TINY], 0,
         "warning: .*person_a_cam1.jpg.*left out", check_extracted(4)),
    Case("cli-16-bit-pngs", lambda t: {**market_of_pngs(rgb16)(t),
                                                "out": str(t / "f.npz")},
         ["extract", "{root}", "-o", "{out}", *TINY], 0, "", check_extracted(4)),
    Case("cli-16-bit-grayscale-pngs", lambda t: {**market_of_pngs(gray16)(t),
                                                 "out": str(t / "f.npz")},
         ["extract", "{root}", "-o", "{out}", *TINY], 0, "", check_extracted(4)),
    Case("cli-images-smaller-than-the-crop", lambda t: {**market_of_pngs(tiny)(t),
                                                        "out": str(t / "f.npz")},
         ["extract", "{root}", "-o", "{out}", *TINY], 0, "", check_extracted(4)),
    # ---- the loaders
    Case("loader-missing-folder", lambda t: {"root": t / "nowhere"},
         lambda c: load_market1501(c["root"]), FileNotFoundError, "does not exist"),
    Case("loader-empty-folder", empty_folder, lambda c: load_market1501(c["root"]),
         FileNotFoundError, "bounding_box_train"),
    Case("loader-market-without-query", market_without_query,
         lambda c: load_market1501(c["root"]), FileNotFoundError, "query"),
    Case("loader-msmt17-list-names-absent-file", msmt_absent_file,
         lambda c: load_msmt17(c["root"]), FileNotFoundError, "{bad}"),
    Case("loader-unparsable-name", market_unparsable, lambda c: load_market1501(c["root"]),
         ValueError, "{bad}.*on_mismatch='skip'"),
    Case("loader-truncated-jpeg", market_with(truncate_jpeg),
         lambda c: load_market1501(c["root"]), OSError, "{bad}: OSError"),
    Case("loader-truncated-png", market_with(
        lambda p: (Image.new("RGB", (16, 32), 5).save(p, "PNG"),
                   p.write_bytes(p.read_bytes()[:-30]))),
         lambda c: load_market1501(c["root"]), OSError, "{bad}"),
    Case("loader-zero-byte-file", market_with(zero_bytes),
         lambda c: load_market1501(c["root"]), OSError, "{bad}"),
    Case("loader-non-image-file", market_with(not_an_image),
         lambda c: load_market1501(c["root"]), OSError, "{bad}"),
    Case("loader-corrupt-skip", market_with(truncate_jpeg), load_skipping, None, "",
         check_skipped),
    Case("loader-grayscale-png", market_of_pngs(gray),
         lambda c: load_reid_folder(c["root"] / "Market-1501-v15.09.15"), None, "",
         check_rgb((77, 77, 77))),
    Case("loader-rgba-png", market_of_pngs(rgba),
         lambda c: load_market1501(c["root"]), None, "", check_rgb((10, 20, 30))),
    Case("loader-palette-png", market_of_pngs(palette),
         lambda c: load_market1501(c["root"]), None, "",
         check_rgb(Image.new("RGB", (1, 1), (200, 30, 30)).convert("P").convert("RGB")
                   .getpixel((0, 0)))),
    Case("loader-16-bit-grayscale-png", market_of_pngs(gray16),
         lambda c: load_market1501(c["root"]), None, "",
         check_rgb((40000 >> 8,) * 3)),
    Case("loader-16-bit-rgb-png", market_of_pngs(rgb16),
         lambda c: load_market1501(c["root"]), None, "",
         check_rgb((65535 >> 8, 32768 >> 8, 255 >> 8))),
    Case("loader-images-smaller-than-the-crop", market_of_pngs(tiny),
         lambda c: load_market1501(c["root"]), None, "", check_tiny_image_dataset),
    # ---- the extractor
    Case("extractor-weights-not-a-state-dict", weights_file(text_weights),
         lambda c: tiny_extractor(weights=c["weights"]).fit(image_arrays(None)["images"]),
         ValueError, "is not a state_dict file"),
    Case("extractor-weights-of-another-shape", other_shape_weights,
         lambda c: tiny_extractor(weights=c["weights"]).fit(image_arrays(None)["images"]),
         ValueError, re.escape("2 tensor(s) of another shape (0.weight (6, 3, 3, 3) in the "
                               "file, (4, 3, 3, 3) in the network; 0.bias (6,) in the file, "
                               "(4,) in the network)")),
    Case("extractor-weights-of-another-architecture", weights_file(other_architecture),
         lambda c: ReIDFeatureExtractor("resnet18", weights=c["weights"], device="cpu")
         .fit(image_arrays(None)["images"]), ValueError, "missing keys"),
    Case("extractor-nan-tensor", lambda t: {},
         lambda c: tiny_extractor().fit(torch.full((2, 3, 16, 8), float("nan"))),
         ValueError, "NaN"),
    Case("extractor-16-bit-pil-image", sixteen_bit_pil,
         lambda c: (lambda e: (e.transform([c["wide"]]), e.transform([c["narrow"]])))(
             tiny_extractor(random_state=0).fit([c["narrow"]])),
         None, "", check_same_features),
    # ---- the loop
    Case("loop-corrupt-image-in-paths", market_with(truncate_jpeg),
         lambda c: tiny_loop().fit(train_paths(c)), OSError,
         "1 unreadable.*{bad}"),
    Case("loop-checkpoint-of-another-run", foreign_checkpoint,
         lambda c: tiny_loop(checkpoint_dir=c["ckpt"]).fit(image_arrays(None)["images"]),
         ValueError, "another run"),
    Case("loop-truncated-checkpoint", truncated_checkpoint,
         lambda c: tiny_loop(checkpoint_dir=c["ckpt"]).fit(image_arrays(None)["images"]),
         ValueError, "cannot be read.*not overwritten", check_checkpoint_untouched),
    Case("loop-checkpoint-dir-is-a-file", output_under_a_file,
         lambda c: tiny_loop(checkpoint_dir=Path(c["out"]).parent).fit(
             image_arrays(None)["images"]), ValueError, "is a file"),
    Case("loop-nan-features", lambda t: {},
         lambda c: SelfTrainingReID(NaNExtractor(), EnergyAgglomerative(device="cpu"))
         .fit(image_arrays(None)["images"]), ValueError, "Round 0.*NaN"),
    Case("api-nan-features-clusterer", nan_features,
         lambda c: EnergyAgglomerative(device="cpu").fit(c["X"]), ValueError, "NaN"),
    Case("api-nan-features-evaluate", nan_features,
         lambda c: evaluate_features(c["q"], c["g"], np.arange(3), np.arange(6) % 3,
                                     np.zeros(3, int), np.ones(6, int), device="cpu"),
         ValueError, "gallery_features contains infinity"),
]


def _fill(text, ctx, escape=False):
    for key, value in ctx.items():
        if isinstance(value, str | Path):
            value = re.escape(str(value)) if escape else str(value)
            text = text.replace("{" + key + "}", value)
    return text


def _argv(case, ctx):
    return [_fill(a, ctx) for a in case.run]


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default output folders land here
    ctx = case.build(tmp_path)
    pattern = _fill(case.match, ctx, escape=True)
    if isinstance(case.run, list):
        code = main(_argv(case, ctx))
        captured = capsys.readouterr()
        assert code == case.error, captured.err
        assert "Traceback" not in captured.err + captured.out
        if code == 2:  # one message (the layout errors draw the expected tree)
            prefix = f"sklearn-ecluster {case.run[0]}: error: "
            assert captured.err.startswith(prefix), captured.err
            assert captured.err.count(prefix) == 1
        assert_search(pattern, captured.err)
        result = None
    elif case.error is None:
        result = case.run(ctx)
    else:
        with pytest.raises(case.error) as info:
            case.run(ctx)
        assert_search(pattern, str(info.value))
        result = None
    if case.check is not None:
        case.check(ctx, result)


def assert_search(pattern, text):
    assert re.search(pattern, text, re.DOTALL), f"{pattern!r} not in {text!r}"


SUBPROCESS_CASES = ["cli-truncated-jpeg-train", "cli-weights-not-a-state-dict",
                    "cli-nan-features-cluster"]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_bad_input_in_a_real_process(case_id, tmp_path):
    """The same cases in a real process: exit status 2 and no traceback."""
    case = next(c for c in CASES if c.id == case_id)
    ctx = case.build(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "sklearn_ecluster", *_argv(case, ctx)],
                          capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.startswith(f"sklearn-ecluster {case.run[0]}: error: ")
    assert_search(_fill(case.match, ctx, escape=True), proc.stderr)
