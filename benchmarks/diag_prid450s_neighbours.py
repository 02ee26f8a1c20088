"""How much the pretrained neighbourhoods of PRID 450S's training persons know.

A diagnostic of the pseudo labels the loops can start from, on the
*training* persons only (their ids are read to score the neighbours, never
to choose anything): on the pretrained MobileNetV2 features centred per
camera (the benchmark's network, :mod:`bench_prid450s_loop`), the share of
nearest neighbours in the same camera and of the same person, of
cross-camera nearest neighbours of the same person, and the number and
precision of cross-camera *mutual* nearest-neighbour pairs (each image's
nearest image of the other camera, kept when the two choose each other: the
association camera-aware methods start from).

Usage::

    python benchmarks/diag_prid450s_neighbours.py --weights /tmp/mnv2_tv.pt --splits 0 1 2

Prints a message and exits with status 0 when the data or the weights are
absent.
"""

import argparse
import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_prid450s_loop as prid  # noqa: E402

from sklearn_ecluster.datasets import load_prid450s  # noqa: E402
from sklearn_ecluster.self_training import center_per_camera  # noqa: E402


def neighbour_scores(features, cams, pids):
    """The shares of the docstring for one set of features."""
    sq = (features * features).sum(1)
    D = sq[:, None] + sq[None, :] - 2.0 * features @ features.T
    np.fill_diagonal(D, np.inf)
    nn = D.argmin(1)
    D[cams[:, None] == cams[None, :]] = np.inf  # only the other camera
    cross = D.argmin(1)
    mutual = cross[cross] == np.arange(len(features))
    return {
        "nn_same_camera": float(np.mean(cams[nn] == cams)),
        "nn_same_person": float(np.mean(pids[nn] == pids)),
        "cross_nn_same_person": float(np.mean(pids[cross] == pids)),
        "mutual_pairs": int(mutual.sum() // 2),
        "mutual_precision": float(np.mean(pids[cross][mutual] == pids[mutual]))
        if mutual.any() else float("nan"),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=prid.DEFAULT_ROOT)
    p.add_argument("--weights", default=prid.DEFAULT_WEIGHTS)
    p.add_argument("--splits", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--image-size", nargs=2, type=int, default=[128, 64])
    p.add_argument("--trainable-blocks", type=int, default=5)
    args = p.parse_args(argv)
    if not args.root.is_dir() or not Path(args.weights).is_file():
        print(f"skipped: needs {args.root} and the weights file {args.weights}")
        return 0
    net = types.SimpleNamespace(weights=args.weights, image_size=args.image_size,
                                trainable_blocks=args.trainable_blocks)
    print("| split | images | NN same camera | NN same person | cross-camera NN same "
          "person | mutual cross-camera pairs | their precision |")
    print("|---|---|---|---|---|---|---|")
    for split in args.splits:
        train = load_prid450s(args.root, split=split).train
        extractor = prid.make_extractor(net, 0).fit(train.paths[:1])  # no y: no training
        cams, pids = np.asarray(train.camids), np.asarray(train.pids)
        features = center_per_camera(extractor.transform(train.paths), cams)
        s = neighbour_scores(features.astype(np.float64), cams, pids)
        print(f"| {split} | {len(pids)} | {s['nn_same_camera']:.2f} | "
              f"{s['nn_same_person']:.3f} | {s['cross_nn_same_person']:.3f} | "
              f"{s['mutual_pairs']} | {s['mutual_precision']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
