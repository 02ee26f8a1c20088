"""Why the contrastive loop loses on PRID 450S: its weights, or its BatchNorm statistics?

A diagnostic on the *training* persons (their ids only score the result; the
loop never sees them): the ``contrastive_camera`` loop of
``bench_prid450s_loop.py`` (``bn_statistics="running"``, its settings) is run,
and its last network is then scored with the same weights and four sets of
BatchNorm statistics:

* as trained: torch's running averages over the training batches;
* the backbone's statistics put back to the pretrained (ImageNet) ones, the
  head's as trained;
* the same with the head's recomputed on all the training images (what
  ``bn_statistics="pretrained"`` gives);
* every layer's recomputed on all the training images
  (``bn_statistics="recomputed"``, precise BN).

Score: rank-1 / mAP of the training images of camera 1 against those of camera
2, features centred per camera. Usage::

    python benchmarks/diag_prid450s_bn_statistics.py --splits 0 1 2 --seed 0

It prints a message and exits with status 0 when the data or the weights are
absent (see ``bench_prid450s_loop.py``).
"""

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_prid450s_loop as loop_bench  # noqa: E402

from sklearn_ecluster.datasets import build_transforms, load_prid450s  # noqa: E402
from sklearn_ecluster.feature_extraction._batchnorm_statistics import (  # noqa: E402
    batchnorm_layers,
    recompute_batchnorm_statistics,
)
from sklearn_ecluster.metrics import evaluate_features  # noqa: E402
from sklearn_ecluster.self_training import center_per_camera  # noqa: E402


def score(extractor, part):
    q, g = part.query, part.gallery
    features = center_per_camera(
        np.concatenate([extractor.transform(q.paths), extractor.transform(g.paths)]),
        np.concatenate([q.camids, g.camids]))
    res = evaluate_features(features[:len(q.paths)], features[len(q.paths):], q.pids,
                            g.pids, q.camids, g.camids, max_rank=50, device="cpu")
    return 100 * float(res["rank1"]), 100 * float(res["mAP"])


def recomputed(extractor, images, *, backbone):
    out = copy.deepcopy(extractor)
    size = tuple(out.image_size)
    recompute_batchnorm_statistics(
        batchnorm_layers(out.model_, backbone=backbone), out.model_, images,
        build_transforms(size), size, batch_size=out.batch_size, device=out.device_)
    return out


def with_backbone_statistics(extractor, source):
    out = copy.deepcopy(extractor)
    for mine, theirs in zip(out.model_.backbone.modules(), source.modules(), strict=True):
        if isinstance(mine, torch.nn.modules.batchnorm._BatchNorm):
            mine.running_mean.copy_(theirs.running_mean)
            mine.running_var.copy_(theirs.running_var)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=loop_bench.DEFAULT_WEIGHTS)
    parser.add_argument("--root", default=str(loop_bench.DEFAULT_ROOT))
    parser.add_argument("--splits", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, nargs=2, default=[256, 128])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    if not Path(args.weights).is_file() or not Path(args.root).is_dir():
        print("Skipped: no PRID 450S data or MobileNetV2 weights (see bench_prid450s_loop.py).")
        return 0
    settings = argparse.Namespace(
        weights=args.weights, image_size=args.image_size, trainable_blocks=5,
        bn_statistics="running", contrastive_rounds=args.rounds, rounds=3, verbose=0,
        outliers="drop")
    rows = []
    for split in args.splits:
        data = loop_bench.evaluation_part(
            load_prid450s(args.root, split=split, random_state=0), "train")
        X, y = data.train.paths, np.asarray(data.train.pids)
        loop = loop_bench.make_loop("contrastive_camera", settings, args.seed, y)
        loop.fit(X, camids=np.asarray(data.train.camids))
        trained = loop.feature_extractor_
        pretrained = loop_bench.make_extractor(settings, 0).fit(X[:1]).model_.backbone
        reset = with_backbone_statistics(trained, pretrained)
        variants = {
            "as trained (running averages)": trained,
            "backbone's put back to the pretrained": reset,
            "the same, head's recomputed": recomputed(reset, X, backbone=False),
            "every layer's recomputed": recomputed(trained, X, backbone=True),
        }
        for name, extractor in variants.items():
            rows.append((split, name, *score(extractor, data)))
            print(f"split {split}  {name:<40} rank-1 {rows[-1][2]:5.1f}  "
                  f"mAP {rows[-1][3]:5.1f}", flush=True)
    if len(args.splits) > 1:
        print("\nmean ± std (ddof=1) over splits")
        for name in dict.fromkeys(r[1] for r in rows):
            mine = np.array([r[2:] for r in rows if r[1] == name])
            spread = mine.std(0, ddof=1)
            print(f"{name:<40} rank-1 {mine[:, 0].mean():5.1f} ± {spread[0]:4.1f}  "
                  f"mAP {mine[:, 1].mean():5.1f} ± {spread[1]:4.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
