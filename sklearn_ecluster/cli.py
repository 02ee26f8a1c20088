"""Command line: ``python -m sklearn_ecluster`` / ``sklearn-ecluster``.

Subcommands
-----------
demo
    The README's main job: E-cluster against the BUC and DBC criteria and
    scikit-learn's Ward / average linkage on data that ships with
    scikit-learn (nothing to download).
cluster
    Cluster a feature matrix (``.npy`` or ``.csv``) with a method preset and
    write the labels.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DEMO_DATASETS = ("digits", "wine", "iris")


def _load_demo_data(name):
    from sklearn import datasets
    from sklearn.preprocessing import StandardScaler, normalize

    loader = {"digits": datasets.load_digits, "wine": datasets.load_wine,
              "iris": datasets.load_iris}[name]
    X, y = loader(return_X_y=True)
    # standardised, then L2-normalised: lam = 0.9 is meant for unit-norm features
    return normalize(StandardScaler().fit_transform(X)), y


def demo_rows(X, y, *, device="cpu", merge_percent=0.05):
    """Fit every demo method on ``(X, y)``; one result dict per method."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    from .cluster import make_clusterer

    k = len(np.unique(y))
    methods = [
        ("E-cluster (paper defaults)",
         lambda: make_clusterer("ecluster", n_clusters=k, merge_percent=merge_percent,
                                device=device)),
        ("E-cluster weighted, geometric",
         lambda: make_clusterer("ecluster", n_clusters=k, merge_percent=merge_percent,
                                weighted=True, merge_schedule="geometric", device=device)),
        ("E-cluster without regulariser",
         lambda: make_clusterer("ecluster_noreg", n_clusters=k,
                                merge_percent=merge_percent, device=device)),
        ("BUC criterion",
         lambda: make_clusterer("buc", n_clusters=k, merge_percent=merge_percent,
                                device=device)),
        ("DBC criterion",
         lambda: make_clusterer("dbc", n_clusters=k, merge_percent=merge_percent,
                                device=device)),
        ("scikit-learn Ward", lambda: AgglomerativeClustering(k, linkage="ward")),
        ("scikit-learn average", lambda: AgglomerativeClustering(k, linkage="average")),
    ]
    rows = []
    for name, make in methods:
        model = make()
        t0 = time.perf_counter()
        labels = model.fit_predict(X)
        seconds = time.perf_counter() - t0
        rows.append({
            "method": name,
            "n_clusters": int(len(np.unique(labels))),
            "ARI": float(adjusted_rand_score(y, labels)),
            "NMI": float(normalized_mutual_info_score(y, labels)),
            "seconds": seconds,
        })
    return rows


def format_table(rows, columns, floatfmt="{:.3f}"):
    """A plain-text table of ``rows`` (dicts) in the given column order."""
    cells = [[c for c in columns]]
    for r in rows:
        cells.append([floatfmt.format(r[c]) if isinstance(r[c], float) else str(r[c])
                      for c in columns])
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths))
        ))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cmd_demo(args):
    print("sklearn-ecluster demo: clustering data that ships with scikit-learn")
    print("(standardised, then L2-normalised; n_clusters = the number of classes;"
          f" merge_percent = {args.merge_percent})\n")
    for name in args.datasets:
        X, y = _load_demo_data(name)
        print(f"{name}: {X.shape[0]} samples, {X.shape[1]} features, "
              f"{len(np.unique(y))} classes")
        rows = demo_rows(X, y, device=args.device, merge_percent=args.merge_percent)
        print(format_table(rows, ["method", "n_clusters", "ARI", "NMI", "seconds"]))
        print()
    return 0


def _load_features(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"features file {str(path)!r} does not exist")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix in (".csv", ".txt"):
        return np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
    raise ValueError(f"features file {str(path)!r}: use a .npy, .csv or .txt file")


def _cmd_cluster(args):
    from .cluster import make_clusterer

    X = _load_features(args.features)
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


def build_parser():
    """The argument parser of the command line."""
    parser = argparse.ArgumentParser(
        prog="sklearn-ecluster",
        description="Energy clustering (E-cluster) for unsupervised person re-ID.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="clustering demo on scikit-learn's datasets")
    p.add_argument("--datasets", nargs="+", default=["digits", "wine", "iris"],
                   choices=DEMO_DATASETS)
    p.add_argument("--merge-percent", type=float, default=0.05)
    p.add_argument("--device", default="auto")
    p.set_defaults(func=_cmd_demo)

    from .cluster import METHOD_PRESETS

    p = sub.add_parser("cluster", help="cluster a feature matrix (.npy / .csv)")
    p.add_argument("features", help="(n_samples, n_features) .npy, .csv or .txt")
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
    return parser


def main(argv=None):
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, MemoryError) as exc:
        print(f"sklearn-ecluster {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
